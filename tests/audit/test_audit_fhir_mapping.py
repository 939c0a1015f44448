"""Audit rows → R4 AuditEvent: every kind validates against the R4B models, in BALP's shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.auditevent import AuditEvent as R4AuditEvent

from fhir_adapters.audit import EVENT_TYPES, AuditView, audit_event, patient_id_of
from referral_service.audit.models import Action, Kind, Outcome

RECORDED = datetime(2026, 11, 25, 10, 30, 15, 123456, tzinfo=UTC)


def view(kind: Kind, **changes: Any) -> AuditView:
    fields: dict[str, Any] = {
        "id": "2d0b6a0e-7e1d-4f55-9d6c-2f3f4d1f0a11",
        "recorded": RECORDED,
        "action": Action.READ.value,
        "kind": kind.value,
        "actor_client_id": "client-1",
        "actor_org_id": "org-tb",
        "patient_id": "pat-1",
        "entities": ("ServiceRequest/sr-1", "Consent/c-1"),
        "purpose": "TREAT",
        "outcome": Outcome.SUCCESS.value,
        "detail": None,
    }
    fields.update(changes)
    return AuditView(**fields)


def test_every_kind_has_a_type() -> None:
    assert {kind.value for kind in Kind} == set(EVENT_TYPES)


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_validates_as_r4(kind: Kind) -> None:
    resource = audit_event(view(kind, outcome=4, detail="403 forbidden"))
    R4AuditEvent.model_validate(resource)


def test_a_read_in_balp_shape() -> None:
    resource = audit_event(view(Kind.READ))
    assert resource["type"]["code"] == "rest"
    assert resource["subtype"] == [
        {"system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"}
    ]
    assert (resource["action"], resource["outcome"]) == ("R", "0")
    assert resource["recorded"] == "2026-11-25T10:30:15.123Z"
    [agent] = resource["agent"]
    assert agent["who"] == {
        "reference": "Organization/org-tb",
        "identifier": {"system": "https://spis.example.org/fhir/Id/client-id", "value": "client-1"},
    }
    assert agent["requestor"] is True
    assert agent["purposeOfUse"][0]["coding"][0]["code"] == "TREAT"
    assert resource["source"]["observer"]["reference"] == "Organization/spis"
    what = [(e["what"]["reference"], e["role"]["code"]) for e in resource["entity"]]
    assert what == [("Patient/pat-1", "1"), ("ServiceRequest/sr-1", "4"), ("Consent/c-1", "13")]


def test_the_patient_is_not_listed_twice() -> None:
    resource = audit_event(view(Kind.READ, entities=("Patient/pat-1",)))
    assert [e["what"]["reference"] for e in resource["entity"]] == ["Patient/pat-1"]


def test_an_event_about_nobody_has_no_entity() -> None:
    resource = audit_event(view(Kind.TOKEN, patient_id=None, entities=(), purpose=None))
    assert "entity" not in resource
    assert "purposeOfUse" not in resource["agent"][0]
    R4AuditEvent.model_validate(resource)


@pytest.mark.parametrize(
    ("rtype", "resource", "expected"),
    [
        ("Patient", {}, "p-self"),
        ("ServiceRequest", {"subject": {"reference": "Patient/p1"}}, "p1"),
        ("Task", {"for": {"reference": "http://x/fhir/Patient/p2"}}, "p2"),
        ("Consent", {"patient": {"reference": "Patient/p3"}}, "p3"),
        ("Observation", {"subject": {"reference": "Group/g1"}}, None),
        ("Organization", {"name": "A practice"}, None),
    ],
)
def test_patient_of_a_resource(rtype: str, resource: dict[str, Any], expected: str | None) -> None:
    assert patient_id_of(rtype, "p-self", resource) == expected
