"""Scoring a QuestionnaireResponse into score Observations for the referral it belongs to.

Two steps so that intake can keep its all-or-nothing shape: ``check_response`` validates and scores
during intake's check phase (reads only, never writes); ``observations_for`` builds the
Observations in the write phase, once the response has its id. Scores hang off the *original*
referral ServiceRequest, even when the response names the time bank's filler-order, because that
is what the GP searches: ``Observation?based-on=ServiceRequest/<original>`` (DESIGN §3 step 5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_adapters import rules as fhir_rules
from fhir_adapters.questionnaires import questionnaire_for, supported_canonicals
from fhir_adapters.wellbeing import (
    Score,
    check_envelope,
    read_answers,
    score_answers,
    score_observations,
)
from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation, Invalid, NotFound
from referral_service.kit.refs import Ref, ResourceId
from referral_service.store import service as resources

# "ServiceRequest/<id>" -> that resource as the caller may see it, or None. Intake passes its own,
# which also finds the resources of the Bundle being submitted.
Lookup = Callable[[str], dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class ScoredResponse:
    questionnaire: str  # our Questionnaire id: swemwbs, wemwbs, ons4, ucla3
    referral: Ref  # the original referral ServiceRequest
    named: Ref  # the ServiceRequest basedOn named: the original, or a time bank's filler-order
    scores: tuple[Score, ...]
    response: dict[str, Any]  # the QuestionnaireResponse that was checked


def check_response(
    ctx: Context, qr: dict[str, Any], *, lookup: Lookup | None = None
) -> ScoredResponse:
    """Validate a QuestionnaireResponse and score it; raise a 422 naming the first broken rule.

    Content first (questionnaire, status, answers, subject, date), then the referral it is based
    on, which the caller must be able to read.
    """
    questionnaire_id = _questionnaire_id(qr)
    answers = read_answers(qr, questionnaire_id)
    envelope = check_envelope(qr)
    referral, named, sr = _referral(ctx, qr, lookup or _store_lookup(ctx))
    patient = _local(ctx, envelope.subject)
    if patient is None or patient != _local(ctx, fhir_rules.reference(sr.get("subject"))):
        raise BusinessRuleViolation(
            "QuestionnaireResponse.subject must be the referral's patient",
            status=422,
            expression=["QuestionnaireResponse.subject"],
        )
    scores = tuple(score_answers(questionnaire_id, answers))
    return ScoredResponse(questionnaire_id, referral, named, scores, qr)


def observations_for(scored: ScoredResponse, qr_ref: str) -> list[dict[str, Any]]:
    """The score Observations (no ids) for a checked response stored as ``qr_ref``."""
    return score_observations(qr_ref, scored.response, str(scored.referral), list(scored.scores))


# "ServiceRequest/<id>" -> the tenant of that stored resource as the caller may see it, or None.
OwnerOf = Callable[[str], str | None]


def referral_owner(ctx: Context, scored: ScoredResponse, owner_of: OwnerOf | None = None) -> str:
    """The organisation whose referral this is (the practice): who the scores belong to.

    Read from the ServiceRequest the response named, which the caller can read even when it is a
    time bank's filler-order (routing stores those under the practice). A ServiceRequest written
    in the same intake is not stored yet: then the caller is the practice. Intake passes
    `owner_of`, which answers from what its checks read already.
    """
    if owner_of is not None:
        return owner_of(str(scored.named)) or ctx.principal.org_id
    try:
        return resources.load(ctx, "ServiceRequest", scored.named.id).org_id
    except NotFound:
        return ctx.principal.org_id


def _questionnaire_id(qr: dict[str, Any]) -> str:
    canonical = qr.get("questionnaire")
    found = questionnaire_for(canonical) if isinstance(canonical, str) else None
    if found is None:
        # The canonical sent is not echoed: it is client text.
        raise Invalid(
            "QuestionnaireResponse.questionnaire: SPIS scores only these questionnaires: "
            + ", ".join(supported_canonicals()),
            issue_code="not-supported",
            expression=["QuestionnaireResponse.questionnaire"],
        )
    return found


def _referral(ctx: Context, qr: dict[str, Any], lookup: Lookup) -> tuple[Ref, Ref, dict[str, Any]]:
    """The original referral the response's basedOn leads to, and the ServiceRequest named."""
    named = [
        ref
        for ref in (_local(ctx, fhir_rules.reference(b)) for b in _list(qr.get("basedOn")))
        if ref is not None and ref.rtype == "ServiceRequest"
    ]
    if not named:
        raise Invalid(
            "QuestionnaireResponse.basedOn must reference the referral ServiceRequest",
            issue_code="required",
            expression=["QuestionnaireResponse.basedOn"],
        )
    found = [_original(ctx, ref, lookup) for ref in named]
    if len({original for original, _ in found}) > 1:
        raise BusinessRuleViolation(
            "QuestionnaireResponse.basedOn names more than one referral",
            status=422,
            expression=["QuestionnaireResponse.basedOn"],
        )
    return found[0][0], named[0], found[0][1]


def _original(ctx: Context, ref: Ref, lookup: Lookup) -> tuple[Ref, dict[str, Any]]:
    sr = lookup(str(ref))
    if sr is None:
        raise Invalid(
            "QuestionnaireResponse.basedOn refers to a ServiceRequest that does not exist",
            issue_code="not-found",
            expression=["QuestionnaireResponse.basedOn"],
        )
    if sr.get("intent") != "filler-order":
        return ref, sr
    # Only SPIS's routing creates filler-orders (intake accepts intent=order only), so its basedOn
    # is trusted even where the time bank may not read the original itself.
    originals = [_local(ctx, fhir_rules.reference(b)) for b in _list(sr.get("basedOn"))]
    original = next((o for o in originals if o and o.rtype == "ServiceRequest"), None)
    if original is None:
        raise Invalid(
            "QuestionnaireResponse.basedOn names a ServiceRequest without an original referral",
            issue_code="not-found",
            expression=["QuestionnaireResponse.basedOn"],
        )
    return original, sr


def _local(ctx: Context, ref: str | None) -> Ref | None:
    """The Ref for a reference to this server (relative or under our base URL), else None."""
    if ref is None:
        return None
    local = ref.removeprefix(ctx.settings.fhir_base_url + "/")
    if local.startswith(("http://", "https://")):
        return None  # held by another server: not a referral SPIS knows
    parts = fhir_rules.split_reference(local)
    return Ref(parts[0], ResourceId(parts[1])) if parts else None


def _store_lookup(ctx: Context) -> Lookup:
    def lookup(ref: str) -> dict[str, Any] | None:
        parsed = Ref.parse(ref)
        return resources.load_json(ctx, parsed.rtype, parsed.id)

    return lookup


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []
