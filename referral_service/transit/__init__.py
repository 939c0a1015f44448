"""Encryption in transit beyond TLS: SPIS's own JOSE keys, JWE request/response bodies, and
signed-then-encrypted outbound messages."""
