"""Everything that knows the Redis layout: key names, Lua scripts and their wrappers, encoding."""
