"""Reading permits out of an R4 Consent (DESIGN §6). Pure functions on the stored JSON.

Three flows, three separate permits. A provision names a flow by its purpose of use
(v3-ActReason) or by SPIS's consent-flow code. A flow is permitted when the Consent is active,
its root provision permits, some provision naming the flow permits, and none naming it denies
(deny wins). Anything else is a deny: deny by default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fhir_adapters import codes


class Purpose(StrEnum):
    REFERRAL = "referral"  # referral details shared with the time bank
    SHARE_BACK = "share-back"  # activities and scores shared back with the GP
    SECONDARY_USE = "secondary-use"  # health board aggregates


PURPOSE_CODES: dict[Purpose, frozenset[str]] = {
    Purpose.REFERRAL: frozenset({codes.PURPOSE_TREAT}),
    Purpose.SHARE_BACK: frozenset({codes.PURPOSE_COC}),
    Purpose.SECONDARY_USE: frozenset({codes.PURPOSE_HOPERAT, codes.PURPOSE_PUBHLTH}),
}
NATIONAL_OPT_OUT = f"{codes.SPIS_CODESYSTEM_BASE.removesuffix('/CodeSystem')}/StructureDefinition/national-data-opt-out"


def permits(consent: dict[str, Any], purpose: Purpose) -> bool:
    if consent.get("status") != "active":
        return False
    root = consent.get("provision") or {}
    if root.get("type") != "permit":
        return False
    decisions = _decisions(root, purpose)
    return bool(decisions) and "deny" not in decisions


def opted_out(patient: dict[str, Any]) -> bool:
    """The national data opt-out, recorded on the Patient: excludes secondary use, whatever the Consent."""
    return any(
        ext.get("url") == NATIONAL_OPT_OUT and ext.get("valueBoolean") is True
        for ext in patient.get("extension") or []
    )


def _decisions(provision: dict[str, Any], purpose: Purpose) -> list[str]:
    found = [provision.get("type", "permit")] if _names(provision, purpose) else []
    for nested in provision.get("provision") or []:
        found.extend(_decisions(nested, purpose))
    return found


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
