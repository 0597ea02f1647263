"""The consumer loop and what it runs: reading, running handlers, retries, the scheduler."""
