"""How a real worker classifies a job's failure (STYLE.md §4): a business outcome ends the job row
`failed` with its reason and is never retried; a transient fault is retried and then succeeds."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.jobs.producer import Producer
from referral_service.jobs.service import PRODUCER_KEY, JobName, enqueue
from tests.fixtures.referrals import make_referral
from tests.fixtures.systems import TestSystem
from tests.integration.conftest import Worker, add_timebank, wait_for

pytestmark = pytest.mark.slow

# Longer than the first retry's countdown (2**0 s plus up to 1 s of jitter) and the relay's wait
# (2 s, run every second): a job that was going to run again has run again by then.
RETRY_WINDOW_S = 5


def job_row(session_factory: sessionmaker[Session], job_id: str) -> dict[str, Any]:
    with session_factory() as session:
        row = session.execute(
            text("SELECT status, attempts, last_error FROM job WHERE id = :id"), {"id": job_id}
        ).one()
    return dict(row._mapping)


def only_job(session_factory: sessionmaker[Session]) -> str:
    """The one routing job (the referral's writes also queue outcome refreshes)."""
    query = text("SELECT id FROM job WHERE name = :name")
    with session_factory() as session:
        [job_id] = session.execute(query, {"name": JobName.ROUTE_REFERRAL.value}).scalars()
    return str(job_id)


def child_tasks(session_factory: sessionmaker[Session], referral_task_id: str) -> list[str]:
    with session_factory() as session:
        rows = session.execute(
            text("SELECT resource_id FROM search_index WHERE name = 'part-of' AND value = :ref"),
            {"ref": f"Task/{referral_task_id}"},
        )
        return [row[0] for row in rows]


def test_a_business_error_fails_the_job_with_its_reason_and_is_not_retried(
    session_factory: sessionmaker[Session], settings: Settings, worker: Worker
) -> None:
    gone = str(uuid.uuid4())  # a referral Task deleted (or never stored) before routing ran
    with session_factory() as session:
        session.info[PRODUCER_KEY] = Producer(settings)  # sent to the worker after commit
        job_id = enqueue(session, JobName.ROUTE_REFERRAL, referral_task=gone)
        session.commit()

    wait_for(lambda: job_row(session_factory, job_id)["status"] != "pending", what="the job")
    time.sleep(RETRY_WINDOW_S)

    # The service's own message, not an exception class: the job ran to a business answer.
    assert job_row(session_factory, job_id) == {
        "status": "failed",
        "attempts": 1,
        "last_error": f"Task/{gone} is not known",
    }


def test_a_transient_database_error_is_retried_and_the_referral_is_routed_once(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 3)
    referral = make_referral(client, practice_headers, practice.org_id)  # queued: no worker yet
    worker = Worker(settings, beat=True)
    blocker = session_factory()
    try:
        # Hold the referral Task's row so the worker's routing waits inside its transaction...
        blocker.execute(
            text("SELECT id FROM resource WHERE id = :id FOR UPDATE"), {"id": referral.task_id}
        )
        worker.start()
        [backend] = wait_for(
            lambda: _backends_waiting_on_a_lock(session_factory), what="the worker to be routing"
        )
        # ...then drop its connection, as a database restart or a network cut would.
        with session_factory() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        blocker.rollback()

        job_id = only_job(session_factory)
        wait_for(lambda: job_row(session_factory, job_id)["status"] == "done", what="the retry")
        time.sleep(RETRY_WINDOW_S)
    finally:
        blocker.close()
        worker.stop()

    assert job_row(session_factory, job_id) == {
        "status": "done",
        "attempts": 2,  # the attempt that lost its connection, then the one that routed
        "last_error": "OperationalError",
    }
    assert len(child_tasks(session_factory, referral.task_id)) == 1


def _backends_waiting_on_a_lock(session_factory: sessionmaker[Session]) -> list[int]:
    with session_factory() as session:
        rows = session.execute(
            text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
        )
        return [row[0] for row in rows]
