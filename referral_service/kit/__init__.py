"""Domain-free helpers: base model, time, ids, crypto primitives."""
