"""Reading permits out of an R4 Consent (DESIGN §6). Pure functions on the stored JSON.

Three flows, three separate permits. A provision names a flow by its purpose of use
(v3-ActReason) or by SPIS's consent-flow code. A flow is permitted when the Consent is active,
its root provision permits, some provision naming the flow permits, and none applying to it denies
(deny wins). Anything else is a deny: deny by default.

Nested provisions are exceptions inside their parent: one that names no flow covers its parent's
flows, and one that names no actor covers its parent's actors. A provision with `actor`s is about
those organisations only: "permit, but not to this time bank" is a nested `deny` naming the time
bank, and it stops the referral reaching that time bank, not the referral as a whole.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from fhir_adapters import codes
from fhir_adapters.rules import reference, split_reference
from fhir_adapters.search_params import first_instant


class Purpose(StrEnum):
    REFERRAL = "referral"  # referral details shared with the time bank
    SHARE_BACK = "share-back"  # activities and scores shared back with the GP
    SECONDARY_USE = "secondary-use"  # health board aggregates


PURPOSE_CODES: dict[Purpose, frozenset[str]] = {
    Purpose.REFERRAL: frozenset({codes.PURPOSE_TREAT}),
    Purpose.SHARE_BACK: frozenset({codes.PURPOSE_COC}),
    Purpose.SECONDARY_USE: frozenset({codes.PURPOSE_HOPERAT, codes.PURPOSE_PUBHLTH}),
}
# A Consent in force, or one withdrawn: either replaces every older Consent for the patient.
GOVERNING_STATUSES = frozenset({"active", "inactive"})
NATIONAL_OPT_OUT = codes.NATIONAL_OPT_OUT_EXTENSION


def permits(consent: dict[str, Any], purpose: Purpose, recipient: str | None = None) -> bool:
    """`recipient` ("Organization/<id>") is who would receive the data. Without one, the answer
    is whether the flow may happen at all: denies about particular actors do not count then (they
    are checked per recipient), and a permit about particular actors still permits someone."""
    if consent.get("status") != "active":
        return False
    root = consent.get("provision") or {}
    if root.get("type") != "permit":
        return False
    decisions = _decisions(root, purpose, recipient, frozenset(Purpose), frozenset())
    return "permit" in decisions and "deny" not in decisions


def consent_time(consent: dict[str, Any]) -> datetime:
    """When the Consent was given, for ordering (time zones honoured); undated ones sort first."""
    value = consent.get("dateTime")
    instant = first_instant(value) if isinstance(value, str) else None
    return instant or datetime.min.replace(tzinfo=UTC)


def opted_out(patient: dict[str, Any]) -> bool:
    """The national data opt-out, recorded on the Patient: excludes secondary use, whatever the Consent."""
    return any(
        ext.get("url") == NATIONAL_OPT_OUT and ext.get("valueBoolean") is True
        for ext in patient.get("extension") or []
    )


def _decisions(
    provision: dict[str, Any],
    purpose: Purpose,
    recipient: str | None,
    parent_flows: frozenset[Purpose],
    parent_actors: frozenset[str],
) -> list[str]:
    named = frozenset(flow for flow in Purpose if _names(provision, flow))
    flows, actors = named or parent_flows, _actors(provision) or parent_actors
    kind = provision.get("type", "permit")
    found = []
    # A deny covers every flow in its scope; a permit only the flows it names itself.
    if (purpose in named or (kind == "deny" and purpose in flows)) and _about(
        actors, recipient, kind
    ):
        found.append(kind)
    for nested in provision.get("provision") or []:
        found.extend(_decisions(nested, purpose, recipient, flows, actors))
    return found


def _about(actors: frozenset[str], recipient: str | None, kind: str) -> bool:
    if not actors:
        return True
    if recipient is None:
        return kind == "permit"
    return recipient in actors


def _actors(provision: dict[str, Any]) -> frozenset[str]:
    """The organisations and people a provision is about, as `Type/id`."""
    found = set()
    for actor in provision.get("actor") or []:
        ref = reference(actor.get("reference")) if isinstance(actor, dict) else None
        parts = split_reference(ref) if ref else None
        if parts:
            found.add(f"{parts[0]}/{parts[1]}")
    return frozenset(found)


def _names(provision: dict[str, Any], purpose: Purpose) -> bool:
    by_purpose = any(
        coding.get("system") == codes.PURPOSE_OF_USE_SYSTEM
        and coding.get("code") in PURPOSE_CODES[purpose]
        for coding in provision.get("purpose") or []
    )
    by_flow = any(
        coding.get("system") == codes.CONSENT_FLOW_SYSTEM and coding.get("code") == purpose.value
        for concept in provision.get("code") or []
        for coding in concept.get("coding") or []
    )
    return by_purpose or by_flow
