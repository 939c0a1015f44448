"""Wellbeing instruments: questionnaires, scoring, score Observations (DESIGN §7)."""
