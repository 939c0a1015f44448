"""The broker SLA sweep, in process: which time bank Tasks it marks `reminder-due`, which it
re-routes, which it leaves alone, and the counts it returns (DESIGN §3 step 3)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import task as fhir_task
from referral_service.config import Settings
from referral_service.jobs.models import Job
from referral_service.routing import service as routing
from referral_service.routing import sla
from referral_service.store import service as resources
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem

# A Monday. With SPIS_BROKER_SLA 5 and a grace of 2 working days, a Task authored on...
AS_OF = "2099-01-12T12:00:00+00:00"
FRESH = "2099-01-09T09:00:00Z"  # ...Friday 9th is due Friday 16th: inside its SLA
SILENT = "2099-01-02T09:00:00Z"  # ...Friday 2nd was due Friday 9th, grace ends Tuesday 13th
LONG_SILENT = "2098-12-18T09:00:00Z"  # ...was due 25 December, grace ended 29 December


def set_child(
    session_factory: sessionmaker[Session], settings: Settings, task_id: str, **changes: Any
) -> None:
    with session_factory() as session, session.begin():
        ctx = routing.system_context(session, settings)
        row = resources.load(ctx, "Task", task_id, for_update=True)
        resources.update(ctx, row, {**resources.as_dict(row), **changes})


def stored(
    session_factory: sessionmaker[Session], settings: Settings, task_id: str
) -> tuple[int, dict[str, Any]]:
    with session_factory() as session:
        row = resources.load(routing.system_context(session, settings), "Task", task_id)
        return row.version_id, resources.as_dict(row)


def route_jobs(session_factory: sessionmaker[Session], referral: Referral) -> int:
    with session_factory() as session:
        jobs = session.scalars(select(Job).where(Job.name == "spis.route_referral")).all()
        return sum(json.loads(job.args) == {"referral_task": referral.task_id} for job in jobs)


def legacy_mark() -> dict[str, Any]:
    """The businessStatus versions before the rename stamped."""
    return fhir_task.business_status("reminder-sent", "No answer: reminder sent")


def test_the_sweep_marks_the_silent_re_routes_the_long_silent_and_leaves_the_rest(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 5)
    names = ("fresh", "silent", "legacy", "legacy-overdue", "overdue")
    referrals = {
        name: make_referral(client, practice_headers, practice.org_id, referral_id=f"R-{name}")
        for name in names
    }
    child = {name: route_now(session_factory, settings, r.task_id) for name, r in referrals.items()}
    assert all(child.values())
    setup = {
        "fresh": {"authoredOn": FRESH},
        "silent": {"authoredOn": SILENT},
        "legacy": {"authoredOn": SILENT, "businessStatus": legacy_mark()},
        "legacy-overdue": {"authoredOn": LONG_SILENT, "businessStatus": legacy_mark()},
        "overdue": {
            "authoredOn": LONG_SILENT,
            "businessStatus": fhir_task.business_status("reminder-due", "due"),
        },
    }
    for name, changes in setup.items():
        set_child(session_factory, settings, str(child[name]), **changes)
    before = {name: stored(session_factory, settings, str(child[name])) for name in names}
    referral_tasks = {n: stored(session_factory, settings, r.task_id) for n, r in referrals.items()}

    with session_factory() as session, session.begin():
        counts = sla.sweep(session, settings, as_of=AS_OF)

    assert counts == {"reminded": 1, "rerouted": 2}
    after = {name: stored(session_factory, settings, str(child[name])) for name in names}
    # inside its SLA, or marked already (by this version or before the rename): untouched
    assert after["fresh"] == before["fresh"]
    assert after["legacy"] == before["legacy"]
    # silent past the SLA: marked, still waiting for the time bank
    version, silent = after["silent"]
    assert version == before["silent"][0] + 1
    assert silent["status"] == "requested"
    assert silent["businessStatus"]["coding"] == [
        {
            "system": "https://spis.example.org/fhir/CodeSystem/referral-business-status",
            "code": "reminder-due",
            "display": "No answer within 5 working days: a reminder is due",
        }
    ]
    # marked and past the grace period, whichever code marked it: cancelled and routed onwards
    for name in ("legacy-overdue", "overdue"):
        _, task = after[name]
        assert task["status"] == "cancelled", name
        assert task["statusReason"] == {"text": sla.NO_ANSWER}, name
        assert task["businessStatus"] == before[name][1]["businessStatus"], name
        assert route_jobs(session_factory, referrals[name]) == 2, name  # intake's, and this one
    for name in ("fresh", "silent", "legacy"):
        assert route_jobs(session_factory, referrals[name]) == 1, name
    # the referral Tasks themselves are not time bank Tasks: never marked
    assert {
        n: stored(session_factory, settings, r.task_id) for n, r in referrals.items()
    } == referral_tasks


def test_a_second_sweep_at_the_same_moment_changes_nothing(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child = str(route_now(session_factory, settings, referral.task_id))
    set_child(session_factory, settings, child, authoredOn=SILENT)

    with session_factory() as session, session.begin():
        assert sla.sweep(session, settings, as_of=AS_OF) == {"reminded": 1, "rerouted": 0}
    marked = stored(session_factory, settings, child)
    with session_factory() as session, session.begin():
        assert sla.sweep(session, settings, as_of=AS_OF) == {"reminded": 0, "rerouted": 0}

    assert stored(session_factory, settings, child) == marked
