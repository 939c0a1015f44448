"""Intake phase 3: every rule, for every entry, before anything is written. The resource's own
content first, then what it refers to, then rules across resources (the referral's consent, one
referral Task per ServiceRequest, questionnaire scoring).
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import rules as fhir_rules
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.errors import BusinessRuleViolation, Invalid
from referral_service.referrals import rules as referral_rules
from referral_service.referrals.intake import Intake, Target
from referral_service.referrals.targets import check_reference_targets, lookup, organisation
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.wellbeing import service as wellbeing


def check(intake: Intake, target: Target) -> None:
    entry, principal = target.entry, intake.ctx.principal
    data = entry.resource
    old = resources.as_dict(target.existing) if target.existing is not None else None
    _content_rules(target, data, new=old is None)
    check_reference_targets(intake, target)
    if entry.rtype == "ServiceRequest":
        if old is not None:
            referral_rules.check_service_request_update(old, data)
        else:
            referral_rules.check_new_referral_status(data)
            referral_rules.check_requester(principal, data, lambda: _ods_code(intake))
            _check_referral_consent(intake, data)
    elif entry.rtype == "Task":
        if old is not None:
            referral_rules.check_task_update(principal, old, data)
        else:
            _check_new_task(intake, data)
    elif entry.rtype == "QuestionnaireResponse":
        intake.scored[target.ref] = wellbeing.check_response(
            intake.ctx, data, lookup=lambda ref: lookup(intake, ref)
        )


def _ods_code(intake: Intake) -> str | None:
    practice = organisation(intake, intake.ctx.principal.org_id)
    return practice.ods_code if practice else None


def _content_rules(target: Target, data: dict[str, Any], *, new: bool) -> None:
    rtype = target.entry.rtype
    if rtype == "Patient":
        fhir_rules.check_patient(data)
    elif rtype == "Consent":
        fhir_rules.check_consent(data)
    elif rtype == "ServiceRequest" and new:
        fhir_rules.check_service_request(data)
    elif rtype == "Task" and new:
        fhir_rules.check_referral_task(data)
        data["owner"] = dict(referral_rules.SPIS_OWNER)  # SPIS coordinates, whatever was sent
        target.references = None  # a reference changed: the checks find them again


def _check_new_task(intake: Intake, task: dict[str, Any]) -> None:
    focus = fhir_rules.reference(task.get("focus"))
    sr = lookup(intake, focus) if focus and focus.startswith("ServiceRequest/") else None
    referral_rules.check_new_task(intake.ctx.principal, task, sr)
    assert focus is not None
    if focus not in intake.pending and store.find_by_token(
        intake.ctx.session, intake.ctx.principal, "Task", "focus", None, focus
    ):
        raise BusinessRuleViolation(
            "This ServiceRequest already has a referral Task", issue_code="duplicate"
        )
    if focus in intake.with_task:
        raise BusinessRuleViolation(
            "A ServiceRequest can have only one referral Task", issue_code="duplicate"
        )
    intake.with_task.add(focus)


def _check_referral_consent(intake: Intake, sr: dict[str, Any]) -> None:
    """DESIGN §6: no referral leaves the practice without a permit, decided by `consent.decide`
    as routing will decide it, counting the Consents sent with the referral."""
    patient = fhir_rules.reference(sr.get("subject"))
    if patient is None or not patient.startswith("Patient/"):
        raise Invalid(
            "ServiceRequest.subject must reference the Patient",
            expression=["ServiceRequest.subject"],
        )
    pending = {ref: r for ref, r in intake.pending.items() if ref.startswith("Consent/")}
    decision = decide(
        intake.ctx,
        intake.ctx.principal.org_id,
        patient,
        Purpose.REFERRAL,
        pending=pending,
        new_patient=any(
            t.ref == patient and t.write and t.existing is None for t in intake.targets
        ),
    )
    if not decision.permitted:
        raise BusinessRuleViolation(
            "The referral needs the patient's current Consent to permit sharing it with a time bank "
            "(an active Consent with provision.purpose TREAT)",
            status=422,
            expression=["ServiceRequest.supportingInfo"],
        )
