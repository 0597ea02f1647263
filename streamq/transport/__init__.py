"""Connections to Redis: URLs, the pipelined lane, Redis Cluster, Sentinel, ACL errors."""
