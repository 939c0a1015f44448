"""How many SQL statements a referral intake and a time bank's batch take: a fixed number per
intake, and for a batch of questionnaires the same whatever the number of entries (they share
their reads, and their rows go in one INSERT per table). `SPIS_SHOW_STATEMENTS=1` (with `-s`)
prints them."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from anyio import to_thread
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.questionnaire_form import questionnaire_response
from referral_service import db
from referral_service.audit.sealer import SEALER_THREAD
from referral_service.config import Settings
from referral_service.jobs.models import Job
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.routing import route_now
from tests.fixtures.systems import TestSystem, bearer

SHOW = os.environ.get("SPIS_SHOW_STATEMENTS") == "1"


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        if threading.current_thread().name != SEALER_THREAD:  # the app's audit sealer
            seen.append(args[2])

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)
        if SHOW:
            for sql in seen:
                print("---", " ".join(sql.split())[:400])


@pytest.fixture
def filler(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> str:
    child_id = route_now(session_factory, settings, referral.task_id)
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    child = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    accepted = client.put(
        f"/fhir/Task/{child_id}", json={**child, "status": "accepted"}, headers=headers
    )
    assert accepted.status_code == 200, accepted.text
    return str(accepted.json()["focus"]["reference"])


def batch(referral: Referral, filler: str, n: int) -> dict[str, Any]:
    entries = []
    for i in range(n):
        qr = questionnaire_response(
            "swemwbs" if i % 2 == 0 else "ucla3",
            {str(k): str(1 + (i + k) % 3) for k in range(1, 8 if i % 2 == 0 else 4)},
            patient_ref=referral.patient,
            based_on_ref=filler,
            authored=f"2026-01-{1 + i % 28:02d}T10:00:00Z",
        )
        entries.append(
            {"resource": qr, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
        )
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


def test_an_intake_takes_a_fixed_number_of_statements(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    headers = {**practice_headers, **FHIR_JSON}
    first = referral_bundle(practice.org_id, nhs_number="9434765919", referral_id="R-1")
    assert client.post("/fhir", json=first, headers=headers).status_code == 200
    second = referral_bundle(practice.org_id, nhs_number="9434765870", referral_id="R-2")
    with statements() as seen:
        answer = client.post("/fhir", json=second, headers=headers)
    assert answer.status_code == 200, answer.text
    # the resubmission lookup, two conditional matches (NHS number, ifNoneExist), the data key,
    # the rows written (resources, versions, index and the submission: one statement), the
    # subscriptions, the audit events, the jobs (routing, and the outcomes refresh enqueued
    # during the commit, in one statement at its very end). Not the practice: the requester is
    # the caller's own organisation, there without a look (referrals/targets.py).
    assert len(seen) <= 8
    assert sum(" ".join(s.split()).startswith("INSERT INTO job ") for s in seen) == 1
    assert not [s for s in seen if "FROM organisation" in s]


def test_an_intake_takes_one_threadpool_hop_and_enqueues_its_jobs(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Bundle's work and its commit in one worker thread, where a sync endpoint on the session
    dependency took two hops (the endpoint, then the commit); both jobs committed."""
    headers = {**practice_headers, **FHIR_JSON}
    bundle = referral_bundle(practice.org_id, nhs_number="9434765919", referral_id="R-1")
    hops: list[str] = []
    run_sync, units = to_thread.run_sync, db._UNITS_OF_WORK

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    class CountedUnits(ThreadPoolExecutor):
        def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(fn, "__name__", repr(fn)))
            return units.submit(fn, *args, **kwargs)

    # Every way into a worker thread: anyio's (FastAPI's, Starlette's) and the units of work's.
    monkeypatch.setattr(to_thread, "run_sync", counted)
    monkeypatch.setattr(db, "_UNITS_OF_WORK", CountedUnits(max_workers=1))
    answer = client.post("/fhir", json=bundle, headers=headers)
    monkeypatch.undo()
    assert answer.status_code == 200, answer.text
    assert len(hops) == 1, hops
    with session_factory() as session:
        names = sorted(session.scalars(select(Job.name)))
    assert names == ["spis.refresh_outcomes", "spis.route_referral"]


def test_a_batch_of_questionnaires_takes_the_same_statements_whatever_its_size(
    client: TestClient, timebank_a: TestSystem, referral: Referral, filler: str
) -> None:
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    counts = []
    for n in (1, 11):
        with statements() as seen:
            answer = client.post("/fhir", json=batch(referral, filler, n), headers=headers)
        assert answer.status_code == 200, answer.text
        statuses = {e["response"]["status"] for e in answer.json()["entry"]}
        assert statuses == {"201 Created"}
        counts.append(len(seen))
    assert counts[1] == counts[0]
