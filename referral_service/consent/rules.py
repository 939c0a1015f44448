"""Reading permits out of an R4 Consent (DESIGN §6). Pure functions on the stored JSON.

A flow is permitted when the Consent is active and a `permit` provision (the root, or a nested one
under a permitting root) names the flow's purpose, and no nested `deny` provision names it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from fhir_adapters.codes import PURPOSE_OF_USE_SYSTEM


class Purpose(StrEnum):
    REFERRAL = "TREAT"  # referral details shared with the time bank; care coordination
    SECONDARY_USE = "HOPERAT"  # health board aggregates


def permits(consent: dict[str, Any], purpose: Purpose) -> bool:
    if consent.get("status") != "active":
        return False
    root = consent.get("provision") or {}
    if root.get("type") != "permit":
        return False
    decisions = list(_decisions(root, purpose))
    return bool(decisions) and "deny" not in decisions


def _decisions(provision: dict[str, Any], purpose: Purpose) -> list[str]:
    found = [provision.get("type", "permit")] if _names(provision, purpose) else []
    for nested in provision.get("provision") or []:
        found.extend(_decisions(nested, purpose))
    return found


def _names(provision: dict[str, Any], purpose: Purpose) -> bool:
    return any(
        coding.get("system") == PURPOSE_OF_USE_SYSTEM and coding.get("code") == purpose.value
        for coding in provision.get("purpose") or []
    )
