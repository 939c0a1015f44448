"""Encryption in transit beyond TLS: SPIS's own JOSE keys, JWE request/response bodies, and
signed-then-encrypted outbound messages.

Nothing is imported here on purpose: `auth.jwks` imports `transit.recipients`, and an eager import
of the middleware (which imports `auth`) would make that a cycle.
"""
