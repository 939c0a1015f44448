"""fhir_adapters/_dates.py: the first and last instants a FHIR date, dateTime or instant stands
for, at each precision, in UTC; None for what is not one (or falls outside datetime's range)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_adapters._dates import period_of


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "first", "last"),
    [
        ("2024", utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59, 999_999)),
        ("2023-02", utc(2023, 2, 1), utc(2023, 2, 28, 23, 59, 59, 999_999)),
        ("2024-02", utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999_999)),
        ("2024-05-03", utc(2024, 5, 3), utc(2024, 5, 3, 23, 59, 59, 999_999)),
        ("2024-05-03T10:00", utc(2024, 5, 3, 10), utc(2024, 5, 3, 10, 0, 59, 999_999)),
        ("2024-05-03T10:00Z", utc(2024, 5, 3, 10), utc(2024, 5, 3, 10, 0, 59, 999_999)),
        ("2024-05-03T10:00:00Z", utc(2024, 5, 3, 10), utc(2024, 5, 3, 10, 0, 0, 999_999)),
        ("2024-05-03T10:00:00-00:00", utc(2024, 5, 3, 10), utc(2024, 5, 3, 10, 0, 0, 999_999)),
        ("2024-05-03T10:00:00+01:00", utc(2024, 5, 3, 9), utc(2024, 5, 3, 9, 0, 0, 999_999)),
        ("2024-05-03T10:00:00-05:30", utc(2024, 5, 3, 15, 30), utc(2024, 5, 3, 15, 30, 0, 999_999)),
        (
            "2024-05-03T10:00:00.5Z",
            utc(2024, 5, 3, 10, 0, 0, 500_000),
            utc(2024, 5, 3, 10, 0, 0, 599_999),
        ),
        (
            "2024-05-03T10:00:00.123456Z",
            utc(2024, 5, 3, 10, 0, 0, 123_456),
            utc(2024, 5, 3, 10, 0, 0, 123_456),
        ),
        (
            "2024-05-03T10:00:00.123456789+14:00",
            utc(2024, 5, 2, 20, 0, 0, 123_456),
            utc(2024, 5, 2, 20, 0, 0, 123_456),
        ),
        ("9999", utc(9999, 1, 1), datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_a_value_stands_for_its_whole_precision(text: str, first: datetime, last: datetime) -> None:
    period = period_of(text)
    assert period == (first, last)
    assert period is not None
    assert (period[0].tzinfo, period[1].tzinfo) == (UTC, UTC)
    assert period_of(text) == period  # again: an offset's zone is remembered, not changed


@pytest.mark.parametrize(
    "text",
    [
        "",
        "x",
        "2024-5-3",
        "2024-13",
        "2024-02-30",
        "2024-05-03T24:00:00Z",
        "2024-05-03T10:60Z",
        "2024-05-03T10:00:00+15:00",
        "2024-05-03T10:00:00+01:60",
        "0001-01-01T00:00:00+01:00",  # before datetime's first instant in UTC
    ],
)
def test_what_is_not_a_date_has_no_period(text: str) -> None:
    assert period_of(text) is None
