"""Testing with streamq: for your own test suites, a pytest plugin (``pytest_plugin``:
fixtures with a throwaway ``redis-server``, registered when streamq is installed) and
:func:`make_job`, a job for calling a handler alone; ``Queue.drain`` runs a queue's jobs to
completion inside a test. For streamq's own tests and demos: throwaway ``redis-server``
processes, a cluster and Sentinel (``localserver``, ``localcluster``, ``localsentinel``).
"""

from .jobs import JobCalls, RecordedJob, make_job

__all__ = ("JobCalls", "RecordedJob", "make_job")
