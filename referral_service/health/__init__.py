"""Is this process up, can it serve, and are the worker and beat alive (for orchestrators)."""
