"""Intake phase 4: once every check has passed, write each target, add the referral Task where the
practice sent none, and start what a write sets off (routing, Task propagation, consent changes).
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import rules as fhir_rules
from fhir_adapters import task as fhir_task
from referral_service.consent.service import share_back_to
from referral_service.context import Context
from referral_service.kit.clock import fhir_instant, utcnow
from referral_service.kit.refs import OrgId, ResourceId, id_of
from referral_service.referrals import lifecycle
from referral_service.referrals import rules as referral_rules
from referral_service.referrals.intake import Intake, Outcome, Target
from referral_service.referrals.targets import owner as owner_of
from referral_service.routing import service as routing
from referral_service.store import service as resources
from referral_service.store.service import Version
from referral_service.wellbeing import service as wellbeing


def write(intake: Intake) -> list[Outcome]:
    return [_write(intake, target) for target in intake.targets]


def _write(intake: Intake, target: Target) -> Outcome:
    ctx, entry = intake.ctx, target.entry
    if not target.write:
        assert target.existing is not None
        return Outcome(False, Version.of(target.existing))
    if target.existing is not None:
        old = resources.as_dict(target.existing)
        outcome = Outcome(False, resources.update(ctx, target.existing, entry.resource))
        if entry.rtype == "Task":
            lifecycle.after_task_update(ctx, old, entry.resource)
        elif entry.rtype == "Consent":
            _consent_changed(ctx, OrgId(target.existing.org_id), entry.resource)
        elif entry.rtype == "Patient":
            lifecycle.after_patient_update(ctx, OrgId(target.existing.org_id), entry.resource)
        return outcome
    rid = id_of(target.ref)
    if target.ref in intake.scored:
        return _write_scored(intake, target, rid)
    version = resources.create(ctx, entry.rtype, entry.resource, rid)
    task = _add_referral_task(intake, target)
    note = f"Referral Task created: Task/{task.id}" if task is not None else None
    outcome = Outcome(True, version, note, (task,) if task is not None else ())
    if entry.rtype == "Consent" and not _about_new_patient(intake, entry.resource):
        _consent_changed(ctx, OrgId(ctx.principal.org_id), entry.resource)
    if entry.rtype == "Task" and entry.resource["status"] == "requested":
        routing.request_routing(ctx.session, version.id)
    return outcome


def _write_scored(intake: Intake, target: Target, rid: ResourceId) -> Outcome:
    """A questionnaire answer and its scores belong to whoever recorded them. The referral's
    practice records its own; a time bank's record stays the time bank's, shared back with the
    practice (which finds the scores with `Observation?based-on=`) while the patient's Consent
    permits share-back."""
    ctx, scored = intake.ctx, intake.scored[target.ref]
    # Everything that could refuse comes before the first write (service.submit_entry relies
    # on it): the scores, then whose they are and who may read them.
    observations = wellbeing.observations_for(scored, target.ref)
    practice = wellbeing.referral_owner(ctx, scored, lambda ref: owner_of(intake, ref))
    owner, share = practice, tuple[str, ...]((ctx.principal.org_id,))
    if practice != ctx.principal.org_id:  # a time bank's record, shared back while consent allows
        patient = str(fhir_rules.reference(target.entry.resource.get("subject")))
        system = routing.system_context(ctx.session, ctx.settings)
        owner, share = (
            ctx.principal.org_id,
            share_back_to(system, practice, patient, known=intake.decisions),
        )
    version = resources.create(
        ctx, "QuestionnaireResponse", target.entry.resource, rid, tenant=owner, share_with=share
    )
    scores = tuple(
        resources.create(ctx, "Observation", observation, tenant=owner, share_with=share)
        for observation in observations
    )
    return Outcome(True, version, derived=scores)


def _about_new_patient(intake: Intake, consent: dict[str, Any]) -> bool:
    """A Consent for a Patient created in this same intake changes nothing already shared: there
    is no earlier referral or time bank record to stop or to share back yet."""
    return intake.creates(fhir_rules.reference(consent.get("patient")))


def _consent_changed(ctx: Context, tenant: OrgId, consent: dict[str, Any]) -> None:
    patient = fhir_rules.reference(consent.get("patient"))
    if patient and patient.startswith("Patient/"):
        system = routing.system_context(ctx.session, ctx.settings)
        lifecycle.apply_consent_change(system, tenant, patient)


def _add_referral_task(intake: Intake, target: Target) -> Version | None:
    if target.entry.rtype != "ServiceRequest" or target.ref in intake.with_task:
        return None
    sr = target.entry.resource
    task = fhir_task.referral_task(
        focus=target.ref,
        patient=sr["subject"],
        requester=referral_rules.practice_reference(intake.ctx.principal, sr),
        owner=referral_rules.SPIS_OWNER,
        authored_on=fhir_instant(utcnow()),
    )
    version = resources.create(intake.ctx, "Task", task)
    routing.request_routing(intake.ctx.session, version.id)
    return version
