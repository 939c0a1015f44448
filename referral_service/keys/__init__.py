"""Data keys for encryption at rest: creation, rotation, background re-encryption."""
