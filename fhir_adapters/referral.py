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
