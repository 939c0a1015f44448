"""What a unit of work changed in the resource store, kept in the session until it commits, for the
packages that act on it in that same transaction (deliveries: a notification row per subscriber).

The store records a `Change` for every resource it creates or updates and for every organisation
newly granted a read of one; kit knows no domain, so a Change is plain data: a type, an id, a
version, what happened, and the few codes a subscriber's topic is decided on.

Before the outermost transaction commits, the changes still standing are handed to the processors
higher packages registered with `on_commit`. A processor registers from its package's `hooks`
module (`kit.registry.load_hooks`), which is loaded when the process first records a change: a
process that writes to the store therefore always has its processors, whichever entry point it
started from (API, worker, CLI, tests), and no entry point has to remember to import them. (Not at
commit: importing a module that registers session listeners while SQLAlchemy iterates the
`before_commit` listeners would fail. So `record` must not be called from a session event.)

Changes recorded inside a savepoint that rolls back (a failed batch entry, a job handler that
failed) are dropped with it; a transaction that rolls back hands over nothing.

This listener runs before the other `before_commit` listeners (`insert=True`): a processor may
lock rows (a subscription), and taking those locks first, before the audit events are inserted,
keeps the order of locks the same in every transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from referral_service.kit.registry import load_hooks

_KEY = "spis.changes"


class What(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    SHARED = "shared"  # organisations were granted a read of the resource as it stands


@dataclass(frozen=True, slots=True)
class Change:
    rtype: str
    rid: str
    version_id: int  # the version created, updated to, or (shared) standing when granted
    what: What
    # The resource's `status` after the change, and before it (an update); Task.businessStatus
    # codes likewise. Codes only: enough to tell a topic without opening the body.
    status: str | None = None
    previous_status: str | None = None
    business_status: frozenset[str] = frozenset()
    previous_business_status: frozenset[str] = frozenset()
    # Organisations (other than the tenant) that may read it now and could not before.
    shared_with: frozenset[str] = frozenset()
    # The version's JSON, as stored (unsealed): processors read filters from it without a query.
    # Never in a repr or a log.
    body: bytes = field(default=b"", repr=False, compare=False)


Processor = Callable[[Session, Sequence[Change]], None]
_PROCESSORS: list[Processor] = []


def on_commit(processor: Processor) -> Processor:
    """Register a processor (idempotent): called with a session's changes before it commits."""
    if processor not in _PROCESSORS:
        _PROCESSORS.append(processor)
    return processor


def registered(processor: Processor) -> bool:
    return processor in _PROCESSORS


@dataclass(frozen=True, slots=True)
class _Recorded:
    change: Change
    savepoint: SessionTransaction | None  # the innermost savepoint open when it was recorded

    def inside(self, savepoint: SessionTransaction) -> bool:
        scope = self.savepoint
        while scope is not None:
            if scope is savepoint:
                return True
            scope = scope.parent
        return False


def record(session: Session, change: Change) -> None:
    """Note a change in the session's current transaction."""
    load_hooks()
    if session.get_transaction() is None:
        session.begin()
    recorded = _Recorded(change, session.get_nested_transaction())
    session.info.setdefault(_KEY, []).append(recorded)


def pending(session: Session) -> list[Change]:
    """The changes still standing in this session's transaction (for tests and processors)."""
    return [r.change for r in session.info.get(_KEY, [])]


@event.listens_for(Session, "before_commit", insert=True)
def _process_before_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint is released: its changes wait for the outermost commit
    while recorded := session.info.pop(_KEY, None):
        changes = [r.change for r in recorded]
        for processor in list(_PROCESSORS):
            processor(session, changes)


@event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous: SessionTransaction) -> None:
    recorded: list[_Recorded] | None = session.info.get(_KEY)
    if recorded and previous.nested:
        recorded[:] = [r for r in recorded if not r.inside(previous)]


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_KEY, None)
