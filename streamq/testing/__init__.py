"""Throwaway redis-server processes, a cluster and Sentinel, for tests and demos."""
