"""Thin Celery tasks: open a session, call one referral_service function, classify errors."""
