"""Referrals: intake of a GP's referral, the referral Task and its lifecycle."""
