"""FHIR shapes SPIS builds for routing (SDOH indirect referral: SPIS is the coordination platform).

Pure builders on dicts, taking plain values; the domain decides what goes in. The Task changes
return a new dict and leave the one passed in as it was.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import codes


def _ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def filler_order(
    original: dict[str, Any], original_ref: str, timebank_ref: str, now: str
) -> dict[str, Any]:
    """The time bank's copy of the referral: what a broker needs before the first call, the GP's
    notes and timeframe included; no Consent, no supporting information, no NHS number.
    Built only once the referral Consent permits sharing the referral with this time bank."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "filler-order",
        "basedOn": [_ref(original_ref)],
        "code": original["code"],
        "subject": original["subject"],
        "authoredOn": now,
        "requester": _requester(original),
        "performer": [_ref(timebank_ref)],
    }
    for name in ("category", "priority", "reasonCode", "orderDetail", *OCCURRENCE):
        if name in original:
            resource[name] = original[name]
    notes = [_shared_note(note) for note in original.get("note") or []]
    if notes:
        resource["note"] = notes
    return resource


OCCURRENCE = ("occurrenceDateTime", "occurrencePeriod", "occurrenceTiming")


def _shared_note(note: dict[str, Any]) -> dict[str, Any]:
    """An Annotation as the broker gets it: text, time and a written author name; not an
    `authorReference`, which points at a practice resource the time bank cannot read."""
    return {key: value for key, value in note.items() if key != "authorReference"}


def _requester(original: dict[str, Any]) -> Any:
    """The original's requester, except that a contained PractitionerRole (which the copy does not
    carry) is replaced by its organization: the practice, which intake checked it to be."""
    requester = original["requester"]
    ref = requester.get("reference") if isinstance(requester, dict) else None
    if isinstance(ref, str) and ref.startswith("#"):
        for contained in original.get("contained") or []:
            if f"#{contained.get('id')}" == ref and "organization" in contained:
                return contained["organization"]
    return requester


def child_task(
    referral_task_ref: str, filler_ref: str, patient_ref: str, timebank_ref: str, now: str
) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "meta": {"profile": [codes.SDOH_TASK_PROFILE]},
        "status": "requested",
        "intent": "order",
        "code": {"coding": [{"system": codes.TASK_CODE_SYSTEM, "code": codes.TASK_CODE_FULFILL}]},
        "focus": _ref(filler_ref),
        "for": _ref(patient_ref),
        "partOf": [_ref(referral_task_ref)],
        "authoredOn": now,
        "requester": {"reference": "Organization/spis", "display": "SPIS"},
        "owner": _ref(timebank_ref),
    }


# Task.businessStatus codes routing and the broker SLA set (BUSINESS_STATUS_SYSTEM).
ROUTED = "routed"
REMINDER_DUE = "reminder-due"
# What versions before issue 8 stamped for REMINDER_DUE, though no reminder was ever sent. Tasks
# stored then still carry it; it is read, never written.
LEGACY_REMINDER_SENT = "reminder-sent"


def business_status(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": codes.BUSINESS_STATUS_SYSTEM, "code": code, "display": display}]}


def business_status_codes(task: dict[str, Any]) -> frozenset[str]:
    status = task.get("businessStatus")
    codings = status.get("coding") if isinstance(status, dict) else None
    return frozenset(
        c["code"] for c in codings or [] if isinstance(c, dict) and isinstance(c.get("code"), str)
    )


def routed(task: dict[str, Any], timebank_name: str) -> dict[str, Any]:
    """The referral Task once a time bank has been offered it."""
    return {**task, "businessStatus": business_status(ROUTED, f"Routed to {timebank_name}")}


def reminder_due(task: dict[str, Any], working_days: int) -> dict[str, Any]:
    """A time bank's Task left unanswered for `working_days`: a reminder is due."""
    display = f"No answer within {working_days} working days: a reminder is due"
    return {**task, "businessStatus": business_status(REMINDER_DUE, display)}


def cancelled(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """Cancelled with a reason a person can read; any businessStatus stays as the last news."""
    return {**task, "status": "cancelled", "statusReason": {"text": reason}}


def rejected(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """The referral Task no time bank could take: the routing businessStatus no longer holds."""
    kept = {key: value for key, value in task.items() if key != "businessStatus"}
    return {**kept, "status": "rejected", "statusReason": {"text": reason}}


def status_reason(task: dict[str, Any]) -> str | None:
    reason = task.get("statusReason")
    text = reason.get("text") if isinstance(reason, dict) else None
    return text if isinstance(text, str) and text else None


def output(kind: str, reference: str) -> dict[str, Any]:
    """A Task.output entry: `resulting-activity` → Procedure, `additional-content` → Observation."""
    return {
        "type": {"coding": [{"system": codes.TASK_OUTPUT_TYPE_SYSTEM, "code": kind}]},
        "valueReference": _ref(reference),
    }


def needs(service_request: dict[str, Any]) -> frozenset[str]:
    """Offer categories the referral asks for (ServiceRequest.orderDetail in the SPIS system)."""
    return frozenset(
        coding["code"]
        for detail in service_request.get("orderDetail") or []
        for coding in detail.get("coding") or []
        if coding.get("system") == codes.OFFER_SYSTEM and coding.get("code")
    )


def home_postcode(patient: dict[str, Any]) -> str | None:
    addresses = patient.get("address") or []
    home = [a for a in addresses if a.get("use") in (None, "home")] or addresses
    for address in home:
        if address.get("postalCode"):
            return str(address["postalCode"])
    return None
