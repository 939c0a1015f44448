"""Time in one place, so tests can move it."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def fhir_instant(value: datetime) -> str:
    utc = value if value.tzinfo is UTC else as_utc(value)  # `utcnow`'s need no conversion
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
