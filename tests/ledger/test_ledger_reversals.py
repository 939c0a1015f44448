"""Reversing entries: a mistaken exchange is undone by a new exchange, never edited; the history
shows both, every figure is still a plain sum, and the GP's record of it is corrected."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.parse import validate_resource
from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.ledger import repository
from referral_service.ledger.models import Exchange, LedgerEntry
from referral_service.store import service as store
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import (
    Routed,
    add_member,
    context_of,
    enrol,
    exchange,
    ledger_url,
    reverse,
    route,
)


def account(client: TestClient, headers: dict[str, str], tb: TestSystem, member: str) -> Any:
    response = client.get(ledger_url(tb, f"/members/{member}"), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def events(session_factory: sessionmaker[Session]) -> list[AuditEvent]:
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def counts(session_factory: sessionmaker[Session]) -> tuple[int, int]:
    with session_factory() as session:
        exchanges = session.scalar(select(func.count()).select_from(Exchange))
        entries = session.scalar(select(func.count()).select_from(LedgerEntry))
    return int(exchanges or 0), int(entries or 0)


def test_a_reversal_puts_every_figure_back_and_both_rows_stay_listed(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    kept = exchange(client, timebank_headers, timebank, sam, ana, minutes=30).json()
    wrong = exchange(
        client, timebank_headers, timebank, sam, ana, minutes=90, description="Typed twice"
    ).json()
    before = account(client, timebank_headers, timebank, sam)

    response = reverse(client, timebank_headers, timebank, wrong["id"], "  Entered  twice ")

    assert response.status_code == 201, response.text
    reversal = response.json()
    assert (reversal["giver_id"], reversal["receiver_id"]) == (sam, ana)
    assert (reversal["minutes"], reversal["date"], reversal["category"]) == (
        90,
        wrong["date"],
        wrong["category"],
    )
    assert (reversal["reverses"], reversal["reason"]) == (wrong["id"], "Entered twice")
    assert (reversal["description"], reversal["reversed_by"], reversal["fhir"]) == (None, None, [])
    assert (before["balance_minutes"], before["given_minutes"], before["partners"]) == (120, 120, 1)
    after_sam = account(client, timebank_headers, timebank, sam)
    after_ana = account(client, timebank_headers, timebank, ana)
    assert (after_sam["balance_minutes"], after_sam["given_minutes"]) == (30, 30)
    assert (after_sam["received_minutes"], after_sam["partners"]) == (0, 1)
    assert (after_ana["balance_minutes"], after_ana["received_minutes"]) == (-30, 30)
    listed = client.get(ledger_url(timebank, "/exchanges"), headers=timebank_headers).json()
    by_id = {row["id"]: row for row in listed}
    assert set(by_id) == {kept["id"], wrong["id"], reversal["id"]}
    assert by_id[wrong["id"]]["reversed_by"] == reversal["id"]
    assert by_id[wrong["id"]]["description"] == "Typed twice"  # the original is not edited
    assert by_id[kept["id"]]["reversed_by"] is None
    with session_factory() as session:
        rows = session.scalars(
            select(LedgerEntry).where(LedgerEntry.exchange_id == reversal["id"])
        ).all()
        assert sorted((r.member_id, r.minutes) for r in rows) == sorted([(sam, -90), (ana, 90)])
        assert repository.unbalanced(session, timebank.org_id) == []


def test_a_reversal_leaves_no_partner_behind(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    wrong = exchange(client, timebank_headers, timebank, sam, ana).json()

    assert reverse(client, timebank_headers, timebank, wrong["id"]).status_code == 201

    for member in (sam, ana):
        found = account(client, timebank_headers, timebank, member)
        assert (found["balance_minutes"], found["given_minutes"], found["received_minutes"]) == (
            0,
            0,
            0,
        )
        assert found["partners"] == 0  # the exchange never happened


def test_an_exchange_is_reversed_once_and_a_reversal_never(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    wrong = exchange(client, timebank_headers, timebank, sam, ana).json()
    reversal = reverse(client, timebank_headers, timebank, wrong["id"]).json()
    written = counts(session_factory)

    again = reverse(client, timebank_headers, timebank, wrong["id"])
    undo = reverse(client, timebank_headers, timebank, reversal["id"])

    assert again.status_code == 409, again.text
    issue = again.json()["issue"][0]
    assert issue["code"] == "business-rule"
    assert "already reversed" in issue["diagnostics"]
    assert issue["expression"] == ["exchange"]
    assert undo.status_code == 409, undo.text
    assert "a reversal cannot itself be reversed" in undo.json()["issue"][0]["diagnostics"]
    assert counts(session_factory) == written


def test_another_time_banks_exchange_is_not_found(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
    other_timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    kim = add_member(client, other_timebank_headers, other_timebank, "Kim")
    lee = add_member(client, other_timebank_headers, other_timebank, "Lee")
    theirs = exchange(client, other_timebank_headers, other_timebank, kim, lee).json()
    written = counts(session_factory)

    foreign = reverse(client, timebank_headers, timebank, theirs["id"])
    unknown = reverse(client, timebank_headers, timebank, "0c4f6a8e-no-such-exchange")

    assert (foreign.status_code, unknown.status_code) == (404, 404)
    for answer, named in ((foreign, theirs["id"]), (unknown, "0c4f6a8e-no-such-exchange")):
        issue = answer.json()["issue"][0]
        assert issue["diagnostics"] == f"Exchange {named} is not an exchange of this time bank"
        assert issue["expression"] == ["exchange"]
    assert counts(session_factory) == written


def test_a_reason_is_required(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    wrong = exchange(client, timebank_headers, timebank, sam, ana).json()
    url = ledger_url(timebank, f"/exchanges/{wrong['id']}/reversal")
    written = counts(session_factory)

    blank = client.post(url, json={"reason": "   "}, headers=timebank_headers)
    too_long = client.post(url, json={"reason": "x" * 281}, headers=timebank_headers)
    missing = client.post(url, json={}, headers=timebank_headers)

    assert (blank.status_code, too_long.status_code, missing.status_code) == (422, 422, 400)
    assert blank.json()["issue"][0]["expression"] == ["reason"]
    assert counts(session_factory) == written


def test_the_gp_sees_the_reversed_exchange_entered_in_error_and_nothing_new(
    client: TestClient,
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    grace = enrol(client, timebank_headers, timebank, routed_referral.child_task_id)
    grace_id = grace.json()["member"]["id"]
    sam = add_member(client, timebank_headers, timebank, "Sam")
    kept = exchange(client, timebank_headers, timebank, grace_id, sam, minutes=30).json()
    wrong = exchange(client, timebank_headers, timebank, sam, grace_id, minutes=90).json()
    [procedure_ref, observation_ref] = wrong["fhir"]
    original = routed_referral.referral.service_request

    reversal = reverse(client, timebank_headers, timebank, wrong["id"])

    assert reversal.status_code == 201, reversal.text
    assert reversal.json()["fhir"] == []
    with session_factory() as session:  # read through the store as the practice
        as_practice = context_of(session, settings, practice)
        for ref in (procedure_ref, observation_ref):
            rtype, rid = ref.split("/")
            body = store.load_json(as_practice, rtype, rid)
            assert body is not None
            assert body["status"] == "entered-in-error"
            assert body["meta"]["versionId"] == "2"
            assert body["basedOn"] == [{"reference": original}]
            assert "reversed this exchange" in body["note"][-1]["text"]
            validate_resource(body)
        for ref in kept["fhir"]:
            rtype, rid = ref.split("/")
            untouched = store.load_json(as_practice, rtype, rid)
            assert untouched is not None
            assert untouched["status"] != "entered-in-error"
    found = client.get(
        "/fhir/Procedure", params={"based-on": original}, headers=practice_headers
    ).json()
    statuses = sorted(entry["resource"]["status"] for entry in found["entry"])
    assert statuses == ["completed", "entered-in-error"]  # no Procedure for the reversal
    history = client.get(f"/fhir/{procedure_ref}/_history", headers=practice_headers).json()
    assert history["total"] == 2


def test_a_reversal_is_audited_for_the_time_bank_and_the_patients_practice(
    client: TestClient,
    practice: TestSystem,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    grace = enrol(client, timebank_headers, timebank, routed_referral.child_task_id)
    grace_id = grace.json()["member"]["id"]
    sam = add_member(client, timebank_headers, timebank, "Sam")
    wrong = exchange(client, timebank_headers, timebank, grace_id, sam).json()
    [procedure_ref, observation_ref] = wrong["fhir"]

    reversal = reverse(client, timebank_headers, timebank, wrong["id"], "Sam was away").json()

    by_detail = {event.detail: event for event in events(session_factory)}
    corrected = by_detail["ledger reversal: entered-in-error"]
    assert (corrected.kind, corrected.action, corrected.outcome) == ("update", "U", 0)
    assert corrected.entities == (
        f"{procedure_ref} {observation_ref} LedgerExchange/{reversal['id']}"
    )
    assert (corrected.tenant_org_id, corrected.patient_id) == (
        practice.org_id,
        routed_referral.patient_id,
    )
    written = by_detail["ledger reversal"]
    assert (written.kind, written.action, written.tenant_org_id) == (
        "create",
        "C",
        timebank.org_id,
    )
    assert written.entities == (
        f"LedgerExchange/{reversal['id']} LedgerExchange/{wrong['id']} "
        f"LedgerMember/{grace_id} LedgerMember/{sam}"
    )
    text = repr([(e.detail, e.entities) for e in events(session_factory)])
    assert "Sam was away" not in text


def _move_child(
    client: TestClient, headers: dict[str, str], task_id: str, status: str
) -> dict[str, Any]:
    task = client.get(f"/fhir/Task/{task_id}", headers=headers).json()
    task["status"] = status
    response = client.put(f"/fhir/Task/{task_id}", json=task, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_completed_referral_lists_no_reversed_activity_among_its_outputs(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    routed = route(
        client,
        session_factory,
        settings,
        practice,
        practice_headers,
        timebank.org_id,
        status="requested",
    )
    child = routed.child_task_id
    _move_child(client, timebank_headers, child, "accepted")
    grace = enrol(client, timebank_headers, timebank, child).json()["member"]["id"]
    sam = add_member(client, timebank_headers, timebank, "Sam")
    kept = exchange(client, timebank_headers, timebank, grace, sam, minutes=30).json()
    wrong = exchange(client, timebank_headers, timebank, sam, grace, minutes=90).json()
    assert reverse(client, timebank_headers, timebank, wrong["id"]).status_code == 201

    _move_child(client, timebank_headers, child, "completed")

    referral_task = routed.referral.task
    referral = client.get(f"/fhir/{referral_task}", headers=practice_headers).json()
    assert referral["status"] == "completed"
    outputs = {o["valueReference"]["reference"] for o in referral["output"]}
    assert set(kept["fhir"]) <= outputs
    assert not set(wrong["fhir"]) & outputs  # entered in error: not a result of the referral
