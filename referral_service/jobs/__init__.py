"""Background jobs: enqueued by name with ids, as database rows first (nothing lost), sent after commit."""
