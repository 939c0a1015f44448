"""`spis demo`: the loop, end to end, narrated, on the embedded default."""
