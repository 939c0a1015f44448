"""FHIR date, dateTime and instant strings -> the (first, last) UTC instants they stand for.

FHIR values carry their own precision: "2024" means the whole year, "2024-05-03T10:00:00Z" the
whole second. Both ends are inclusive, to the microsecond. A value without a time zone is taken as
UTC (FHIR leaves that to the server).
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta, timezone

_DATE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2})"
    r"(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)
_MICRO = timedelta(microseconds=1)
_MAX = datetime.max.replace(tzinfo=UTC)


def period_of(text: str) -> tuple[datetime, datetime] | None:
    """The implied (first, last) instants of a FHIR date/dateTime/instant, or None if invalid."""
    match = _DATE.match(text)
    if match is None:
        return None
    try:
        return _period_from_parts(match)
    except (ValueError, OverflowError):  # e.g. month 13, 24:00, offset beyond a day
        return None


def _period_from_parts(match: re.Match[str]) -> tuple[datetime, datetime]:
    parts = {k: int(v) for k, v in match.groupdict().items() if v and k not in ("tz", "fraction")}
    tz = _tzinfo(match["tz"])
    fraction = match["fraction"] or ""
    micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
    start = datetime(
        parts["year"],
        parts.get("month", 1),
        parts.get("day", 1),
        parts.get("hour", 0),
        parts.get("minute", 0),
        parts.get("second", 0),
        micro,
        tzinfo=tz,
    )
    return start.astimezone(UTC), _last_instant(start, match, fraction).astimezone(UTC)


def _last_instant(start: datetime, match: re.Match[str], fraction: str) -> datetime:
    if fraction:
        step = timedelta(microseconds=10 ** max(0, 6 - len(fraction)))
    elif match["second"]:
        step = timedelta(seconds=1)
    elif match["minute"]:
        step = timedelta(minutes=1)
    elif match["day"]:
        step = timedelta(days=1)
    elif match["month"]:
        step = timedelta(days=calendar.monthrange(start.year, start.month)[1])
    else:
        step = timedelta(days=366 if calendar.isleap(start.year) else 365)
    try:
        return start + step - _MICRO
    except OverflowError:  # the year 9999
        return _MAX


def _tzinfo(tz: str | None) -> timezone:
    if tz is None or tz == "Z":
        return UTC
    sign = -1 if tz[0] == "-" else 1
    hours, minutes = int(tz[1:3]), int(tz[4:6])
    if hours > 14 or minutes > 59:
        raise ValueError("time zone offset out of range")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
