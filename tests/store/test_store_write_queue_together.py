"""store/write_queue.py: what a transaction queued for several tables goes in as one statement on
PostgreSQL (one INSERT per table, all but the last in a WITH clause), one INSERT per table on
SQLite; either way every value comes back as it went in, the foreign keys on the resource rows
hold, and a row that breaks one takes the whole statement with it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.sealer import SEALER_THREAD
from referral_service.db import make_engine, make_sessionmaker
from referral_service.migrate import upgrade
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.referrals.models import Submission
from referral_service.referrals.repository import add_submission, find_submission
from referral_service.store import write_queue
from referral_service.store.models import (
    ResourceGrant,
    ResourceVersion,
    SearchIndex,
    StoredResource,
)

WHEN = datetime(2026, 11, 29, 15, 0, 1, 123456, tzinfo=UTC)
START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@contextmanager
def inserts(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        if threading.current_thread().name != SEALER_THREAD:
            sql = " ".join(str(args[2]).split())
            if sql.startswith(("INSERT", "WITH")):
                seen.append(sql)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _queue(session: Session, org: str, other: str, rids: list[str]) -> None:
    queued = write_queue.queue(session.connection())
    for n, rid in enumerate(rids):
        body = bytes(range(256)) if n == 0 else b""
        queued.resources.append(
            {
                "id": rid,
                "type": "Task",
                "version_id": 1,
                "last_updated": WHEN,
                "org_id": org,
                "body": body,
            }
        )
        queued.versions.append(
            {"resource_id": rid, "version_id": 1, "last_updated": WHEN, "org_id": org, "body": body}
        )
        queued.index.append(
            {
                "resource_id": rid,
                "position": 0,
                "resource_type": "Task",
                "name": "status",
                "system": None,
                "value": "a,b" if n == 0 else None,
                "start": START if n == 0 else None,
                "end": None,
            }
        )
    queued.grants.append({"resource_id": rids[0], "org_id": other})


def _utc(value: Any) -> Any:
    """SQLite gives back datetimes without their zone (stored as UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _rows(found: Any) -> list[tuple[Any, ...]]:
    return sorted(tuple(_utc(v) for v in row) for row in found)


def _orgs(sessions: sessionmaker[Session]) -> tuple[str, str]:
    with sessions() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
        other = register(session, OrgKind.TIMEBANK, "Time bank", None).id
    return org, other


def _check(sessions: sessionmaker[Session], engine: Engine, statements: int) -> None:
    org, other = _orgs(sessions)
    with inserts(engine) as seen, sessions() as session, session.begin():
        _queue(session, org, other, ["r-0", "r-1"])
        write_queue.send(session.connection())
    assert len(seen) == statements
    with sessions() as session:
        resources = session.execute(
            select(StoredResource.id, StoredResource.last_updated, StoredResource.body).order_by(
                StoredResource.id
            )
        ).all()
        assert _rows(resources) == [
            ("r-0", WHEN, bytes(range(256))),
            ("r-1", WHEN, b""),
        ]
        versions = session.execute(
            select(ResourceVersion.resource_id, ResourceVersion.org_id, ResourceVersion.body)
        ).all()
        assert _rows(versions) == [
            ("r-0", org, bytes(range(256))),
            ("r-1", org, b""),
        ]
        index = session.execute(
            select(SearchIndex.resource_id, SearchIndex.value, SearchIndex.start, SearchIndex.end)
        ).all()
        assert _rows(index) == [
            ("r-0", "a,b", START, None),
            ("r-1", None, None, None),
        ]
        grants = session.execute(select(ResourceGrant.resource_id, ResourceGrant.org_id)).all()
        assert [tuple(r) for r in grants] == [("r-0", other)]

    # A version of a resource that is nowhere: the statement is refused whole.
    with sessions() as session, session.begin():
        savepoint = session.begin_nested()
        _queue(session, org, other, ["r-2"])
        write_queue.queue(session.connection()).versions.append(
            {"resource_id": "r-none", "version_id": 1, "last_updated": WHEN, "org_id": org}
            | {"body": b""}
        )
        with pytest.raises(IntegrityError):
            write_queue.send(session.connection())
        savepoint.rollback()
    with sessions() as session:
        ids = session.scalars(select(StoredResource.id).order_by(StoredResource.id)).all()
        assert ids == ["r-0", "r-1"]


def _submission(org: str, key: str, sr: str) -> dict[str, Any]:
    return {
        "id": f"s-{key}",
        "org_id": org,
        "key": key,
        "service_request_id": sr,
        "response": b'["ServiceRequest/sr-1"]',
        "digest": None,
        "created_at": WHEN,
    }


def _check_submission(sessions: sessionmaker[Session], engine: Engine, statements: int) -> None:
    """A submission (`referrals.repository.add_submission`) waits in the queue and goes in with
    its ServiceRequest's rows; the next statement, its own look-up among them, sees it; a second
    one under the same key is refused as its own INSERT was."""
    org, other = _orgs(sessions)
    principal = Principal("client", org, OrgKind.PRACTICE, frozenset())
    with inserts(engine) as seen, sessions() as session, session.begin():
        _queue(session, org, other, ["sr-1"])
        add_submission(session, _submission(org, "k-1", "sr-1"))
        assert seen == []
        found = find_submission(session, principal, "k-1")
        assert found is not None
        assert (found.response, found.digest) == (b'["ServiceRequest/sr-1"]', None)
    assert len(seen) == statements
    with sessions() as session:
        row = session.get(Submission, "s-k-1")
        assert row is not None
        assert (row.org_id, row.key, row.service_request_id) == (org, "k-1", "sr-1")
        assert _utc(row.created_at) == WHEN
    with sessions() as session, session.begin():
        savepoint = session.begin_nested()
        add_submission(session, {**_submission(org, "k-1", "sr-1"), "id": "s-again"})
        with pytest.raises(IntegrityError):
            find_submission(session, principal, "k-1")
        savepoint.rollback()
        assert find_submission(session, principal, "k-2") is None
    with sessions() as session:
        assert session.scalars(select(Submission.id)).all() == ["s-k-1"]


def test_on_postgresql(session_factory: sessionmaker[Session], pg_engine: Engine) -> None:
    _check(session_factory, pg_engine, statements=1)


def test_a_submission_on_postgresql(
    session_factory: sessionmaker[Session], pg_engine: Engine
) -> None:
    _check_submission(session_factory, pg_engine, statements=1)


def test_a_submission_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        _check_submission(make_sessionmaker(engine), engine, statements=5)
    finally:
        engine.dispose()


def test_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    try:
        _check(make_sessionmaker(engine), engine, statements=4)
    finally:
        engine.dispose()
