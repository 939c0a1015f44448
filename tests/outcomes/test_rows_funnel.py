"""The outcome rows a referral's journey leaves, driven through the real flows (FHIR intake,
routing, the broker's answers, enrolment and exchanges in the ledger): funnel timestamps from the
Tasks' histories, declines with their codes, monthly activity net of a reversal, partners, and
the coded reason when no time bank could take a referral."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.codes import DECLINE_REASON_SYSTEM
from fhir_adapters.measures import REJECTED_REASON_SYSTEM, REJECTED_REASONS
from referral_service.config import Settings
from referral_service.kit.clock import fhir_instant
from referral_service.principal import Principal
from referral_service.routing.service import system_context
from referral_service.store import service as store
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer
from tests.ledger.conftest import add_member, enrol, exchange, reverse
from tests.outcomes.rows_support import (
    activity,
    declines,
    partners,
    put_task,
    referral_row,
    run_refreshes,
)


def history(client: TestClient, headers: dict[str, str], task_id: str) -> list[dict[str, Any]]:
    """The Task's versions, oldest first."""
    found = client.get(f"/fhir/Task/{task_id}/_history", headers=headers).json()
    return sorted(
        (e["resource"] for e in found["entry"]), key=lambda t: int(t["meta"]["versionId"])
    )


def first_stamp(versions: list[dict[str, Any]], status: str) -> str:
    return next(v["meta"]["lastUpdated"] for v in versions if v["status"] == status)


def test_a_referral_from_intake_to_completion(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    near = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    far = add_timebank(session_factory, "Lewisham Time Bank", ["SE6"], ["befriending"], 1)
    referral = make_referral(client, practice_headers, practice.org_id)
    assert run_refreshes(session_factory, settings) == 1  # one transaction, one patient, one job
    row = referral_row(session_factory, referral.task_id)
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert (row.status, fhir_instant(row.received_at), row.eligible) == (
        "requested",
        task["authoredOn"],
        True,
    )
    assert (row.routed_at, row.accepted_at, row.timebank_id, row.member_id) == (None,) * 4
    assert row.practice_id == practice.org_id
    assert f"Patient/{row.patient_id}" == referral.patient

    # Routed to the time bank with more room, which declines with a coded reason.
    first = route_now(session_factory, settings, referral.task_id)
    assert first is not None
    no_room = {"coding": [{"system": DECLINE_REASON_SYSTEM, "code": "no-capacity"}], "text": "Full"}
    put_task(client, near, first, status="rejected", statusReason=no_room)
    second = route_now(session_factory, settings, referral.task_id)
    assert second is not None
    assert second != first
    put_task(client, far, second, status="accepted")

    # The person joins the second time bank and exchanges time; one exchange is undone.
    broker = bearer(client, far)
    enrolled = enrol(client, broker, far, second)
    assert enrolled.status_code == 201, enrolled.text
    grace = enrolled.json()["member"]["id"]
    sam, ana = add_member(client, broker, far, "Sam"), add_member(client, broker, far, "Ana")
    for giver, receiver, minutes, day in (
        (sam, grace, 120, "2026-10-05"),
        (grace, ana, 60, "2026-10-20"),
        (grace, sam, 30, "2026-11-02"),
        (sam, ana, 90, "2026-11-03"),  # not the referred member's
    ):
        made = exchange(client, broker, far, giver, receiver, minutes=minutes, date=day)
        assert made.status_code == 201, made.text
    mistake = exchange(client, broker, far, grace, ana, minutes=45, date="2026-11-04")
    assert reverse(client, broker, far, mistake.json()["id"]).status_code == 201
    put_task(client, far, second, status="in-progress")
    put_task(client, far, second, status="completed")

    assert run_refreshes(session_factory, settings) > 0
    row = referral_row(session_factory, referral.task_id)
    first_versions = history(client, practice_headers, first)
    second_versions = history(client, practice_headers, second)
    referral_versions = history(client, practice_headers, referral.task_id)
    assert (row.status, row.timebank_id) == ("completed", far.org_id)
    assert fhir_instant(row.routed_at) == first_versions[0]["meta"]["lastUpdated"]
    assert fhir_instant(row.accepted_at) == first_stamp(second_versions, "accepted")
    assert fhir_instant(row.completed_at) == first_stamp(referral_versions, "completed")
    assert row.rejected_reason is None
    assert row.member_id == grace
    assert row.enrolled_at is not None
    assert row.first_exchange_on == date(2026, 10, 5)
    assert row.first_gift_on == date(2026, 10, 20)
    assert declines(session_factory, referral.task_id) == [(near.org_id, "no-capacity")]
    # Given, received, exchanges per month; the 45 minutes and their reversal count nowhere.
    assert activity(session_factory, referral.task_id) == {
        "2026-10-01": (60, 120, 2),
        "2026-11-01": (30, 0, 1),
    }
    assert partners(session_factory, referral.task_id) == {
        "2026-10-01": {sam, ana},
        "2026-11-01": {sam},
    }


def test_a_decline_without_a_code_counts_as_unknown(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    only = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    referral = make_referral(client, practice_headers, practice.org_id)
    child = route_now(session_factory, settings, referral.task_id)
    assert child is not None
    put_task(client, only, child, status="rejected", statusReason={"text": "Full until spring"})
    assert route_now(session_factory, settings, referral.task_id) is None  # no one else

    run_refreshes(session_factory, settings)
    row = referral_row(session_factory, referral.task_id)
    assert (row.status, row.rejected_reason, row.timebank_id) == (
        "rejected",
        "no-time-bank",
        only.org_id,
    )
    assert declines(session_factory, referral.task_id) == [(only.org_id, "unknown")]
    assert row.accepted_at is None
    assert row.member_id is None


def _deny_time_bank(bundle: dict[str, Any], org_id: str) -> None:
    consent = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Consent"
    )
    role = {"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP"}
    consent["provision"]["provision"].append(
        {
            "type": "deny",
            "actor": [
                {"role": {"coding": [role]}, "reference": {"reference": f"Organization/{org_id}"}}
            ],
        }
    )


def _without_address(bundle: dict[str, Any], _org_id: str) -> None:
    patient = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"
    )
    patient.pop("address")


