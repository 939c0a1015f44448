"""The job outbox: a job enqueued in a transaction is a row when that transaction commits, and not
otherwise; the rows a transaction enqueues, before and during its commit, go in one INSERT; its
messages are sent only after commit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.jobs.models import Job, JobStatus
from referral_service.jobs.service import PENDING_KEY, PRODUCER_KEY, JobName, enqueue
from referral_service.kit.clock import utcnow


class Sent:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, name: str, job_id: str) -> bool:
        self.sent.append((name, job_id))
        return True

    def send_all(self, messages: list[tuple[str, str]]) -> int:
        return sum(self.send(name, job_id) for name, job_id in messages)


@contextmanager
def job_inserts() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        if args[2].lstrip().upper().startswith("INSERT INTO JOB"):
            seen.append(args[2])

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def jobs(session_factory: sessionmaker[Session]) -> list[tuple[str, dict[str, str]]]:
    with session_factory() as session:
        rows = session.execute(select(Job.name, Job.args).order_by(Job.created_at, Job.id))
        return [(name, json.loads(args)) for name, args in rows]


def test_jobs_enqueued_before_the_commit_go_in_one_insert_and_all_are_sent_after(
    session_factory: sessionmaker[Session],
) -> None:
    producer = Sent()

    def at_commit(session: Session) -> None:
        if session.info.get("test_enqueue_at_commit"):
            session.info.pop("test_enqueue_at_commit")
            enqueue(session, JobName.REFRESH_OUTCOMES, patient="p-1")

    event.listen(Session, "before_commit", at_commit)
    try:
        with job_inserts() as inserts, session_factory() as session:
            session.info[PRODUCER_KEY] = producer
            first = enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-1")
            second = enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-2")
            session.flush()  # a flush (a statement's autoflush) between
            assert producer.sent == []
            assert inserts == []
            session.info["test_enqueue_at_commit"] = True
            session.commit()
            assert session.get(Job, first) is not None  # committed, read back
    finally:
        event.remove(Session, "before_commit", at_commit)
    # Those enqueued before the commit and the one enqueued during it, in one.
    assert len(inserts) == 1
    assert sorted(jobs(session_factory), key=lambda job: (job[0], sorted(job[1].items()))) == [
        ("spis.refresh_outcomes", {"patient": "p-1"}),
        ("spis.route_referral", {"referral_task": "t-1"}),
        ("spis.route_referral", {"referral_task": "t-2"}),
    ]
    assert producer.sent[:2] == [("spis.route_referral", first), ("spis.route_referral", second)]
    assert [name for name, _ in producer.sent][2:] == ["spis.refresh_outcomes"]
    with session_factory() as session:
        stored = session.scalars(select(Job)).all()
        assert {(j.status, j.attempts, j.last_error) for j in stored} == {
            (JobStatus.PENDING, 0, None)
        }
        assert all(j.next_attempt_at <= utcnow() for j in stored)  # due now: the relay's view


def test_a_rolled_back_transaction_leaves_no_job_and_sends_nothing(
    session_factory: sessionmaker[Session],
) -> None:
    producer = Sent()
    with session_factory() as session:
        session.info[PRODUCER_KEY] = producer
        enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-1")
        session.rollback()
        session.commit()  # a new, empty transaction: the rolled back job is not in it
    with session_factory() as session:
        session.info[PRODUCER_KEY] = producer
        enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-2")
        session.close()  # never committed
    assert jobs(session_factory) == []
    assert producer.sent == []


def test_a_job_enqueued_in_a_savepoint_that_rolls_back_is_dropped_with_it(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        enqueue(session, JobName.ROUTE_REFERRAL, referral_task="kept")
        savepoint = session.begin_nested()
        enqueue(session, JobName.ROUTE_REFERRAL, referral_task="dropped")
        savepoint.rollback()
        with session.begin_nested():
            enqueue(session, JobName.ROUTE_REFERRAL, referral_task="released")
        session.commit()
    assert sorted(args["referral_task"] for _, args in jobs(session_factory)) == [
        "kept",
        "released",
    ]


def test_a_query_of_the_job_table_sees_the_jobs_its_transaction_enqueued(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory() as session:
        job_id = enqueue(session, JobName.REENCRYPT, key="1")
        found = session.scalar(select(Job.id).where(Job.name == JobName.REENCRYPT.value))
        assert found == job_id
        session.commit()
        assert session.info.get(PENDING_KEY) is None
    assert jobs(session_factory) == [("spis.reencrypt", {"key": "1"})]
