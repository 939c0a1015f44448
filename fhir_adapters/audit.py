"""Audit rows → FHIR R4 AuditEvent, shaped after IHE Basic Audit Log Patterns (BALP); and which
Patient a stored resource is about.

Pure: plain values in, JSON out. An event carries ids and codes only; `outcomeDesc` is SPIS's own
short text (a status and an issue code), never anything a client sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from fhir_adapters.codes import PURPOSE_OF_USE_SYSTEM, SPIS_CODESYSTEM_BASE
from fhir_adapters.rules import reference, split_reference

# TODO(lead): move these systems to codes.py with the others.
AUDIT_EVENT_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DCM_SYSTEM: Final = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION_SYSTEM: Final = "http://hl7.org/fhir/restful-interaction"
AUDIT_ENTITY_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SECURITY_SOURCE_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
SPIS_AUDIT_TYPE_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/audit-event-type"
CLIENT_ID_SYSTEM: Final = "https://spis.example.org/fhir/Id/client-id"
SPIS_ORGANIZATION: Final = "Organization/spis"

Coding = dict[str, str]


def _coding(system: str, code: str, display: str) -> Coding:
    return {"system": system, "code": code, "display": display}


_REST = _coding(AUDIT_EVENT_TYPE_SYSTEM, "rest", "Restful Operation")
_EXPORT = _coding(DCM_SYSTEM, "110106", "Export")
_USER_AUTHENTICATION = _coding(DCM_SYSTEM, "110114", "User Authentication")
_LOGIN = _coding(DCM_SYSTEM, "110122", "Login")


def _interaction(code: str) -> Coding:
    return _coding(RESTFUL_INTERACTION_SYSTEM, code, code)


# Event kind → (type, subtype). REST interactions per BALP; sharing as DICOM "Export"; a token and
# a person's sign-in as DICOM "User Authentication"/"Login", a sign-out as ".../Logout"; changes
# to a person's account as DICOM "User Security Attributes Changed"; consent decisions have no
# standard code, so SPIS names one.
EVENT_TYPES: Final[dict[str, tuple[Coding, Coding | None]]] = {
    "read": (_REST, _interaction("read")),
    "vread": (_REST, _interaction("vread")),
    "history": (_REST, _interaction("history-instance")),
    "search": (_REST, _interaction("search-type")),
    "create": (_REST, _interaction("create")),
    "update": (_REST, _interaction("update")),
    "patch": (_REST, _interaction("patch")),
    "delete": (_REST, _interaction("delete")),
    "transaction": (_REST, _interaction("transaction")),
    "batch": (_REST, _interaction("batch")),
    "share": (_EXPORT, _coding(SPIS_AUDIT_TYPE_SYSTEM, "share", "Shared with an organisation")),
    "export": (_EXPORT, None),
    "delivery": (
        _EXPORT,
        _coding(SPIS_AUDIT_TYPE_SYSTEM, "delivery", "Notification delivered to a subscriber"),
    ),
    "token": (_USER_AUTHENTICATION, _LOGIN),
    "sign-in": (_USER_AUTHENTICATION, _LOGIN),
    "sign-out": (_USER_AUTHENTICATION, _coding(DCM_SYSTEM, "110123", "Logout")),
    "person-account": (_coding(DCM_SYSTEM, "110137", "User Security Attributes Changed"), None),
    "consent-decision": (
        _coding(SPIS_AUDIT_TYPE_SYSTEM, "consent-decision", "Consent decision"),
        None,
    ),
}

# Entity roles by resource type (object-role); everything else is a "Domain Resource".
_ROLES: Final = {
    "Patient": _coding(OBJECT_ROLE_SYSTEM, "1", "Patient"),
    "Consent": _coding(OBJECT_ROLE_SYSTEM, "13", "Security Resource"),
    "Organization": _coding(OBJECT_ROLE_SYSTEM, "16", "Data Destination"),
    "Person": _coding(OBJECT_ROLE_SYSTEM, "6", "User"),  # a person of the web workspace
}
_DOMAIN_RESOURCE = _coding(OBJECT_ROLE_SYSTEM, "4", "Domain Resource")
_PERSON = _coding(AUDIT_ENTITY_TYPE_SYSTEM, "1", "Person")
_SYSTEM_OBJECT = _coding(AUDIT_ENTITY_TYPE_SYSTEM, "2", "System Object")
_CLIENT_ROLE = _coding(DCM_SYSTEM, "110153", "Source Role ID")
_APPLICATION_SERVER = _coding(SECURITY_SOURCE_TYPE_SYSTEM, "4", "Application Server")


@dataclass(frozen=True, slots=True)
class AuditView:
    """One stored audit event, as plain values."""

    id: str
    recorded: datetime
    action: str  # C, R, U, D or E
    kind: str
    actor_client_id: str
    actor_org_id: str
    patient_id: str | None
    entities: Sequence[str]  # `Type/id`
    purpose: str | None  # v3-ActReason code
    outcome: int  # 0, 4, 8 or 12
    detail: str | None


def audit_event(view: AuditView) -> dict[str, Any]:
    event_type, subtype = EVENT_TYPES.get(
        view.kind, (_coding(SPIS_AUDIT_TYPE_SYSTEM, view.kind, view.kind), None)
    )
    resource: dict[str, Any] = {"resourceType": "AuditEvent", "id": view.id, "type": event_type}
    if subtype is not None:
        resource["subtype"] = [subtype]
    resource.update(
        action=view.action,
        recorded=_instant(view.recorded),
        outcome=str(view.outcome),
    )
    if view.detail:
        resource["outcomeDesc"] = view.detail
    if view.purpose:
        resource["purposeOfEvent"] = [_purpose(view.purpose)]
    resource["agent"] = [_agent(view)]
    resource["source"] = {
        "observer": {"reference": SPIS_ORGANIZATION, "display": "SPIS"},
        "type": [_APPLICATION_SERVER],
    }
    if entities := _entities(view):
        resource["entity"] = entities
    return resource


def _agent(view: AuditView) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [_CLIENT_ROLE]},
        "who": {
            "reference": f"Organization/{view.actor_org_id}",
            "identifier": {"system": CLIENT_ID_SYSTEM, "value": view.actor_client_id},
        },
        "requestor": True,
    }
    if view.purpose:
        agent["purposeOfUse"] = [_purpose(view.purpose)]
    return agent


def _entities(view: AuditView) -> list[dict[str, Any]]:
    refs = list(view.entities)
    patient = f"Patient/{view.patient_id}" if view.patient_id else None
    if patient and patient not in refs:
        refs.insert(0, patient)
    return [_entity(ref) for ref in refs]


def _entity(ref: str) -> dict[str, Any]:
    rtype = ref.partition("/")[0]
    return {
        "what": {"reference": ref},
        "type": _PERSON if rtype in ("Patient", "Person") else _SYSTEM_OBJECT,
        "role": _ROLES.get(rtype, _DOMAIN_RESOURCE),
    }


def _purpose(code: str) -> dict[str, Any]:
    return {"coding": [{"system": PURPOSE_OF_USE_SYSTEM, "code": code}]}


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Where each stored type names its patient (R4): the first of these that is a Patient reference.
_PATIENT_ELEMENTS: Final = ("subject", "for", "patient", "beneficiary")


def patient_id_of(rtype: str, rid: str, resource: dict[str, Any]) -> str | None:
    """The id of the Patient a resource is about, or None (an Organization, a Questionnaire)."""
    if rtype == "Patient":
        return rid
    for element in _PATIENT_ELEMENTS:
        ref = reference(resource.get(element))
        parts = split_reference(ref) if ref else None
        if parts is not None and parts[0] == "Patient":
            return parts[1]
    return None
