"""The producer and looking side: QueueManager, Queue, inspection, batched enqueues."""
