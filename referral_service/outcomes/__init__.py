"""Outcomes for health boards (DESIGN §9): per-referral outcome rows and monthly rollups that
workers keep up to date as events happen, and the reports built from them with disclosure
control (MeasureReport and CSV at the edge).

Importing any part of this package registers the session listener that enqueues a refresh of the
rows whenever their sources change (`triggers.py` says why here and who imports it).
"""

from referral_service.outcomes import triggers as _triggers  # noqa: F401 - registers the listener
