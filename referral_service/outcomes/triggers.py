"""What enqueues a refresh of the outcome rows: any write that can change a referral's figures,
whoever makes it, through any path (a FHIR write, a web form, the ledger, routing, the SLA sweep,
consent enforcement).

A session listener, registered on SQLAlchemy's `Session` class when this module is imported, as
`jobs/service.py` registers its own. `referral_service/outcomes/__init__.py` imports it, so every
process that loads any outcomes module has it: the API and the web pages (intake calls
`outcomes.eligibility` through `referrals.lifecycle`), the worker (`workers/tasks/jobs.py` imports
the refresh job's handler), the CLI and the demo (`spis outcomes ...` is part of the parser), and the
tests (`kit.registry.load_all_models`). `tests/outcomes/test_rows_triggers.py` checks each entry
point in a fresh interpreter.

It notes the patients new rows are about:
- a stored resource version naming a Patient in its `patient` search parameter (a Task, a score
  or enrolment Observation, an exchange's Procedure, a Consent, a ServiceRequest) or a Patient
  itself (a national data opt-out set or cleared), when the store queues it (store/write_queue.py:
  resource rows do not go through the unit of work);
- after each flush, a ledger member enrolled from a referral, and both members of a new exchange
  or reversal (through their entries), when a member came from a referral.
When the outermost transaction commits, it enqueues one `spis.refresh_outcomes` job for the
patients it noted (`patients`: their Patient resource ids, comma-separated, in order; one job for
every REFRESH_BATCH of them), in the same transaction: the job row commits with the change or not
at all, and the outbox relays it if the broker is down (jobs/service.py). A time bank's batch of
questionnaires about 20 patients enqueued 20 jobs, each a row, a message and a worker run: 5% of
the batch's CPU on the API's side for the messages alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, UOWTransaction

from referral_service.jobs.service import JobName, enqueue
from referral_service.ledger.models import LedgerEntry, Member
from referral_service.outcomes import repository
from referral_service.store import write_queue

_PATIENTS = "spis.outcomes.patients"
_MEMBERS = "spis.outcomes.members"
_PAUSED = "spis.outcomes.paused"
_PATIENT_PREFIX = "Patient/"
_PATIENT_NAMES = frozenset({"patient", "subject"})
_WATCHED = (Member, LedgerEntry)
# Patients per refresh job: one job's refresh locks each of them until it commits, and a failure
# runs all of them again.
REFRESH_BATCH = 50


@contextmanager
def paused(session: Session) -> Iterator[None]:
    """Writes in this block enqueue no refresh. Only for bulk loads that are followed by
    `spis outcomes rebuild` (the synthetic data set): otherwise a change would be lost."""
    session.info[_PAUSED] = True
    try:
        yield
        session.flush()  # what the block wrote is flushed (and so passed over) while paused
    finally:
        session.info.pop(_PAUSED, None)


@write_queue.on_queued
def _note_version(session: Session, rtype: str, rid: str, index: Sequence[dict[str, Any]]) -> None:
    if session.info.get(_PAUSED):
        return
    patients: set[str] = session.info.setdefault(_PATIENTS, set())
    if rtype == "Patient":
        patients.add(rid)
    for row in index:
        value = row["value"]
        # `patient` rows (a Consent's), or `subject` rows, which are the other types' `patient`
        # values (search_params.stored_name): a Patient's either way.
        if row["name"] in _PATIENT_NAMES and value and value.startswith(_PATIENT_PREFIX):
            patients.add(value.removeprefix(_PATIENT_PREFIX))


@event.listens_for(Session, "after_flush")
def _note(session: Session, _flush: UOWTransaction) -> None:
    if session.info.get(_PAUSED):
        return
    patients: set[str] = session.info.setdefault(_PATIENTS, set())
    members: set[tuple[str, str]] = session.info.setdefault(_MEMBERS, set())
    for row in session.new:
        if isinstance(row, Member) and row.patient_id:
            patients.add(row.patient_id)
        elif isinstance(row, LedgerEntry):
            members.add((row.org_id, row.member_id))


@event.listens_for(Session, "before_commit")
def _enqueue(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint is released: the outermost commit enqueues
    if any(isinstance(row, _WATCHED) for row in session.new):
        session.flush()  # so that `_note` sees what the commit's own flush would write
    patients: set[str] = session.info.pop(_PATIENTS, set())
    members: set[tuple[str, str]] = session.info.pop(_MEMBERS, set())
    if members:
        patients.update(repository.patients_of_members(session, members))
    ordered = sorted(patients)
    for start in range(0, len(ordered), REFRESH_BATCH):
        batch = ordered[start : start + REFRESH_BATCH]
        enqueue(session, JobName.REFRESH_OUTCOMES, patients=",".join(batch))


@event.listens_for(Session, "after_transaction_end")
def _forget(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_PATIENTS, None)
        session.info.pop(_MEMBERS, None)


def registered() -> bool:
    """Whether this process's sessions enqueue refreshes (what the entry point test checks)."""
    return (
        event.contains(Session, "after_flush", _note)
        and event.contains(Session, "before_commit", _enqueue)
        and write_queue.observed(_note_version)
    )
