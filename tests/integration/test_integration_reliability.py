"""Nothing accepted is lost: a worker killed mid-routing, a broker that was down, a silent broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.jobs.producer import Producer
from referral_service.jobs.service import PRODUCER_KEY, JobName, enqueue
from tests.fixtures.referrals import make_referral
from tests.fixtures.systems import TestSystem, bearer
from tests.integration.conftest import Worker, add_timebank, wait_for

pytestmark = pytest.mark.slow


def child_tasks(session_factory: sessionmaker[Session], referral_task_id: str) -> list[str]:
    with session_factory() as session:
        rows = session.execute(
            text("SELECT resource_id FROM search_index WHERE name = 'part-of' AND value = :ref"),
            {"ref": f"Task/{referral_task_id}"},
        )
        return [row[0] for row in rows]


def job_states(
    session_factory: sessionmaker[Session], name: str = JobName.ROUTE_REFERRAL.value
) -> list[tuple[str, int]]:
    """The jobs of one kind (routing unless named): every write also queues outcome refreshes."""
    query = text("SELECT status, attempts FROM job WHERE name = :name")
    with session_factory() as session:
        return [(r[0], r[1]) for r in session.execute(query, {"name": name})]


def test_worker_killed_mid_routing_routes_once_after_restart(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 3)
    worker = Worker(settings, beat=True)
    blocker = session_factory()
    try:
        worker.start()
        referral = make_referral(client, practice_headers, practice.org_id)
        # Hold the referral Task's row: the worker's routing blocks inside its transaction.
        blocker.execute(
            text("SELECT id FROM resource WHERE id = :id FOR UPDATE"), {"id": referral.task_id}
        )
        wait_for(lambda: _waiting_on_lock(session_factory), what="the worker to be mid-routing")
        worker.kill()
        blocker.rollback()
        assert child_tasks(session_factory, referral.task_id) == []

        worker.start()  # the relay sends the still-pending job again
        wait_for(
            lambda: child_tasks(session_factory, referral.task_id),
            timeout=60,
            what="routing after restart",
        )
        wait_for(
            lambda: all(s == "done" for s, _ in job_states(session_factory)),
            what="the job to finish",
        )
        assert len(child_tasks(session_factory, referral.task_id)) == 1
    finally:
        blocker.close()
        worker.stop()


def job_status(session_factory: sessionmaker[Session], job_id: str) -> str | None:
    with session_factory() as session:
        status = session.execute(text("SELECT status FROM job WHERE id = :id"), {"id": job_id})
        return status.scalar()


def _waiting_on_lock(session_factory: sessionmaker[Session]) -> bool:
    with session_factory() as session:
        waiting = session.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
    return bool(waiting)


def test_referrals_accepted_while_the_broker_is_down_are_routed_later(
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
) -> None:
    add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 3)
    broker_down = settings.model_copy(
        update={"broker_url": "redis://127.0.0.1:9/0"}
    )  # nothing listens
    with TestClient(create_app(broker_down)) as api:
        headers = bearer(api, practice)
        referrals = [
            make_referral(api, headers, practice.org_id, referral_id=f"R-{i}") for i in range(3)
        ]
    assert [s for s, _ in job_states(session_factory)] == ["pending"] * 3
    # The outcome refreshes those intakes queued wait in the outbox too, one each.
    refreshes = JobName.REFRESH_OUTCOMES.value
    assert [s for s, _ in job_states(session_factory, refreshes)] == ["pending"] * 3
    worker = Worker(settings, beat=True)
    try:
        worker.start()
        for referral in referrals:
            wait_for(lambda r=referral: child_tasks(session_factory, r.task_id), what="routing")
        wait_for(
            lambda: all(s == "done" for s, _ in job_states(session_factory, refreshes)),
            what="the outcome refreshes",
        )
    finally:
        worker.stop()


def test_silent_broker_gets_a_reminder_then_the_referral_moves_on(
    client: TestClient,
    session_factory: sessionmaker[Session],
    worker: Worker,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    slow = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 3)
    other = add_timebank(session_factory, "Lewisham Time Bank", ["SE6"], ["befriending"], 1)
    referral = make_referral(client, practice_headers, practice.org_id)
    [first] = wait_for(lambda: child_tasks(session_factory, referral.task_id), what="routing")
    slow_h = bearer(client, slow)

    producer = Producer(worker.settings)

    def sweep(days: int) -> None:
        """Run the beat's SLA task on the worker as if `days` had passed."""
        as_of = (datetime.now(UTC) + timedelta(days=days)).isoformat()
        producer.app.send_task("spis.sweep_broker_sla", kwargs={"as_of": as_of})

    def swept(days: int) -> None:
        """sweep(), returning once the worker has run it: the worker takes one message at a time,
        in order (solo pool), so a job sent after the sweep being done means the sweep is done.
        The job routes the referral again, which changes nothing while its child Task is open."""
        sweep(days)
        with session_factory() as session, session.begin():
            session.info[PRODUCER_KEY] = producer
            job_id = enqueue(session, JobName.ROUTE_REFERRAL, referral_task=referral.task_id)
        wait_for(lambda: job_status(session_factory, job_id) == "done", what="the sweep to run")

    swept(days=1)  # inside the SLA: nothing happens
    untouched = client.get(f"/fhir/Task/{first}", headers=slow_h).json()
    assert (untouched["meta"]["versionId"], untouched["status"]) == ("1", "requested")
    assert "businessStatus" not in untouched
    assert child_tasks(session_factory, referral.task_id) == [first]

    swept(days=8)  # 5 working days have passed whatever today is: marked, a reminder is due
    task = wait_for(
        lambda: (
            (t := client.get(f"/fhir/Task/{first}", headers=slow_h).json()).get("businessStatus")
            and t
        ),
        what="the reminder",
    )
    assert task["businessStatus"]["coding"][0]["code"] == "reminder-due"
    assert (task["meta"]["versionId"], task["status"]) == ("2", "requested")
    sweep(days=12)  # and the grace period too: re-routed to the other time bank
    wait_for(lambda: len(child_tasks(session_factory, referral.task_id)) == 2, what="re-routing")
    assert client.get(f"/fhir/Task/{first}", headers=slow_h).json()["status"] == "cancelled"
    inbox = client.get(
        f"/fhir/Task?owner=Organization/{other.org_id}&status=requested",
        headers=bearer(client, other),
    )
    assert len(inbox.json()["entry"]) == 1


def test_no_retry_can_outlive_the_redis_visibility_timeout(settings: Settings) -> None:
    """A message held longer than the visibility timeout would be delivered twice (security.md §6)."""
    from referral_service.jobs.producer import broker_transport_options
    from workers.tasks import jobs as job_tasks

    visibility = broker_transport_options(settings)["visibility_timeout"]
    assert visibility > job_tasks.MAX_BACKOFF_S + 1  # the longest retry countdown, jitter included
