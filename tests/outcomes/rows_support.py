"""Helpers for the outcome rows tests: the jobs the triggers enqueued, run as the worker runs
them, and the rows read back as plain values."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.jobs import service as jobs
from referral_service.jobs.models import Job, JobStatus
from referral_service.jobs.service import JobName
from referral_service.outcomes import refresh as _handler  # noqa: F401 - as the worker imports it
from referral_service.outcomes.models import (
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.systems import TestSystem, bearer


def pending_refreshes(session_factory: sessionmaker[Session]) -> list[dict[str, str]]:
    """The arguments of the refresh jobs waiting to run, oldest first."""
    with session_factory() as session:
        stmt = (
            select(Job.args)
            .where(Job.name == JobName.REFRESH_OUTCOMES.value, Job.status == JobStatus.PENDING)
            .order_by(Job.created_at)
        )
        return [json.loads(args) for args in session.scalars(stmt)]


def run_refreshes(session_factory: sessionmaker[Session], settings: Settings) -> int:
    """Run every pending refresh job, each in its own transaction as the worker does; how many
    ran. (No broker in these tests: the rows wait in the outbox until run here.)"""
    with session_factory() as session:
        stmt = select(Job.id).where(
            Job.name == JobName.REFRESH_OUTCOMES.value, Job.status == JobStatus.PENDING
        )
        ids = list(session.scalars(stmt.order_by(Job.created_at)))
    for job_id in ids:
        with session_factory() as session, session.begin():
            assert jobs.run(session, settings, job_id)
    with session_factory() as session:
        failed = session.scalars(select(Job).where(Job.status == JobStatus.FAILED)).all()
        assert failed == [], [job.last_error for job in failed]
    return len(ids)


def referral_row(session_factory: sessionmaker[Session], referral_id: str) -> ReferralOutcome:
    with session_factory() as session:
        return session.get_one(ReferralOutcome, referral_id)


def rows_of(
    session_factory: sessionmaker[Session], model: type[Any], referral_id: str
) -> list[Any]:
    with session_factory() as session:
        stmt = select(model).where(model.referral_id == referral_id)
        return list(session.scalars(stmt))


def declines(session_factory: sessionmaker[Session], referral_id: str) -> list[tuple[str, str]]:
    found = rows_of(session_factory, OutcomeDecline, referral_id)
    return sorted((d.timebank_id, d.reason) for d in found)


def activity(
    session_factory: sessionmaker[Session], referral_id: str
) -> dict[str, tuple[int, int, int]]:
    found = rows_of(session_factory, OutcomeActivity, referral_id)
    return {a.month.isoformat(): (a.minutes_given, a.minutes_received, a.exchanges) for a in found}


def partners(session_factory: sessionmaker[Session], referral_id: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for p in rows_of(session_factory, OutcomePartner, referral_id):
        found.setdefault(p.month.isoformat(), set()).add(p.partner_member_id)
    return found


def scores(session_factory: sessionmaker[Session], referral_id: str) -> dict[str, OutcomeScore]:
    return {s.scale: s for s in rows_of(session_factory, OutcomeScore, referral_id)}


def put_task(
    client: TestClient, timebank: TestSystem, task_id: str, **changes: Any
) -> dict[str, Any]:
    """The time bank changes its own Task over FHIR, as a broker's system does."""
    headers = bearer(client, timebank)
    task = client.get(f"/fhir/Task/{task_id}", headers=headers).json()
    task.update(changes)
    response = client.put(f"/fhir/Task/{task_id}", json=task, headers={**headers, **FHIR_JSON})
    assert response.status_code == 200, response.text
    return dict(response.json())
