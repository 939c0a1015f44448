"""Every query on the job outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, select, text
from sqlalchemy.orm import Session

from referral_service.jobs.models import Job, JobStatus
from referral_service.kit.clock import utcnow
from referral_service.kit.prepared import Prepared, inserting

_TABLE = cast(Table, Job.__table__)
# Built once and sent by the driver (kit/prepared.py): the unit of work's flush of a
# transaction's job rows cost about 0.5 ms of an intake's CPU, this statement a tenth of that.
_INSERT = inserting(_TABLE)
# PostgreSQL, two jobs or more: one INSERT of all of them, each column one array (as the audit
# trail's events go in). psycopg's executemany sends one INSERT per row: a time bank's batch
# enqueues an outcomes refresh for each of its some twenty patients. Pending, no attempts yet,
# due now, as `inserting` writes each.
_INSERT_MANY_PG = Prepared(
    text(
        "INSERT INTO job (id, name, args, status, attempts, created_at, next_attempt_at) "
        "SELECT id, name, args, :status, 0, :now, :now FROM unnest(CAST(:id AS TEXT[]), "
        "CAST(:name AS TEXT[]), CAST(:args AS TEXT[])) AS j(id, name, args)"
    ),
    binary=True,
)


def add(session: Session, job: Job) -> None:
    session.add(job)


def insert_new(connection: Connection, jobs: Sequence[Job]) -> None:
    """New jobs' rows in one statement, now, not through the unit of work (the Job objects stay
    out of the session): pending, no attempts yet, due now."""
    now = utcnow()
    if len(jobs) > 1 and connection.dialect.name == "postgresql":
        arrays = {
            "id": [job.id for job in jobs],
            "name": [job.name for job in jobs],
            "args": [job.args for job in jobs],
            "status": JobStatus.PENDING.value,
            "now": now,
        }
        _INSERT_MANY_PG.run(connection, [arrays])
        return
    rows = [
        {
            "id": job.id,
            "name": job.name,
            "args": job.args,
            "status": JobStatus.PENDING.value,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "last_error": None,
        }
        for job in jobs
    ]
    _INSERT.run(connection, rows)


def get_for_update(session: Session, job_id: str) -> Job | None:
    return session.scalar(select(Job).where(Job.id == job_id).with_for_update())


def due(session: Session, before: datetime, limit: int) -> list[Job]:
    stmt = (
        select(Job)
        .where(Job.status == JobStatus.PENDING, Job.next_attempt_at <= before)
        .order_by(Job.next_attempt_at)
        .limit(limit)
    )
    return list(session.scalars(stmt))
