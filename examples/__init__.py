"""Examples of streamq in use, importable as ``examples.*`` from the repository's root."""
