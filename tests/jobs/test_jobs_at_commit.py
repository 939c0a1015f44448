"""The jobs a transaction enqueues go in at the very end of its commit (`_insert_at_commit`), in
one INSERT with those enqueued during the commit, on PostgreSQL (sent by the driver) and SQLite
(through SQLAlchemy); a commit that fails takes them with it and leaves nothing behind on the
pooled connection; a query of the job table during the commit sees them, and they go in once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.db import make_engine, make_sessionmaker
from referral_service.jobs import repository
from referral_service.jobs.models import Job, JobStatus
from referral_service.jobs.service import PENDING_KEY, PRODUCER_KEY, JobName, enqueue
from referral_service.migrate import upgrade
from referral_service.organisations.models import Organisation, OrgKind
from referral_service.organisations.service import register
from tests.jobs.test_jobs_outbox import job_inserts


class Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send_all(self, messages: list[tuple[str, str]]) -> int:
        self.sent.extend(messages)
        return len(messages)


@contextmanager
def at_commit(listener: Callable[[Session], None]) -> Iterator[None]:
    """`listener` as a `before_commit` listener, after the job service's own."""
    event.listen(Session, "before_commit", listener)
    try:
        yield
    finally:
        event.remove(Session, "before_commit", listener)


def stored(sessions: sessionmaker[Session]) -> list[tuple[str, dict[str, str], JobStatus]]:
    with sessions() as session:
        rows = session.execute(select(Job.name, Job.args, Job.status).order_by(Job.name))
        return [(name, json.loads(args), status) for name, args, status in rows]


def _one_insert_for_all(sessions: sessionmaker[Session]) -> None:
    producer = Sent()

    def refresh(session: Session) -> None:
        if session.info.pop("test_refresh", False):
            enqueue(session, JobName.REFRESH_OUTCOMES, patient="p-1")

    with at_commit(refresh), job_inserts() as inserts, sessions() as session:
        session.info[PRODUCER_KEY] = producer
        route = enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-1")
        register(session, OrgKind.PRACTICE, "Practice", "F84001")
        session.flush()  # a statement between: the job waits
        assert inserts == []
        session.info["test_refresh"] = True
        session.commit()
    assert len(inserts) == 1
    assert stored(sessions) == [
        ("spis.refresh_outcomes", {"patient": "p-1"}, JobStatus.PENDING),
        ("spis.route_referral", {"referral_task": "t-1"}, JobStatus.PENDING),
    ]
    assert [name for name, _ in producer.sent] == ["spis.route_referral", "spis.refresh_outcomes"]
    assert producer.sent[0][1] == route


def _a_failed_commit_takes_its_jobs(sessions: sessionmaker[Session]) -> None:
    """Refused after the jobs were handed to the connection: nothing commits, nothing is sent,
    and the connection inserts nothing of them in its next transaction."""
    producer = Sent()

    def refuse(session: Session) -> None:
        if session.info.pop("test_refuse", False):
            raise RuntimeError("refused at commit")

    engine = sessions.kw["bind"]
    with at_commit(refuse), engine.connect() as connection:
        with Session(connection, info={PRODUCER_KEY: producer}) as session:
            enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-refused")
            register(session, OrgKind.PRACTICE, "Refused", "F84002")
            session.info["test_refuse"] = True
            with pytest.raises(RuntimeError, match="refused at commit"):
                session.commit()
            session.rollback()
            assert session.info.get(PENDING_KEY) is None
        with Session(connection, info={PRODUCER_KEY: producer}) as session:
            register(session, OrgKind.PRACTICE, "Kept", "F84003")  # on the same connection
            session.commit()
    assert producer.sent == []
    assert stored(sessions) == []
    with sessions() as session:
        assert session.scalars(select(Organisation.name)).all() == ["Kept"]


def _failing_insert_fails_the_commit(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("the job INSERT failed")

    monkeypatch.setattr(repository, "insert_new", broken)
    producer = Sent()
    with sessions() as session:
        session.info[PRODUCER_KEY] = producer
        enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-1")
        register(session, OrgKind.PRACTICE, "Lost with its job", "F84004")
        with pytest.raises(RuntimeError, match="the job INSERT failed"):
            session.commit()
        session.rollback()
    monkeypatch.undo()
    assert producer.sent == []
    assert stored(sessions) == []
    with sessions() as session:
        assert session.scalars(select(Organisation.name)).all() == []


def _a_query_during_the_commit_sees_them_once(sessions: sessionmaker[Session]) -> None:
    seen: list[str | None] = []

    def look(session: Session) -> None:
        if session.info.pop("test_look", False):
            seen.append(session.scalar(select(Job.id).where(Job.name == "spis.reencrypt")))

    with at_commit(look), sessions() as session:
        job_id = enqueue(session, JobName.REENCRYPT, key="1")
        session.info["test_look"] = True
        session.commit()
    assert seen == [job_id]
    assert stored(sessions) == [("spis.reencrypt", {"key": "1"}, JobStatus.PENDING)]


def _checks(sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    _one_insert_for_all(sessions)
    _wipe(sessions)
    _a_failed_commit_takes_its_jobs(sessions)
    _wipe(sessions)
    _failing_insert_fails_the_commit(sessions, monkeypatch)
    _wipe(sessions)
    _a_query_during_the_commit_sees_them_once(sessions)


def _wipe(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        session.query(Job).delete()
        session.query(Organisation).delete()


def test_on_postgresql(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    _checks(session_factory, monkeypatch)


def test_on_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    engine: Engine = make_engine(url)
    try:
        _checks(make_sessionmaker(engine), monkeypatch)
    finally:
        engine.dispose()
