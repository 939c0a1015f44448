"""Every query on the job outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from referral_service.jobs.models import Job, JobStatus


def add(session: Session, job: Job) -> None:
    session.add(job)


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
