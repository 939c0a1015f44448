"""Enqueue by name with ids; the row is written in the caller's transaction and the message is
sent only after that transaction commits (dropped with it on rollback). Running a job is
idempotent: a job row that is already done is skipped."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from enum import StrEnum

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction

from referral_service.config import Settings
from referral_service.errors import ServiceError
from referral_service.jobs import repository
from referral_service.jobs.models import Job, JobStatus
from referral_service.jobs.producer import Sends
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id

log = logging.getLogger("spis.jobs")
PENDING_KEY = "spis_pending_jobs"
PRODUCER_KEY = "spis_producer"
MAX_ATTEMPTS = 8


class JobName(StrEnum):
    ROUTE_REFERRAL = "spis.route_referral"
    REENCRYPT = "spis.reencrypt"
    REFRESH_OUTCOMES = "spis.refresh_outcomes"
    # Takes a subscription id, not a job id: the delivery rows are that work's own outbox.
    DELIVER = "spis.deliver"


Handler = Callable[[Session, Settings, dict[str, str]], None]
HANDLERS: dict[str, Handler] = {}


def handles(name: JobName) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[name.value] = handler
        return handler

    return register


def enqueue(session: Session, name: JobName, **ids: str) -> str:
    """The job's row is written in the caller's transaction, its message sent after commit.

    Outside a savepoint the row waits until the transaction commits, and goes in at the very end
    of the commit (`_insert_at_commit`), so that every job a transaction enqueues, before its
    commit and during it (the outcomes refresh that `outcomes/triggers.py` enqueues then), goes
    in one INSERT, rather than in whichever flush a statement in between happens to cause. It
    commits with the transaction or not at all. Inside a savepoint it is added to the unit of
    work at once, so a savepoint that rolls back takes it along; a query of the job table sees
    queued rows (`_add_before_query`)."""
    job = Job(id=new_id(), name=name.value, args=json.dumps(ids, sort_keys=True))
    if session.get_nested_transaction() is not None:
        repository.add(session, job)
    elif session.info.get(_COMMITTING):
        _handed_over(session).append(job)
    else:
        if session.get_transaction() is None:
            session.begin()
        session.info.setdefault(QUEUED_KEY, []).append(job)
    session.info.setdefault(PENDING_KEY, []).append((name.value, job.id))
    return job.id


QUEUED_KEY = "spis_queued_jobs"
_COMMITTING = "spis_jobs_committing"
_AT_COMMIT = "spis.jobs.at_commit"  # on the connection: the jobs its commit inserts first


def _add_queued(session: Session) -> None:
    queued: list[Job] | None = session.info.pop(QUEUED_KEY, None)
    if queued:
        jobs = list(queued)
        queued.clear()  # also off the connection, if they were handed over to it
        session.add_all(jobs)


def _handed_over(session: Session) -> list[Job]:
    """The session's queue, from now on also the list its connection inserts when it commits:
    what is enqueued later in the commit goes in the same INSERT."""
    connection = session.connection()
    rows: list[Job] | None = connection.info.get(_AT_COMMIT)
    if rows is None:
        rows = connection.info[_AT_COMMIT] = []
    queued: list[Job] | None = session.info.get(QUEUED_KEY)
    if queued is not None and queued is not rows:
        rows.extend(queued)
    session.info[QUEUED_KEY] = rows
    return rows


@event.listens_for(Session, "before_commit")
def _add_before_commit(session: Session) -> None:
    """The queued rows are handed to the connection, which inserts them when it commits, after
    every `before_commit` listener has run (`_insert_at_commit`), in one statement of their own
    (`repository.insert_new`), not through the unit of work: its flush of them cost ten times
    as much. A job enqueued later in this commit (the outcome refreshes that
    outcomes/triggers.py enqueues at commit) joins them (`_COMMITTING`)."""
    if session.get_nested_transaction() is not None:
        return  # a savepoint is released: the outermost commit adds them
    session.info[_COMMITTING] = True
    if session.info.get(QUEUED_KEY):
        _handed_over(session)


@event.listens_for(Engine, "commit")
def _insert_at_commit(connection: Connection) -> None:
    """Last thing before COMMIT: the jobs the committing session handed over. A failure fails
    the commit, and the transaction rolls back with its jobs, as a failed COMMIT would."""
    if connection.invalidated:
        return
    rows: list[Job] | None = connection.info.pop(_AT_COMMIT, None)
    if rows:
        repository.insert_new(connection, rows)


def _drop(connection: Connection, *_: object) -> None:
    if not connection.invalidated:
        connection.info.pop(_AT_COMMIT, None)


event.listen(Engine, "begin", _drop)
event.listen(Engine, "rollback", _drop)


@event.listens_for(Session, "do_orm_execute")
def _add_before_query(state: ORMExecuteState) -> None:
    """A query of the job table in the transaction sees the rows it enqueued (its autoflush
    writes them first)."""
    if state.session.info.get(QUEUED_KEY) and any(m.class_ is Job for m in state.all_mappers):
        _add_queued(state.session)


@event.listens_for(Session, "after_transaction_end")
def _forget_queued(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(QUEUED_KEY, None)
        session.info.pop(_COMMITTING, None)


def send_after_commit(session: Session, name: JobName, entity_id: str) -> None:
    """A message with no job row, sent after commit: for work whose own rows are its outbox and
    that a sweep finds again if the message is lost (deliveries). Once per commit per id."""
    pending = session.info.setdefault(PENDING_KEY, [])
    if (name.value, entity_id) not in pending:
        pending.append((name.value, entity_id))


@event.listens_for(Session, "after_commit")
def _send_after_commit(session: Session) -> None:
    pending = session.info.pop(PENDING_KEY, [])
    sender: Sends | None = session.info.get(PRODUCER_KEY)
    if sender is None:
        return  # no broker wired (some tests, the CLI): the relay sends them
    # The API's sender queues them for its thread; the worker's and the CLI's producer sends
    # them now, in one round trip to the broker (producer.py).
    sender.send_all(pending)


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def run(session: Session, settings: Settings, job_id: str) -> bool:
    """Run one job in the caller's transaction. False when there was nothing to do."""
    job = repository.get_for_update(session, job_id)
    if job is None or job.status is not JobStatus.PENDING:
        return False
    handler = HANDLERS[job.name]
    job.attempts += 1
    try:
        with session.begin_nested():
            handler(session, settings, json.loads(job.args))
    except ServiceError as exc:
        # A business outcome, not a fault: retrying would give the same answer.
        job.status, job.last_error = JobStatus.FAILED, exc.message[:500]
        log.warning("job failed", extra={"job_id": job.id, "job": job.name})
        return True
    job.status = JobStatus.DONE
    return True


def record_transient_failure(session: Session, job_id: str, error: str, delay_s: float) -> None:
    job = repository.get_for_update(session, job_id)
    if job is None or job.status is not JobStatus.PENDING:
        return
    job.attempts += 1
    job.last_error = error[:500]
    job.next_attempt_at = utcnow() + timedelta(seconds=delay_s)
    if job.attempts >= MAX_ATTEMPTS:
        job.status = JobStatus.FAILED


def record_failure(session: Session, job_id: str, error: str) -> None:
    job = repository.get_for_update(session, job_id)
    if job is not None and job.status is JobStatus.PENDING:
        job.attempts += 1
        job.status, job.last_error = JobStatus.FAILED, error[:500]


def due(session: Session, older_than_s: float, limit: int = 500) -> list[Job]:
    """Pending jobs nobody has picked up: to be sent again by the relay."""
    return repository.due(session, utcnow() - timedelta(seconds=older_than_s), limit)
