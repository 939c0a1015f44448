"""The job outbox: a job is a row before it is a message, so a broker outage only delays it."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    # The ids the job works on, as JSON: never patient data.
    args: Mapped[str] = mapped_column(Text)
    status: Mapped[JobStatus] = mapped_column(
        Enum(
            JobStatus, native_enum=False, length=16, values_callable=lambda s: [m.value for m in s]
        ),
        default=JobStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index("ix_job_status_next", "status", "next_attempt_at"),)

    def __repr__(self) -> str:
        return f"Job({self.name}, {self.id}, {self.status.value})"
