"""Events wait in the session until its transaction commits, then are inserted in it.

Inserting at `before_commit` makes one statement of all the request's events, and lets a
savepoint that rolls back take its events with it (below). No lock is taken and the chain is not
read: the sealer (sealer.py) chains the events after they commit. Because the event commits with
the action it records, a rolled-back write leaves no event, and the event is committed before the
response is sent (db.get_session commits before FastAPI answers).

A failure (outcome != 0: a refused request, a consent decision that denied sharing) is true
whether or not the work commits, so it outlives a rollback: it is then written in a short
transaction of its own. Events recorded inside a savepoint that rolls back are dropped with it,
unless they are failures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from referral_service.audit import chain, repository, sealer

log = logging.getLogger("spis.audit")
_KEY = "spis.audit.pending"


@dataclass(frozen=True, slots=True)
class _Queued:
    event: chain.Event
    savepoint: SessionTransaction | None  # the innermost savepoint open when it was recorded

    @property
    def durable(self) -> bool:
        return self.event.outcome != 0

    def inside(self, savepoint: SessionTransaction) -> bool:
        scope = self.savepoint
        while scope is not None:
            if scope is savepoint:
                return True
            scope = scope.parent
        return False


def add(session: Session, audit_event: chain.Event) -> None:
    """Queue an event for the session's current transaction (begun here if there is none)."""
    if session.get_transaction() is None:
        session.begin()
    queued = _Queued(audit_event, session.get_nested_transaction())
    session.info.setdefault(_KEY, []).append(queued)


def store(session: Session, events: list[chain.Event]) -> None:
    """Insert the events in the session's transaction. On SQLite, which runs one writer at a time
    whatever SPIS does, they are also chained in it (a sealer's turn at commit, under the write
    lock the transaction holds anyway): a sealer thread committing on its own would make every
    transaction that read before it wrote fail at once, its snapshot being stale."""
    repository.insert_events(session, events)
    if events and session.get_bind().dialect.name == "sqlite":
        sealer.seal(session.connection(), wait=True)


def write_now(session: Session) -> None:
    """Insert the queued events now, in the session's transaction."""
    queued: list[_Queued] = session.info.pop(_KEY, [])
    store(session, [q.event for q in queued])


def write_apart(bind: Engine | Connection, events: list[chain.Event]) -> None:
    """Insert in a short transaction of its own, on another connection from the same engine."""
    engine = bind.engine if isinstance(bind, Connection) else bind
    with Session(engine) as session, session.begin():
        store(session, events)


def write_failures_now(session: Session, events: list[chain.Event]) -> None:
    """Failures (kept whatever becomes of the work) written now, on PostgreSQL in a short
    transaction of their own, so that a unit of work in autocommit (fhir/endpoints.in_one_hop)
    inserts only its one event, and nothing it committed already is written again if that
    fails. On SQLite, where a second writer beside a transaction that has read would make that
    transaction's own write fail, they are queued as any event."""
    if not events:
        return
    if session.get_bind().dialect.name != "postgresql":
        for audit_event in events:
            add(session, audit_event)
        return
    write_apart(session.get_bind(), events)


@event.listens_for(Session, "before_commit")
def _insert_before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint is being released: the events wait for the outermost commit
    queued: list[_Queued] = session.info.get(_KEY, [])
    if queued:
        # Left queued until after_commit: if the commit fails, the failures are written apart.
        store(session, [q.event for q in queued])


@event.listens_for(Session, "after_commit")
def _forget_after_commit(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_KEY, None)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    queued: list[_Queued] | None = session.info.get(_KEY)
    if queued and previous.nested:
        queued[:] = [q for q in queued if q.durable or not q.inside(previous)]


@event.listens_for(Session, "after_transaction_end")
def _keep_failures(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    queued: list[_Queued] = session.info.pop(_KEY, [])
    failures = [q.event for q in queued if q.durable]
    if not failures:
        return
    try:
        write_apart(session.get_bind(), failures)
    except SQLAlchemyError as exc:
        # Raising here would hide the error that rolled the work back; the loss is logged.
        log.error(
            "audit events lost",
            extra={"count": len(failures), "error_type": type(exc).__name__},
        )
