"""The analyst's period chooser (web/analyst_period.py): presets, their names, own dates."""

from __future__ import annotations

from datetime import date

import pytest

from referral_service.web import analyst_period as periods
from referral_service.web.analyst_period import Period


@pytest.mark.parametrize(
    ("code", "start", "end"),
    [
        ("2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
        ("2026", date(2026, 1, 1), date(2026, 12, 31)),
        ("FY2026", date(2026, 4, 1), date(2027, 3, 31)),
    ],
)
def test_a_preset_is_whole_days_both_ends_included(code: str, start: date, end: date) -> None:
    assert periods.preset(code) == Period(start, end)
    assert periods.preset_code(Period(start, end)) == code


@pytest.mark.parametrize("code", ["", "2026-Q5", "2026-13", "FY26", "custom", "26"])
def test_anything_else_is_no_preset(code: str) -> None:
    assert periods.preset(code) is None


def test_a_period_is_written_with_its_preset_name_and_dates() -> None:
    assert Period(date(2026, 7, 1), date(2026, 9, 30)).text == (
        "2026 Q3 (1 July 2026 to 30 September 2026)"
    )
    assert Period(date(2026, 4, 1), date(2027, 3, 31)).text == (
        "Financial year 2026/27 (1 April 2026 to 31 March 2027)"
    )
    assert Period(date(2026, 7, 1), date(2026, 7, 31)).text == (
        "July 2026 (1 July 2026 to 31 July 2026)"
    )
    assert Period(date(2026, 7, 3), date(2026, 8, 14)).text == "3 July 2026 to 14 August 2026"
    assert periods.preset_code(Period(date(2026, 7, 3), date(2026, 8, 14))) == periods.CUSTOM


def test_the_choices_run_newest_first_from_today() -> None:
    groups = dict(periods.choices(date(2026, 2, 10)))
    quarters = [code for code, _ in groups["Quarters"]]
    assert quarters[:3] == ["2026-Q1", "2025-Q4", "2025-Q3"]
    assert len(quarters) == periods.QUARTERS_SHOWN
    assert dict(groups["Quarters"])["2025-Q4"] == "2025 Q4 (October to December)"
    assert [code for code, _ in groups["Months"]][:3] == ["2026-02", "2026-01", "2025-12"]
    assert [code for code, _ in groups["Calendar years"]] == ["2026", "2025", "2024"]
    # In February the financial year is the one that began the April before.
    assert groups["Financial years (April to March)"][0] == ("FY2025", "Financial year 2025/26")
    assert groups["Your own dates"] == [(periods.CUSTOM, "Custom dates (enter them below)")]


def test_the_default_is_the_last_full_quarter() -> None:
    assert periods.last_full_quarter(date(2026, 10, 2)) == Period(
        date(2026, 7, 1), date(2026, 9, 30)
    )
    assert periods.last_full_quarter(date(2026, 1, 1)) == Period(
        date(2025, 10, 1), date(2025, 12, 31)
    )


def test_own_dates_are_checked_field_by_field() -> None:
    assert periods.parse("2026-07-03", " 2026-08-14 ") == (
        Period(date(2026, 7, 3), date(2026, 8, 14)),
        {},
    )
    assert periods.parse("", "") == (
        None,
        {"start": "Enter the first day of the period", "end": "Enter the last day of the period"},
    )
    assert periods.parse("3/7/2026", "2026-08-14")[1] == {
        "start": "Enter the first day of the period as a date, like 2026-07-01"
    }
    assert periods.parse("2026-08-14", "2026-07-03")[1] == {
        "end": "The last day must be the same as or after the first day"
    }
    assert periods.parse("2026-07-01", "2026-07-01")[0] == Period(
        date(2026, 7, 1), date(2026, 7, 1)
    )


def test_a_period_covers_at_most_five_years() -> None:
    # As the outcomes service counts them: the end must come before the same day 5 years on.
    assert periods.parse("2021-01-01", "2025-12-31")[0] is not None
    assert periods.parse("2021-01-01", "2026-01-01")[1] == {
        "end": "A report covers at most 5 years"
    }
    assert periods.parse("2024-02-29", "2029-02-28")[0] is not None
    assert periods.parse("2024-02-29", "2029-03-01")[0] is None
