"""What a Redis ACL user needs to run streamq, and clear errors when it lacks some of it.

streamq touches only keys and pub/sub channels that start with its prefix, and runs the commands
below: its own (from Python) and those its Lua scripts call (an ACL applies to a script's calls
too). ``tests/test_security.py`` runs the whole workflow as a user limited to exactly these.
"""

from __future__ import annotations

import re

from redis.exceptions import NoPermissionError, RedisError, ResponseError

from ..errors import PermissionDenied

__all__ = (
    "CLUSTER_COMMANDS",
    "COMMANDS",
    "PERMISSION_PAUSE",
    "acl_rules",
    "denial_in",
    "is_denied",
    "permission_denied",
    "script_permission_error",
)

#: Sent from Python: the connection's set-up and health checks, the server checks at connect,
#: scripts, blocking reads, wake-ups, ``wait_for``, ``min_replicas``, the queue registry, and
#: job control's reads (the pause, cancelled entries, job logs, the event stream), and a flow
#: parent's children's results.
CLIENT_COMMANDS = (
    "ping",
    "select",
    "info",
    "time",
    "evalsha",
    "script|load",
    "xgroup|create",
    "xreadgroup",
    "subscribe",
    "zrange",
    "zadd",
    "wait",
    "exists",
    "lrange",
    "xread",
    "xrevrange",
    "hgetall",
)
#: Called by the Lua scripts in ``lua/``.
SCRIPT_COMMANDS = (
    "time",
    "del",
    "unlink",
    "exists",
    "expire",
    "pexpire",
    "persist",
    "get",
    "set",
    "incr",
    "incrby",
    "hget",
    "hexists",
    "hmget",
    "hgetall",
    "hkeys",
    "hset",
    "hsetnx",
    "hdel",
    "hincrby",
    "publish",
    "zadd",
    "zrem",
    "zcard",
    "zscore",
    "zrange",
    "zrangebyscore",
    "zrangebylex",
    "zlexcount",
    "zpopmin",
    "zremrangebyscore",
    "zremrangebyrank",
    "rpush",
    "ltrim",
    "pttl",
    "lpop",
    "llen",
    "lrange",
    "xadd",
    "xack",
    "xdel",
    "xlen",
    "xrange",
    "xtrim",
    "xpending",
    "xclaim",
    "xautoclaim",
    "xreadgroup",
    "xinfo|groups",
    "xinfo|consumers",
    "memory|usage",
    "xgroup|create",
    "xgroup|destroy",
    "xgroup|delconsumer",
)
COMMANDS = tuple(dict.fromkeys(CLIENT_COMMANDS + SCRIPT_COMMANDS))
#: A Redis Cluster's client also reads the slot map and the command table, and follows ASK
#: redirections during a resharding.
CLUSTER_COMMANDS = ("cluster|slots", "command", "asking")

#: How long a consumer or scheduler waits after a missing permission before trying again: it
#: does not fix itself within seconds, and a fixed ACL is picked up at the next try.
PERMISSION_PAUSE = 30.0

#: The user-facing part of a script's permission error (Redis 7: "... script: <sha>, on
#: @user_script:12."; 6.2: "Error running script ...: @user_script:12: ... The user ...").
_SCRIPT_DENIED = re.compile(r"The user executing the script (can't .*?)(?:\s+script:|[.:]?$)")
_SCRIPT_LINE = re.compile(r"@user_script:\s*(\d+)")
_CALL = re.compile(r"redis\.call\('(\w+)'(?:,\s*'(\w+)')?")
_SUBCOMMANDS = {"XGROUP", "XINFO", "SCRIPT", "CONFIG", "CLIENT", "MEMORY"}


def acl_rules(prefix: str = "streamq", *, cluster: bool = False) -> str:
    """The ACL rules (for ``ACL SETUSER name on >password <rules>``) that let a user run
    streamq with key ``prefix`` and nothing more (on every node of a ``cluster``)."""
    commands = COMMANDS + CLUSTER_COMMANDS if cluster else COMMANDS
    allowed = " ".join(f"+{command}" for command in commands)
    return f"~{prefix}:* resetchannels &{prefix}:* -@all {allowed}"


def is_denied(exc: BaseException) -> bool:
    return isinstance(exc, NoPermissionError)


def denial_in(exc: BaseException) -> NoPermissionError | None:
    """The permission error behind ``exc``, if any (redis-py's cluster client reports one while
    it reads the slot map as "Cluster mode is not enabled")."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NoPermissionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def script_permission_error(exc: ResponseError, script: str, source: str) -> RedisError | None:
    """A script's permission error as a ``NoPermissionError`` naming the command it was denied
    (Redis names only the line), or None if ``exc`` is another error."""
    denied = _SCRIPT_DENIED.search(str(exc))
    if isinstance(exc, NoPermissionError) or denied is None:
        return None
    what = "a command"
    line = _SCRIPT_LINE.search(str(exc))
    if line is not None:
        lines = source.splitlines()
        number = int(line.group(1))
        text = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        call = _CALL.search(text)
        if call is not None:
            name, sub = call.group(1), call.group(2)
            command = f"{name}|{sub}" if sub and name in _SUBCOMMANDS else name
            what = f"'{command.lower()}'"
        elif text:
            what = f"`{text}`"
    return NoPermissionError(f"{denied.group(1)}: {what} in streamq's {script} script")


def permission_denied(exc: BaseException, prefix: str, doing: str) -> PermissionDenied:
    """The error users get: what was refused, and the ACL rules that fix it."""
    return PermissionDenied(
        f"{doing}: the Redis user lacks a permission streamq needs ({exc}). streamq's keys and"
        f" channels are {prefix}:*; give the user these ACL rules (README, Security):"
        f" ACL SETUSER <user> {acl_rules(prefix)} (on a Redis Cluster, on every node and with"
        f" {' '.join('+' + c for c in CLUSTER_COMMANDS)} too)"
    )
