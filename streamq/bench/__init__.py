"""``python -m streamq.bench``: streamq's throughput and latency against a real Redis.

Uses ``--url``, else ``$STREAMQ_REDIS_URL``, else a throwaway local ``redis-server`` (with
``--cluster``, a throwaway local Redis Cluster). Every scenario reports jobs per second and what
each job cost Redis (commands, round trips and redis-server CPU from INFO deltas). ``--json``
prints one JSON document for machines.

``measure`` holds the result rows and the INFO meter, ``scenarios`` the single-queue scenarios,
``shards`` the cluster's queues-over-primaries scenario and ``cli`` the command line.
"""

from .cli import main

__all__ = ("main",)
