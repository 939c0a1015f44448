"""Recomputing every referral's outcome rows from source: for an existing database (resource
bodies are sealed, so a migration cannot compute them), after a bulk load that paused the
triggers (the synthetic data set), or whenever an operator doubts the rows (`spis outcomes
rebuild`). The same `refresh.refresh_patient` the job runs, patient by patient, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.errors import ServiceError
from referral_service.outcomes import repository
from referral_service.outcomes.refresh import refresh_patient, system_context

# A sessionmaker (a transaction per batch, committed), a unit of work factory such as the CLI's
# `Invocation.unit_of_work` (each call one transaction, committed when its block ends), or a
# Session (everything in the caller's transaction, which the caller commits).
Sessions = sessionmaker[Session] | Callable[[], AbstractContextManager[Session]] | Session
Progress = Callable[[int, int], None]  # (patients done, patients in all)


@dataclass
class Rebuilt:
    patients: int = 0
    referrals: int = 0
    # Patients whose rows could not be computed (a stored body that does not open): their old
    # rows are kept; the log and the audit trail name the row at fault.
    failed: list[str] = field(default_factory=list)


def rebuild(
    sessions: Sessions,
    settings: Settings,
    *,
    practice_id: str | None = None,
    batch_size: int = 200,
    progress: Progress | None = None,
) -> Rebuilt:
    """Recompute the rows of every patient with a referral (at `practice_id`, or everywhere),
    `batch_size` patients per transaction."""
    with _transaction(sessions) as session:
        patients = repository.referred_patients(session, practice_id)
    done = Rebuilt()
    for start in range(0, len(patients), batch_size):
        batch = patients[start : start + batch_size]
        with _transaction(sessions) as session:
            for patient_id in batch:
                _one(session, settings, patient_id, done)
        done.patients += len(batch)
        if progress is not None:
            progress(done.patients, len(patients))
    return done


def _one(session: Session, settings: Settings, patient_id: str, done: Rebuilt) -> None:
    try:
        with session.begin_nested():
            done.referrals += refresh_patient(system_context(session, settings), patient_id)
    except ServiceError:
        done.failed.append(patient_id)


@contextmanager
def _transaction(sessions: Sessions) -> Iterator[Session]:
    if isinstance(sessions, Session):
        yield sessions
    elif isinstance(sessions, sessionmaker):
        with sessions() as session, session.begin():
            yield session
    else:
        with sessions() as session:
            yield session
