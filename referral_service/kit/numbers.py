"""Whole numbers read from query strings and paths, bounded so that they always fit the database.

A number that reaches SQL unbounded fails there (PostgreSQL: `integer out of range`, `bigint out
of range`) as a 500; refusing it first gives the caller a 400 or a 404 instead.
"""

from __future__ import annotations

# PostgreSQL's `integer`: the narrowest column a number from a request is compared with
# (resource_version.version_id), and far beyond any real page offset.
MAX_SQL_INT = 2**31 - 1


def whole_number(text: str, maximum: int = MAX_SQL_INT) -> int | None:
    """`text` as an integer in 0..maximum, or None.

    ASCII digits only: `str.isdigit()` also accepts "²", which `int()` refuses. The length is
    checked before converting: `int()` of a string of thousands of digits raises.
    """
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(maximum)):
        return None
    number = int(digits)
    return number if number <= maximum else None
