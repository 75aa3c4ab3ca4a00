"""Storage adapters: the document store (Cosmos DB), sealed blobs, queues, and the append-only
audit log."""
