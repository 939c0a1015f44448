"""Outcomes for health boards (DESIGN §9): per-referral outcome rows and monthly rollups that
workers keep up to date as events happen, and the reports built from them with disclosure
control (MeasureReport and CSV at the edge)."""
