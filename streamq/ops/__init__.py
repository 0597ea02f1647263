"""Operating streamq: the command line, dashboard, metrics, logging, hooks, worker processes."""
