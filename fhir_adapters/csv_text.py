"""Text for spreadsheets: the one guard against formula injection in every CSV SPIS writes.

A cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return may be run as a formula
when a spreadsheet opens the file (OWASP, "CSV Injection"). Text that starts so gets a leading
apostrophe, which spreadsheets show as text. Numbers SPIS writes itself are not guarded (a negative
balance must stay a number). Here, below both CSV writers (the ledger's downloads in
`referral_service/ledger/export.py` and the outcome reports in `measure_report.py`), so that
neither copies the rule.
"""

from __future__ import annotations

from typing import Final

FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def guard(text: str) -> str:
    """Text a spreadsheet would not run as a formula."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
