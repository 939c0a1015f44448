"""The ledger as CSV, the report brokers ask for most: pure rendering, no database.

`service.exchange_rows` and `service.export_members` give the rows (and audit the export); these
functions turn them into CSV text, one line at a time, so a caller can stream the answer. Both the
JSON API's download routes and the broker's web pages serve what these return.

- The first line is the header; every other line is one exchange or one member.
- Time is in minutes (exact) and in hours (two decimals, for reading). In the exchanges file a
  reversal's minutes are negative, so each time column sums to the time actually exchanged.
- Dates are ISO 8601 (`2026-11-20`); the moment an exchange was recorded is UTC with a `Z`.
- Text a person typed (aliases, descriptions, reasons) is guarded against spreadsheet formula
  injection: a cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed
  with an apostrophe, so a spreadsheet shows it as text instead of running it
  (`fhir_adapters.csv_text.guard`, the rule every SPIS CSV shares). Numbers are written by SPIS
  itself and are not guarded (a negative balance must stay a number).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal

from fhir_adapters.csv_text import guard
from referral_service.kit.clock import as_utc
from referral_service.ledger.figures import ExchangeRow, MemberRow

MEDIA_TYPE = "text/csv; charset=utf-8"
EXCHANGE_HEADER = (
    "date",
    "giver",
    "receiver",
    "category",
    "minutes",
    "hours",
    "description",
    "exchange_id",
    "giver_id",
    "receiver_id",
    "reverses",
    "reversed_by",
    "reason",
    "recorded_at",
)
MEMBER_HEADER = (
    "member_id",
    "alias",
    "referred",
    "joined_on",
    "ended_on",
    "balance_minutes",
    "balance_hours",
    "given_minutes",
    "given_hours",
    "received_minutes",
    "received_hours",
    "partners",
    "reciprocity",
)


def exchanges_csv(rows: Iterable[ExchangeRow]) -> Iterator[str]:
    """The header, then one line per exchange, in the order given."""
    yield _line(EXCHANGE_HEADER)
    for row in rows:
        yield _line(_exchange_cells(row))


def members_csv(rows: Iterable[MemberRow]) -> Iterator[str]:
    """The header, then one line per member, in the order given."""
    yield _line(MEMBER_HEADER)
    for row in rows:
        yield _line(_member_cells(row))


def filename(what: str, on: date) -> str:
    """`ledger-exchanges-2026-11-28.csv`: what and when, never who."""
    return f"ledger-{what}-{on.isoformat()}.csv"


def hours(minutes: int) -> str:
    """Two decimals, from the exact minutes (no binary floating point on the way)."""
    return f"{Decimal(minutes) / 60:.2f}"


def _exchange_cells(row: ExchangeRow) -> tuple[str, ...]:
    exchange = row.exchange
    return (
        exchange.performed_on.isoformat(),
        _text(row.giver_alias),
        _text(row.receiver_alias),
        exchange.category,
        str(row.minutes),
        hours(row.minutes),
        _text(exchange.description),
        exchange.id,
        exchange.giver_id,
        exchange.receiver_id,
        exchange.reverses_id or "",
        row.reversed_by or "",
        _text(exchange.reason),
        _instant(exchange.created_at),
    )


def _member_cells(row: MemberRow) -> tuple[str, ...]:
    member = row.member
    return (
        member.id,
        _text(member.alias),
        "yes" if row.referred else "no",
        as_utc(member.joined_at).date().isoformat(),
        as_utc(member.ended_at).date().isoformat() if member.ended_at else "",
        str(row.balance),
        hours(row.balance),
        str(row.given),
        hours(row.given),
        str(row.received),
        hours(row.received),
        str(row.partners),
        "" if row.reciprocity is None else f"{row.reciprocity:.2f}",
    )


def _text(value: str | None) -> str:
    return "" if value is None else guard(value)


def _instant(value: datetime) -> str:
    return as_utc(value).isoformat(timespec="seconds").replace("+00:00", "Z")


def _line(cells: tuple[str, ...]) -> str:
    """One CSV record (quoted where needed, CRLF-terminated as RFC 4180 has it)."""
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue()
