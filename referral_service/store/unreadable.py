"""Rows whose sealed values do not open: tampered, moved, truncated, or under an unknown key.

One such row must not take every search down with it. A query that opts in (the
`SKIP_UNREADABLE` execution option) gets the row back marked unreadable, with the sealed value
replaced by None, and leaves it out of what it answers; any other query raises as before. Either
way the failure is logged with ids only.

A wrong KEK is not a row's fault (every row would fail, and the data keys do not unwrap): that
still fails the request.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from sqlalchemy.orm import QueryContext, Session
from sqlalchemy.orm.attributes import set_committed_value

from referral_service.errors import ServiceError

log = logging.getLogger("spis.store")

SKIP_UNREADABLE = "spis_skip_unreadable"
# What opening one bad value raises: a failed tag (edited, moved, wrong associated data), a value
# too short or of an unknown format, a key id this database does not hold.
OPEN_ERRORS: tuple[type[Exception], ...] = (InvalidTag, ValueError, KeyError, struct.error)
_MARK = "_spis_unreadable"
# Rows with a resource type show as `Type/id` in logs and audit events; ledger rows by table.
Opener = Callable[..., None]
T = TypeVar("T")


class Unreadable(ServiceError):
    """A row the caller may read failed to open. No details: the caller learns only that the
    stored data failed its integrity check; the log and the audit trail have the ids."""

    status = 500
    issue_code = "exception"

    def __init__(self) -> None:
        super().__init__("Stored data failed its integrity check; it was not returned")


def tolerant(opener: Opener, attribute: str) -> Opener:
    """Wrap an ORM `load`/`refresh` listener that opens `attribute`: on failure, log the row's
    ids and either mark it (the query opted in) or raise as before."""

    def listener(target: Any, context: QueryContext, *rest: Any) -> None:
        try:
            opener(target, context, *rest)
        except OPEN_ERRORS as exc:
            log_failure(target, exc)
            if not _opted_in(context):
                raise
            mark(target, attribute)

    return listener


def log_failure(target: Any, exc: Exception) -> None:
    log.error(
        "stored value did not open",
        extra={"row": row_ref(target), "error_type": type(exc).__name__},
    )


def mark(target: Any, attribute: str) -> None:
    """Mark a row unreadable, its sealed value replaced by None."""
    target.__dict__[_MARK] = True
    set_committed_value(target, attribute, None)


def _opted_in(context: QueryContext) -> bool:
    """The option given on the statement or on the execute call."""
    if context.execution_options.get(SKIP_UNREADABLE):
        return True
    return bool(context.query.get_execution_options().get(SKIP_UNREADABLE))


def row_ref(target: Any) -> str:
    """`Type/id` for a stored resource or version, `table/id` for other sealed rows."""
    rtype = getattr(target, "type", None)
    if isinstance(rtype, str):
        return f"{rtype}/{target.id}"
    resource_id = getattr(target, "resource_id", None)
    if resource_id is not None:
        return f"resource/{resource_id}/_history/{target.version_id}"
    return f"{target.__tablename__}/{target.id}"


def is_unreadable(row: object) -> bool:
    return bool(row.__dict__.get(_MARK, False))


def split(session: Session, rows: Iterable[T]) -> tuple[list[T], list[T]]:
    """(readable rows, unreadable rows). The unreadable ones leave the session, so that a later
    load in the same unit of work opens (and fails) afresh instead of finding a row with no body."""
    good, bad = partition(rows)
    for row in bad:
        session.expunge(row)
    return good, bad


def partition(rows: Iterable[T]) -> tuple[list[T], list[T]]:
    """(readable rows, unreadable rows), for rows that are not in a session."""
    good: list[T] = []
    bad: list[T] = []
    for row in rows:
        (bad if is_unreadable(row) else good).append(row)
    return good, bad


def first_readable(session: Session, rows: Sequence[T]) -> T | None:
    """For a single-row read that opted in: the row, or Unreadable when it did not open."""
    good, bad = split(session, rows)
    if bad:
        raise Unreadable
    return good[0] if good else None
