"""What keeps the rows up to date: every process that writes registers the trigger, each
transaction enqueues one refresh job for the patients it touched (their ids, nothing else; a job
per 50), a refresh only ever rewrites its own patients' rows, and `spis outcomes rebuild`
recomputes them all."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.embedded import worker_env
from referral_service.jobs.service import JobName, enqueue
from referral_service.ledger.models import Member
from referral_service.outcomes import triggers
from referral_service.outcomes.models import (
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from referral_service.outcomes.rebuild import rebuild
from referral_service.outcomes.refresh import refresh_patient, system_context
from tests.fixtures.fhir import FHIR_JSON, load
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.spis_cli import InProcessSpis, in_process_spis
from tests.fixtures.systems import TestSystem, bearer
from tests.ledger.conftest import Routed, add_member, enrol, exchange, route
from tests.outcomes.rows_support import (
    partners,
    pending_refreshes,
    put_task,
    referral_row,
    run_refreshes,
)

CHECK = """
import sys
{start}
triggers = sys.modules.get("referral_service.outcomes.triggers")
from referral_service.jobs.service import HANDLERS
print(triggers is not None and triggers.registered(), "spis.refresh_outcomes" in HANDLERS)
"""


@pytest.mark.parametrize(
    ("start", "runs_jobs"),
    [
        # the API and the web pages, as `spis serve` (and uvicorn's workers) build them
        ("from referral_service.app import create_app; create_app()", False),
        ("import referral_service.cli", False),  # every other `spis` command, `spis demo`
        ("import workers.tasks.jobs", True),  # `spis worker`; the embedded worker is the same
    ],
)
def test_every_process_that_writes_registers_the_trigger(
    settings: Settings, start: str, runs_jobs: bool
) -> None:
    """In a fresh interpreter, with only what the process itself imports."""
    env = {**worker_env(settings), "SPIS_BROKER_URL": "memory://"}
    found = subprocess.run(
        [sys.executable, "-c", CHECK.format(start=start)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    registered, handler = found.stdout.split()
    assert registered == "True", found.stderr
    if runs_jobs:
        assert handler == "True"  # and it can run the refresh job itself


def test_one_refresh_per_transaction_with_the_patient_ids_only(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    patient_id = referral.patient.split("/")[1]
    # Patient, Consent, ServiceRequest and the referral Task: one Bundle, one job
    assert pending_refreshes(session_factory) == [{"patients": patient_id}]
    run_refreshes(session_factory, settings)
    timebank = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    child = route_now(session_factory, settings, referral.task_id)
    assert child is not None
    assert pending_refreshes(session_factory) == [{"patients": patient_id}]
    run_refreshes(session_factory, settings)
    assert referral_row(session_factory, referral.task_id).timebank_id == timebank.org_id

    put_task(client, timebank, child, status="accepted")  # the child and the referral Task
    assert pending_refreshes(session_factory) == [{"patients": patient_id}]


def test_an_exchange_between_two_referred_members_refreshes_both(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    routed: list[Routed] = [
        route(
            client,
            session_factory,
            settings,
            practice,
            practice_headers,
            timebank.org_id,
            nhs_number=nhs,
            referral_id=ref,
        )
        for nhs, ref in (("9434765919", "REF-A"), ("9000000009", "REF-B"))
    ]
    members = []
    for r in routed:
        enrolled = enrol(client, timebank_headers, timebank, r.child_task_id)
        assert enrolled.status_code == 201, enrolled.text
        members.append(enrolled.json()["member"]["id"])
    run_refreshes(session_factory, settings)

    made = exchange(client, timebank_headers, timebank, members[0], members[1], date="2026-11-20")
    assert made.status_code == 201, made.text
    # One job for both patients, in order.
    both = ",".join(sorted(r.patient_id for r in routed))
    assert pending_refreshes(session_factory) == [{"patients": both}]
    run_refreshes(session_factory, settings)
    first, second = (r.referral.task_id for r in routed)
    assert partners(session_factory, first) == {"2026-11-01": {members[1]}}
    assert partners(session_factory, second) == {"2026-11-01": {members[0]}}


def test_a_refresh_touches_its_own_patient_only_and_writes_nothing_without_a_referral(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    run_refreshes(session_factory, settings)
    before = snapshot(session_factory)
    patient = load("patient.json", practice.org_id)
    patient["identifier"][0]["value"] = "9000000009"
    sent = client.post("/fhir/Patient", json=patient, headers={**practice_headers, **FHIR_JSON})
    assert sent.status_code == 201, sent.text
    alone = sent.json()["id"]
    assert pending_refreshes(session_factory) == [{"patients": alone}]
    run_refreshes(session_factory, settings)
    with session_factory() as session, session.begin():
        assert refresh_patient(system_context(session, settings), alone) == 0
        assert refresh_patient(system_context(session, settings), "no-such-patient") == 0
    assert snapshot(session_factory) == before
    assert len(before[ReferralOutcome.__tablename__]) == 1


def test_a_referral_entered_in_error_keeps_no_row(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    run_refreshes(session_factory, settings)
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    task.update(status="entered-in-error", statusReason={"text": "Wrong patient"})
    sent = client.put(
        f"/fhir/{referral.task}", json=task, headers={**practice_headers, **FHIR_JSON}
    )
    assert sent.status_code == 200, sent.text
    run_refreshes(session_factory, settings)
    assert snapshot(session_factory)[ReferralOutcome.__tablename__] == []


def test_paused_writes_enqueue_nothing(
    session_factory: sessionmaker[Session], client: TestClient, practice: TestSystem
) -> None:
    with session_factory() as session, session.begin(), triggers.paused(session):
        session.add(Member(id="m-1", org_id=practice.org_id, alias="Sam", patient_id="p-1"))
    assert pending_refreshes(session_factory) == []
    with session_factory() as session, session.begin():
        session.add(Member(id="m-2", org_id=practice.org_id, alias="Ana", patient_id="p-2"))
    assert pending_refreshes(session_factory) == [{"patients": "p-2"}]


def test_a_transaction_about_many_patients_enqueues_a_job_per_fifty(
    session_factory: sessionmaker[Session], practice: TestSystem
) -> None:
    ids = [f"p-{n:03d}" for n in range(triggers.REFRESH_BATCH + 1)]
    with session_factory() as session, session.begin():
        for n, patient_id in enumerate(reversed(ids)):
            session.add(
                Member(id=f"m-{n}", org_id=practice.org_id, alias="M", patient_id=patient_id)
            )
    assert pending_refreshes(session_factory) == [
        {"patients": ",".join(ids[: triggers.REFRESH_BATCH])},
        {"patients": ids[-1]},
    ]


def test_a_job_of_several_patients_refreshes_each_and_an_earlier_releases_job_still_runs(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    referrals = [
        make_referral(client, practice_headers, practice.org_id, nhs_number=nhs, referral_id=ref)
        for nhs, ref in (("9434765919", "REF-A"), ("9000000009", "REF-B"))
    ]
    patients = sorted(r.patient.split("/")[1] for r in referrals)
    assert run_refreshes(session_factory, settings) == 2  # the intakes' own, out of the way
    with session_factory() as session, session.begin():
        session.execute(delete(ReferralOutcome))
        enqueue(session, JobName.REFRESH_OUTCOMES, patients=",".join(patients))
    assert run_refreshes(session_factory, settings) == 1
    assert {referral_row(session_factory, r.task_id).referral_id for r in referrals} == {
        r.task_id for r in referrals
    }
    with session_factory() as session, session.begin():
        session.execute(delete(ReferralOutcome))
        enqueue(session, JobName.REFRESH_OUTCOMES, patient=patients[0])  # as queued before
    assert run_refreshes(session_factory, settings) == 1
    with session_factory() as session:
        found = session.scalars(select(ReferralOutcome.referral_id)).all()
    first = next(r for r in referrals if r.patient == f"Patient/{patients[0]}")
    assert found == [first.task_id]


# --- rebuild -------------------------------------------------------------------------------------

TABLES = (ReferralOutcome, OutcomeDecline, OutcomeActivity, OutcomePartner, OutcomeScore)


def snapshot(session_factory: sessionmaker[Session]) -> dict[str, list[dict[str, Any]]]:
    """Every outcome row as plain values (the refresh time aside), in a stable order."""
    found = {}
    with session_factory() as session:
        for model in TABLES:
            columns = [c for c in model.__table__.columns if c.key != "refreshed_at"]
            rows = session.execute(select(*columns)).mappings().all()
            found[model.__tablename__] = sorted((dict(r) for r in rows), key=json_key)
    return found


def json_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


@pytest.fixture
def journeys(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> dict[str, list[dict[str, Any]]]:
    """Two people: one declined by a time bank then taken up, enrolled and exchanging; one not
    routed yet. Returns the rows the jobs kept."""
    near = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    far = add_timebank(session_factory, "Lewisham Time Bank", ["SE6"], ["befriending"], 1)
    referral = make_referral(client, practice_headers, practice.org_id)
    first = route_now(session_factory, settings, referral.task_id)
    assert first is not None
    put_task(client, near, first, status="rejected", statusReason={"text": "Full"})
    second = route_now(session_factory, settings, referral.task_id)
    assert second is not None
    put_task(client, far, second, status="accepted")
    member = enrol(client, bearer(client, far), far, second).json()["member"]["id"]
    sam = add_member(client, bearer(client, far), far, "Sam")
    exchange(client, bearer(client, far), far, member, sam, date="2026-11-20")
    make_referral(
        client, practice_headers, practice.org_id, nhs_number="9000000009", referral_id="REF-2"
    )
    run_refreshes(session_factory, settings)
    kept = snapshot(session_factory)
    assert [len(kept[model.__tablename__]) for model in TABLES] == [2, 1, 1, 1, 0]
    return kept


def forget_all(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session, session.begin():
        session.execute(delete(ReferralOutcome))  # the rest go with them (ON DELETE CASCADE)
    assert all(not rows for rows in snapshot(session_factory).values())


def test_rebuild_gives_the_rows_the_jobs_kept(
    session_factory: sessionmaker[Session],
    settings: Settings,
    journeys: dict[str, list[dict[str, Any]]],
) -> None:
    forget_all(session_factory)
    seen: list[tuple[int, int]] = []
    done = rebuild(
        session_factory, settings, batch_size=1, progress=lambda d, t: seen.append((d, t))
    )
    assert (done.patients, done.referrals, done.failed) == (2, 2, [])
    assert seen == [(1, 2), (2, 2)]
    assert snapshot(session_factory) == journeys

    with session_factory() as session, session.begin():  # in the caller's transaction
        assert rebuild(session, settings).referrals == 2
    assert snapshot(session_factory) == journeys


@pytest.fixture
def spis(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[InProcessSpis]:
    """Run `spis ...` in this process against the test database: (exit code, JSON, stderr)."""
    yield from in_process_spis(pg_url, tmp_path, monkeypatch, capsys, SPIS_BROKER_URL="memory://")


def test_spis_outcomes_rebuild(
    spis: Any,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_b: TestSystem,
    journeys: dict[str, list[dict[str, Any]]],
) -> None:
    forget_all(session_factory)
    assert spis("outcomes", "rebuild", "--practice", practice_b.org_id) == (
        0,
        {"patients": 0, "referrals": 0, "failed": []},
        "",
    )
    code, result, err = spis(
        "outcomes", "rebuild", "--practice", practice.org_id, "--batch-size", "1"
    )
    assert (code, result) == (0, {"patients": 2, "referrals": 2, "failed": []})
    assert err.splitlines() == [
        "spis outcomes rebuild: 1/2 patients",
        "spis outcomes rebuild: 2/2 patients",
    ]
    assert snapshot(session_factory) == journeys
