"""Organisations: GP practices, time banks, health boards, and SPIS itself."""
