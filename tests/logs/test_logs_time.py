"""The log formatters write the time as logging does, formatting the date once a second."""

from __future__ import annotations

import logging

import pytest

from referral_service.logs import SecondCache, WithIds


def _record(created: float) -> logging.LogRecord:
    record = logging.makeLogRecord({"name": "spis.test", "msg": "line", "levelname": "INFO"})
    record.created = created
    record.msecs = (created - int(created)) * 1000 // 1 + 0.0
    return record


@pytest.mark.parametrize("formatter_class", [SecondCache, WithIds])
def test_the_time_is_loggings_own_across_seconds(formatter_class: type[logging.Formatter]) -> None:
    fmt = "%(asctime)s %(levelname)s %(message)s"
    ours, loggings = formatter_class(fmt), logging.Formatter(fmt)
    moments = [1764420001.123, 1764420001.999, 1764420002.0005, 1764420001.5, 1764506401.25]
    for created in moments:  # including a second earlier than the one cached, and another day
        assert ours.format(_record(created)) == loggings.format(_record(created))


def test_a_date_format_given_is_used() -> None:
    ours = SecondCache("%(asctime)s", datefmt="%H:%M")
    assert ours.format(_record(1764420001.5)) == logging.Formatter(
        "%(asctime)s", datefmt="%H:%M"
    ).format(_record(1764420001.5))
