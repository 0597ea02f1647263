"""Tests of streamq.testing: the kit for users' own test suites."""
