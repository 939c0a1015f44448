"""SMART v2 `system/<Type>.<cruds>` scopes: the ceiling per kind of organisation, and granting.

Three layers, each inside the one before: the ceiling for the organisation's kind, the scopes the
client was registered with, and what one token request asks for. A token gets the intersection of
the last two, which may be narrower than what was asked.
"""

from __future__ import annotations

import re

from referral_service.auth.oauth import invalid_scope
from referral_service.errors import Invalid
from referral_service.organisations.models import OrgKind

INTERACTIONS = "cruds"
WILDCARD = "*"
# SMART v1 suffixes, still sent by older clients, in v2 letters.
V1_SUFFIXES = {"read": "rs", "write": "cud", "*": INTERACTIONS}

# Resource type (or "*") -> interaction letters. Dicts keep insertion order, which is the order
# scopes are written back out in.
ScopeMap = dict[str, frozenset[str]]

_SCOPE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]{1,63})\.(?P<perms>[a-z*]+)$")

CEILINGS: dict[OrgKind, str] = {
    OrgKind.PRACTICE: (
        "system/Patient.cruds system/ServiceRequest.cruds system/Task.cruds system/Consent.cruds "
        "system/Condition.crs system/QuestionnaireResponse.crs system/Observation.rs "
        "system/Procedure.rs system/Organization.rs system/AuditEvent.rs "
        "system/Subscription.cruds"
    ),
    OrgKind.TIMEBANK: (
        "system/Task.rus system/ServiceRequest.rs system/Patient.rs system/Consent.rs "
        "system/Observation.crus system/Procedure.crs system/QuestionnaireResponse.crs "
        "system/Organization.rs system/Subscription.cruds"
    ),
    # Measure: the outcome measures and $evaluate-measure, whose answer (never stored) is what
    # MeasureReport.r stands for; aggregates only, never a row about a person.
    OrgKind.HEALTHBOARD: "system/Measure.rs system/MeasureReport.rs system/Organization.rs",
}


def parse_one(token: str) -> tuple[str, frozenset[str]] | None:
    """`system/Type.rs` -> ("Type", {"r", "s"}); None for anything we do not grant (patient/,
    user/, granular `?` scopes, openid, unknown letters)."""
    match = _SCOPE.match(token)
    if match is None:
        return None
    perms = V1_SUFFIXES.get(match["perms"], match["perms"])
    letters = frozenset(perms)
    if not letters or not letters <= frozenset(INTERACTIONS) or len(letters) != len(perms):
        return None
    return match["type"], letters


def render(scopes: ScopeMap) -> str:
    return " ".join(
        f"system/{rtype}.{''.join(c for c in INTERACTIONS if c in letters)}"
        for rtype, letters in scopes.items()
        if letters
    )


def _strict_parse(text: str) -> ScopeMap:
    """Every token must be a scope we understand; used for configuration, not for requests."""
    result: ScopeMap = {}
    for token in text.split():
        parsed = parse_one(token)
        if parsed is None:
            raise ValueError(token)
        rtype, letters = parsed
        result[rtype] = result.get(rtype, frozenset()) | letters
    return result


def ceiling(kind: OrgKind) -> ScopeMap:
    return _strict_parse(CEILINGS[kind])


def supported_scopes() -> list[str]:
    """The union of every ceiling, for the discovery document."""
    merged: ScopeMap = {}
    for kind in CEILINGS:
        for rtype, letters in ceiling(kind).items():
            merged[rtype] = merged.get(rtype, frozenset()) | letters
    return render(merged).split()


def _narrow(requested: ScopeMap, allowed: ScopeMap) -> ScopeMap:
    """Intersect, expanding `*` over the allowed types; keeps the allowed order."""
    result: ScopeMap = {}
    for rtype, allowed_letters in allowed.items():
        wanted = requested.get(rtype, frozenset()) | requested.get(WILDCARD, frozenset())
        if letters := wanted & allowed_letters:
            result[rtype] = letters
    return result


def registrable(kind: OrgKind, scopes: str | None) -> str:
    """The scopes a new client is registered with: the ceiling by default, never beyond it.

    A wildcard means "everything of this kind the ceiling allows"; a named type or interaction
    beyond the ceiling is refused rather than silently dropped, so the operator knows.
    """
    top = ceiling(kind)
    if scopes is None:
        return render(top)
    try:
        wanted = _strict_parse(scopes)
    except ValueError as exc:
        raise Invalid(f"Not a SMART system scope: {exc}") from None
    beyond = {
        rtype: letters - top.get(rtype, frozenset())
        for rtype, letters in wanted.items()
        if rtype != WILDCARD
    }
    if excess := render(beyond):
        raise Invalid(f"Scopes beyond what a {kind.value} may hold: {excess}")
    granted = render(_narrow(wanted, top))
    if not granted:
        raise Invalid("No scopes to register")
    return granted


def grant(requested: str | None, registered: str) -> str:
    """The scope string for a token. Scopes we do not understand are ignored, not errors
    (RFC 6749 §3.3 lets the server grant less); asking for nothing grantable is `invalid_scope`."""
    wanted: ScopeMap = {}
    for token in (requested or "").split():
        if (parsed := parse_one(token)) is not None:
            rtype, letters = parsed
            wanted[rtype] = wanted.get(rtype, frozenset()) | letters
    granted = render(_narrow(wanted, _strict_parse(registered)))
    if not granted:
        raise invalid_scope("None of the requested scopes can be granted to this client")
    return granted
