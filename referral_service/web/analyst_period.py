"""The period an analyst picks for a report: presets (calendar quarters, months, calendar years,
NHS financial years from April) or their own dates, and how a period is written on the page.

Periods are whole days, both ends included, as the reports take them. The form sends a preset's
code (`2026-Q3`, `2026-07`, `2026`, `FY2026` for April 2026 to March 2027) or `custom` with the
two dates; the report's own address always names the dates (`?start=2026-07-01&end=2026-09-30`),
so it reads the same whichever way it was chosen.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, timedelta

from referral_service.errors import Invalid
from referral_service.outcomes import service as outcomes

CUSTOM = "custom"
QUARTERS_SHOWN, MONTHS_SHOWN, YEARS_SHOWN = 8, 12, 3
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_YEAR = re.compile(r"^(\d{4})$")
_FINANCIAL_YEAR = re.compile(r"^FY(\d{4})$")
_QUARTER_MONTHS = ("January to March", "April to June", "July to September", "October to December")


@dataclass(frozen=True, slots=True)
class Period:
    start: date
    end: date

    @property
    def text(self) -> str:
        """ "1 July 2026 to 30 September 2026", or the preset's name when it is one."""
        name = preset_name(self)
        dates = f"{day_text(self.start)} to {day_text(self.end)}"
        return f"{name} ({dates})" if name else dates


def day_text(day: date) -> str:
    return f"{day.day} {day.strftime('%B %Y')}"


def quarter(year: int, number: int) -> Period:
    first = date(year, 3 * number - 2, 1)
    return Period(first, _month_end(year, 3 * number))


def month(year: int, number: int) -> Period:
    return Period(date(year, number, 1), _month_end(year, number))


def preset(code: str) -> Period | None:
    """The period a preset's code names, or None for anything else."""
    if found := _QUARTER.match(code):
        return quarter(int(found[1]), int(found[2]))
    if found := _MONTH.match(code):
        return month(int(found[1]), int(found[2]))
    if found := _YEAR.match(code):
        return Period(date(int(found[1]), 1, 1), date(int(found[1]), 12, 31))
    if found := _FINANCIAL_YEAR.match(code):
        year = int(found[1])
        return Period(date(year, 4, 1), date(year + 1, 3, 31))
    return None


def preset_code(period: Period) -> str:
    """The code of the preset this period is exactly, else `custom`."""
    start = period.start
    candidates = [f"{start.year}-Q{(start.month + 2) // 3}", f"{start:%Y-%m}", f"{start.year}"]
    candidates.append(f"FY{start.year}")
    return next((code for code in candidates if preset(code) == period), CUSTOM)


def preset_name(period: Period) -> str | None:
    code = preset_code(period)
    if code == CUSTOM:
        return None
    return _name(code)


def _name(code: str) -> str:
    if found := _QUARTER.match(code):
        return f"{found[1]} Q{found[2]}"
    if found := _MONTH.match(code):
        return date(int(found[1]), int(found[2]), 1).strftime("%B %Y")
    if found := _FINANCIAL_YEAR.match(code):
        return f"Financial year {found[1]}/{(int(found[1]) + 1) % 100:02d}"
    return f"Calendar year {code}"


def choices(today: date) -> list[tuple[str, list[tuple[str, str]]]]:
    """The period select's option groups, newest first: (group label, [(code, text)])."""
    quarters = []
    year, number = today.year, (today.month + 2) // 3
    for _ in range(QUARTERS_SHOWN):
        quarters.append((f"{year}-Q{number}", f"{year} Q{number} ({_QUARTER_MONTHS[number - 1]})"))
        year, number = (year, number - 1) if number > 1 else (year - 1, 4)
    months = []
    first = today.replace(day=1)
    for _ in range(MONTHS_SHOWN):
        months.append((f"{first:%Y-%m}", first.strftime("%B %Y")))
        first = (first - timedelta(days=1)).replace(day=1)
    fy_now = today.year if today.month >= 4 else today.year - 1
    return [
        ("Quarters", quarters),
        ("Months", months),
        (
            "Calendar years",
            [(str(y), str(y)) for y in range(today.year, today.year - YEARS_SHOWN, -1)],
        ),
        (
            "Financial years (April to March)",
            [(f"FY{y}", _name(f"FY{y}")) for y in range(fy_now, fy_now - YEARS_SHOWN, -1)],
        ),
        ("Your own dates", [(CUSTOM, "Custom dates (enter them below)")]),
    ]


def last_full_quarter(today: date) -> Period:
    this = quarter(today.year, (today.month + 2) // 3)
    previous_end = this.start - timedelta(days=1)
    return quarter(previous_end.year, (previous_end.month + 2) // 3)


def parse(start_text: str, end_text: str) -> tuple[Period | None, dict[str, str]]:
    """The period two date fields give, or the errors to show beside them (keyed by field)."""
    errors: dict[str, str] = {}
    start = _date(start_text.strip(), "start", "Enter the first day of the period", errors)
    end = _date(end_text.strip(), "end", "Enter the last day of the period", errors)
    if start is None or end is None:
        return None, errors
    if end < start:
        return None, {"end": "The last day must be the same as or after the first day"}
    try:
        outcomes.check_period(start, end)  # the outcomes service's limit on a report's length
    except Invalid as exc:
        return None, {"end": str(exc)}
    return Period(start, end), {}


def _date(text: str, field: str, missing: str, errors: dict[str, str]) -> date | None:
    if not text:
        errors[field] = missing
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[field] = f"{missing} as a date, like 2026-07-01"
        return None


def _month_end(year: int, number: int) -> date:
    return date(year, number, calendar.monthrange(year, number)[1])
