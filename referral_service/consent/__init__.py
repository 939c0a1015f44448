"""Consent: which flows of a patient's data a Consent permits. Deny by default."""
