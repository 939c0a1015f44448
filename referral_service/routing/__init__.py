"""Routing a referral to a time bank, re-routing on decline or silence (DESIGN §3 steps 2–3)."""