@pytest.mark.parametrize(
    ("change", "catchment", "code"),
    [
        (None, ["E8"], "no-time-bank"),
        (_without_address, ["SE6"], "no-address"),
        (_deny_time_bank, ["SE6"], "consent-denies"),
    ],
)
def test_a_referral_no_time_bank_could_take_carries_a_coded_reason(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    change: Any,
    catchment: list[str],
    code: str,
) -> None:
    timebank = add_timebank(session_factory, "The only time bank", catchment, ["befriending"], 2)
    bundle = referral_bundle(practice.org_id)
    if change is not None:
        change(bundle, timebank.org_id)
    sent = client.post("/fhir", json=bundle, headers={**practice_headers, **FHIR_JSON})
    assert sent.status_code == 200, sent.text
    sr = "/".join(sent.json()["entry"][2]["response"]["location"].split("/")[:2])
    [entry] = client.get(f"/fhir/Task?focus={sr}", headers=practice_headers).json()["entry"]
    task_id = entry["resource"]["id"]

    assert route_now(session_factory, settings, task_id) is None
    task = client.get(f"/fhir/Task/{task_id}", headers=practice_headers).json()
    assert task["status"] == "rejected"
    assert task["statusReason"]["coding"] == [
        {"system": REJECTED_REASON_SYSTEM, "code": code, "display": REJECTED_REASONS[code]}
    ]
    assert task["statusReason"]["text"]  # the GP's explanation stays
    run_refreshes(session_factory, settings)
    row = referral_row(session_factory, task_id)
    assert (row.status, row.rejected_reason, row.routed_at) == ("rejected", code, None)


def test_a_rejection_stored_before_the_code_existed_counts_as_no_time_bank(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    add_timebank(session_factory, "Hackney Time Bank", ["E8"], ["befriending"], 2)
    assert route_now(session_factory, settings, referral.task_id) is None
    with session_factory() as session, session.begin():  # as older versions of SPIS wrote it
        ctx = system_context(session, settings)
        assert ctx.principal == Principal.spis()
        row = store.load(ctx, "Task", referral.task_id, for_update=True)
        task = store.as_dict(row)
        task["statusReason"] = {"text": task["statusReason"]["text"]}
        store.update(ctx, row, task)

    run_refreshes(session_factory, settings)
    assert referral_row(session_factory, referral.task_id).rejected_reason == "no-time-bank"
