"""Deliveries: FHIR Subscriptions (R5 backport on R4) and the notifications SPIS pushes to them."""
