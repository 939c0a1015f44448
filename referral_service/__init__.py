"""SPIS: the social prescribing integration service (API, domain, persistence, security)."""
