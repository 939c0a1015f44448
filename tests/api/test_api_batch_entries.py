"""A time bank's batch of questionnaires (transactions.submit_batch, referrals.submit_entry): each
entry is answered, stored, scored, shared and audited as if it had been sent alone, although
consecutive questionnaire entries share their reads and run without a savepoint."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.questionnaire_form import questionnaire_response
from referral_service.audit import chain
from referral_service.audit.chain import Group
from referral_service.audit.models import AuditEvent, Kind
from referral_service.config import Settings
from referral_service.consent.rules import Purpose
from referral_service.consent.service import Decision
from referral_service.context import Context
from referral_service.errors import Invalid
from referral_service.principal import Principal
from referral_service.referrals import service as referrals
from referral_service.referrals import writes
from referral_service.referrals.service import Entry, Shared
from referral_service.store.models import ResourceGrant, StoredResource
from tests.api.test_api_write_statements import statements
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import route_now
from tests.fixtures.systems import TestSystem, bearer


@pytest.fixture
def child(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> dict[str, Any]:
    """The time bank's Task for the referral, accepted: its focus is the filler-order."""
    child_id = route_now(session_factory, settings, referral.task_id)
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    task = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    answer = client.put(
        f"/fhir/Task/{child_id}", json={**task, "status": "accepted"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def qr(referral: Referral, based_on: str, i: int = 0, **changes: Any) -> dict[str, Any]:
    response = questionnaire_response(
        "swemwbs" if i % 2 == 0 else "ucla3",
        {str(k): str(1 + (i + k) % 3) for k in range(1, 8 if i % 2 == 0 else 4)},
        patient_ref=referral.patient,
        based_on_ref=based_on,
        authored=f"2026-01-{1 + i % 28:02d}T10:00:00Z",
    )
    response.update(changes)
    return response


def post_entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"]}}


def batch(entries: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


def created_ids(answer: dict[str, Any]) -> list[str | None]:
    return [
        e["response"]["location"].split("/")[1]
        if e["response"]["status"] == "201 Created"
        else None
        for e in answer["entry"]
    ]


def stored(session: Session, rid: str) -> tuple[str, set[str]]:
    owner = session.scalar(select(StoredResource.org_id).where(StoredResource.id == rid))
    grants = set(
        session.scalars(select(ResourceGrant.org_id).where(ResourceGrant.resource_id == rid))
    )
    assert owner is not None
    return owner, grants


def count(session: Session, rtype: str) -> int:
    return int(session.scalar(select(func.count()).where(StoredResource.type == rtype)) or 0)


def audited(session: Session, kind: Kind) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.kind == kind.value)))


