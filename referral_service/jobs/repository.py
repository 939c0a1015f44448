"""Every query on the job outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.orm import Session

from referral_service.jobs.models import Job, JobStatus
from referral_service.kit.clock import utcnow
from referral_service.kit.prepared import inserting

_TABLE = cast(Table, Job.__table__)
# Built once and sent by the driver (kit/prepared.py): the unit of work's flush of a
# transaction's job rows cost about 0.5 ms of an intake's CPU, this statement a tenth of that.
_INSERT = inserting(_TABLE)


def add(session: Session, job: Job) -> None:
    session.add(job)


def insert_new(connection: Connection, jobs: Sequence[Job]) -> None:
    """New jobs' rows in one statement, now, not through the unit of work (the Job objects stay
    out of the session): pending, no attempts yet, due now."""
    now = utcnow()
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
