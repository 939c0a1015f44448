"""Failed sign-in attempts count even when the request that made them rolls back.

A refused sign-in raises (SignInRefused, SecondFactorRefused), and a caller that lets the error
reach its unit of work rolls the transaction back. The count of failures in a row must survive
that, or lock-out would depend on how each page handles a refusal. So, as audit failures do
(audit/pending.py): the failure is counted in the caller's transaction and remembered on the
session; if that transaction commits, nothing more happens; if it ends any other way, it is
counted again in a short transaction of its own, after the rollback has released the row.

Callers should still let the unit of work commit after a refusal (a page shows the form again
with the message): attempts are checked one at a time with the person's row locked, and a
committed count is what the next attempt sees at once. After a rollback, the next attempt may
be checked between the rollback and the recount, so a burst of simultaneous guesses can have
more than the threshold checked before the lock takes effect; the count, and so the back-off
(doubling per failure), still come out right.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction

from referral_service.config import Settings
from referral_service.people import repository, rules

log = logging.getLogger("spis.people")
_KEY = "spis.people.failed_attempts"


@dataclass(frozen=True, slots=True)
class Policy:
    threshold: int
    base_s: int
    max_s: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            settings.sign_in_lockout_threshold,
            settings.sign_in_lockout_base_s,
            settings.sign_in_lockout_max_s,
        )


@dataclass(frozen=True, slots=True)
class _Failure:
    person_id: str
    policy: Policy
    at: datetime


def count_failure(
    session: Session, person_id: str, policy: Policy, now: datetime
) -> datetime | None:
    """Count one failed attempt; when the account is locked by it, until when."""
    until = _count(session, _Failure(person_id, policy, now))
    session.info.setdefault(_KEY, []).append(_Failure(person_id, policy, now))
    return until


def _count(session: Session, failure: _Failure) -> datetime | None:
    failures = repository.count_failure(session, failure.person_id)
    policy = failure.policy
    until = rules.locked_until(
        failures,
        failure.at,
        threshold=policy.threshold,
        base_s=policy.base_s,
        max_s=policy.max_s,
    )
    if until is not None:
        repository.lock(session, failure.person_id, until)
    return until


@event.listens_for(Session, "after_commit")
def _counted_with_the_work(session: Session) -> None:
    if session.get_nested_transaction() is None:
        session.info.pop(_KEY, None)


@event.listens_for(Session, "after_transaction_end")
def _count_apart(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is not None or transaction.nested:
        return
    failures: list[_Failure] = session.info.pop(_KEY, [])
    if not failures:
        return
    bind = session.get_bind()
    engine = bind.engine if isinstance(bind, Connection) else bind
    try:
        with Session(engine) as apart, apart.begin():
            for failure in failures:
                _count(apart, failure)
    except SQLAlchemyError as exc:
        # Raising here would hide the error that rolled the work back; the loss is logged.
        log.error(
            "failed sign-in not counted",
            extra={"count": len(failures), "error_type": type(exc).__name__},
        )