def test_each_questionnaire_in_a_batch_is_stored_as_if_sent_alone(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    timebank_a: TestSystem,
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    filler = child["focus"]["reference"]
    alone = client.post("/fhir/QuestionnaireResponse", json=qr(referral, filler), headers=headers)
    assert alone.status_code == 201, alone.text
    answer = client.post(
        "/fhir",
        json=batch([post_entry(qr(referral, filler, i)) for i in range(6)]),
        headers=headers,
    )
    assert answer.status_code == 200, answer.text
    ids = created_ids(answer.json())
    assert None not in ids
    with session_factory() as session:
        expected = stored(session, alone.json()["id"])
        assert expected == (timebank_a.org_id, {practice.org_id})  # shared back: consent permits
        assert all(stored(session, rid) == expected for rid in ids if rid)
        assert count(session, "QuestionnaireResponse") == 7
        assert count(session, "Observation") == 7  # one score each
        # one write event for the batch's entries, one patient's: each response and its score,
        # as the response sent alone names its own and its score
        [created] = audited(session, Kind.CREATE)
        [written] = audited(session, Kind.BATCH)
        assert written.entity_groups is None  # one patient: an event as before
        assert written.patient_id == referral.patient.split("/")[1]
        alone_refs, batch_refs = created.entities.split(), written.entities.split()
        assert alone_refs[0] == f"QuestionnaireResponse/{alone.json()['id']}"
        # each entry's response, then its score
        assert batch_refs[0::2] == [f"QuestionnaireResponse/{rid}" for rid in ids]
        observations = {
            f"Observation/{rid}"
            for rid in session.scalars(
                select(StoredResource.id).where(StoredResource.type == "Observation")
            )
        }
        assert len(alone_refs) == 2
        assert len(batch_refs) == 12
        assert {alone_refs[1], *batch_refs[1::2]} == observations
        decisions = audited(session, Kind.CONSENT_DECISION)
        permits = [e for e in decisions if (e.detail or "").startswith("permit share-back")]
        # one for the questionnaire sent alone, one for the batch: its six entries made the same
        # decision, for the same patient by the same Consent
        assert len(permits) == 2
        assert {(e.patient_id, e.entities) for e in permits} == {
            (referral.patient.split("/")[1], referral.consent)
        }


def test_a_refused_questionnaire_leaves_nothing_and_the_others_are_stored(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank_a: TestSystem,
    referral: Referral,
    child: dict[str, Any],
) -> None:
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    filler = child["focus"]["reference"]
    entries = [
        post_entry(qr(referral, filler, 0)),
        post_entry(qr(referral, "ServiceRequest/unknown", 1)),
        post_entry(qr(referral, filler, 2)),
        post_entry(qr(referral, filler, 3, subject={"reference": "Patient/someone-else"})),
        post_entry(qr(referral, filler, 4)),
    ]
    answer = client.post("/fhir", json=batch(entries), headers=headers)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses[0::2] == ["201 Created"] * 3
    assert all(not status.startswith("2") for status in statuses[1::2])
    with session_factory() as session:
        assert count(session, "QuestionnaireResponse") == 3
        assert count(session, "Observation") == 3
        # the three stored, each with its score, in the batch's one write event
        [written] = audited(session, Kind.BATCH)
        refs = written.entities.split()
        stored_ids = [rid for rid in created_ids(answer.json()) if rid]
        assert refs[0::2] == [f"QuestionnaireResponse/{rid}" for rid in stored_ids]
        assert len(refs) == 6
        assert all(ref.startswith("Observation/") for ref in refs[1::2])


@pytest.fixture
def broker(
    session_factory: sessionmaker[Session], settings: Settings, timebank_a: TestSystem
) -> Iterator[Context]:
    principal = Principal(
        client_id=timebank_a.client_id,
        org_id=timebank_a.org_id,
        org_kind=timebank_a.kind,
        scopes=frozenset(),
    )
    with session_factory() as session:
        yield Context(session, principal, settings)
        session.rollback()


def test_any_other_entry_clears_what_the_questionnaires_share(
    broker: Context, practice: TestSystem, referral: Referral, child: dict[str, Any]
) -> None:
    """A questionnaire reuses the batch's earlier answers (here a stale one, planted); an entry of
    any other kind, which might change them, makes the next questionnaire read afresh."""
    filler = child["focus"]["reference"]
    shared = Shared()
    key = (practice.org_id, referral.patient, Purpose.SHARE_BACK, f"Organization/{practice.org_id}")
    shared.decisions.made[key] = Decision(False, Purpose.SHARE_BACK, None, "planted")
    first = referrals.submit_entry(
        broker, Entry("POST", "QuestionnaireResponse", qr(referral, filler)), shared
    )
    assert stored(broker.session, first.version.id)[1] == set()  # the planted answer was used
    task = {**child, "businessStatus": {"text": "member matched"}}
    referrals.submit_entry(broker, Entry("PUT", "Task", task, rid=child["id"]), shared)
    assert not shared.decisions.made
    assert not shared.decisions.audited
    assert not shared.read
    assert not shared.owners
    second = referrals.submit_entry(
        broker, Entry("POST", "QuestionnaireResponse", qr(referral, filler, 2)), shared
    )
    assert stored(broker.session, second.version.id)[1] == {practice.org_id}


def test_a_refused_entry_of_another_kind_clears_them_too(
    broker: Context, referral: Referral, child: dict[str, Any]
) -> None:
    shared = Shared()
    shared.read["ServiceRequest/x"] = None
    with pytest.raises(Exception):  # noqa: B017 - whichever refusal: it is the clearing tested
        referrals.submit_entry(
            broker, Entry("PUT", "Task", {**child, "status": "draft"}, rid=child["id"]), shared
        )
    assert not shared.read


def test_a_questionnaire_refused_after_its_first_write_fails_the_whole_request(
    broker: Context, referral: Referral, child: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a savepoint a refusal after a write could not be undone alone: never answered as
    a refused entry (the caller's transaction rolls back instead)."""
    create = writes.resources.create

    def refuse_scores(ctx: Context, rtype: str, *args: Any, **kwargs: Any) -> Any:
        if rtype == "Observation":
            raise Invalid("refused late")
        return create(ctx, rtype, *args, **kwargs)

    monkeypatch.setattr(writes.resources, "create", refuse_scores)
    entry = Entry("POST", "QuestionnaireResponse", qr(referral, child["focus"]["reference"]))
    with pytest.raises(RuntimeError):
        referrals.submit_entry(broker, entry, Shared())


def accept(client: TestClient, timebank: TestSystem, child_id: str | None) -> str:
    headers = {**bearer(client, timebank), **FHIR_JSON}
    task = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    answer = client.put(
        f"/fhir/Task/{child_id}", json={**task, "status": "accepted"}, headers=headers
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["focus"]["reference"])


def test_share_back_decided_for_each_patient_of_a_batch_as_for_one_sent_alone(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
) -> None:
    """The batch reads the Consents of all its patients in one statement
    (consent.prefetch_share_back): one patient permits share-back, the other no longer does."""
    a = make_referral(client, practice_headers, practice.org_id, referral_id="R-A")
    b = make_referral(
        client, practice_headers, practice.org_id, nhs_number="9434765870", referral_id="R-B"
    )
    fillers = {
        ref.patient: accept(client, timebank_a, route_now(session_factory, settings, ref.task_id))
        for ref in (a, b)
    }
    consent = client.get(f"/fhir/{b.consent}", headers=practice_headers).json()
    for server_part in ("id", "meta"):
        consent.pop(server_part)
    consent["dateTime"] = "2025-06-01T10:00:00Z"
    consent["provision"].pop("provision")  # the referral still, share-back no more
    posted = client.post("/fhir/Consent", json=consent, headers={**practice_headers, **FHIR_JSON})
    assert posted.status_code == 201, posted.text

    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    alone = {}
    for ref in (a, b):
        answer = client.post(
            "/fhir/QuestionnaireResponse", json=qr(ref, fillers[ref.patient]), headers=headers
        )
        assert answer.status_code == 201, answer.text
        alone[ref.patient] = answer.json()["id"]
    with session_factory() as session:
        before = share_back_decisions(session)
    order = [a, b, a, b, b]
    entries = [post_entry(qr(ref, fillers[ref.patient], i)) for i, ref in enumerate(order)]
    with statements() as seen:
        answer = client.post("/fhir", json=batch(entries), headers=headers)
    assert answer.status_code == 200, answer.text
    # both patients' referrals, patients and Consents read at once, before the first entry
    assert sum("FROM resource " in sql for sql in seen) == 2
    ids = created_ids(answer.json())
    with session_factory() as session:
        assert stored(session, alone[a.patient])[1] == {practice.org_id}
        assert stored(session, alone[b.patient])[1] == set()
        for ref, rid in zip(order, ids, strict=True):
            assert rid is not None
            assert stored(session, rid) == stored(session, alone[ref.patient])
        permits, denies = share_back_decisions(session)
        # each decision audited once, however many entries it governed
        assert (permits - before[0], denies - before[1]) == (1, 1)
        # the writes: one stored event, a group per patient (each response with its score)
        [written] = audited(session, Kind.BATCH)
        assert (written.tenant_org_id, written.patient_id) == (None, None)
        assert written.entity_groups is not None
        groups = chain.groups_of(written.entity_groups)
        [a_id, b_id] = [ref.patient.split("/")[1] for ref in (a, b)]
        assert groups == (Group(timebank_a.org_id, a_id, 4), Group(timebank_a.org_id, b_id, 6))
        refs = written.entities.split()
        assert refs[:4:2] == [f"QuestionnaireResponse/{rid}" for rid in ids[0::2][:2]]
        assert refs[4::2] == [f"QuestionnaireResponse/{rid}" for rid in ids[1::2] + ids[4:]]


def test_a_decision_is_audited_again_after_an_entry_that_could_change_it(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank_a: TestSystem,
    referral: Referral,
    child: dict[str, Any],
) -> None:
    """Two questionnaires, a Task update, two more: the decision is made (and audited) once for
    each run of questionnaires, as the update clears what they share."""
    headers = {**bearer(client, timebank_a), **FHIR_JSON}
    filler = child["focus"]["reference"]
    task = {**child, "businessStatus": {"text": "member matched"}}
    entries = [
        post_entry(qr(referral, filler, 0)),
        post_entry(qr(referral, filler, 1)),
        {"resource": task, "request": {"method": "PUT", "url": f"Task/{child['id']}"}},
        post_entry(qr(referral, filler, 2)),
        post_entry(qr(referral, filler, 3)),
    ]
    with session_factory() as session:
        before = share_back_decisions(session)
    answer = client.post("/fhir", json=batch(entries), headers=headers)
    assert answer.status_code == 200, answer.text
    statuses = [e["response"]["status"] for e in answer.json()["entry"]]
    assert statuses == ["201 Created", "201 Created", "200 OK", "201 Created", "201 Created"]
    with session_factory() as session:
        permits, denies = share_back_decisions(session)
    assert (permits - before[0], denies - before[1]) == (2, 0)


def share_back_decisions(session: Session) -> tuple[int, int]:
    decisions = [e.detail or "" for e in audited(session, Kind.CONSENT_DECISION)]
    permits = sum(d.startswith("permit share-back") for d in decisions)
    return permits, sum(d.startswith("deny share-back") for d in decisions)
