"""The referral Task lifecycle after intake (DESIGN §3 steps 3, 5, 6; §6): what a Task change or a
Consent change means for the rest of the referral. Runs in the same transaction as the change, as
SPIS (a child Task's referral Task belongs to the practice, which the time bank cannot read).

A Task change:
- a time bank's child Task accepted / started / held / completed / failed → the referral Task
  follows; declined → routed to the next candidate;
- the practice cancels the referral Task → its ServiceRequest is revoked and open child Tasks are
  cancelled (capacity frees itself: it is derived from open child Tasks).

A practice's Consent change (a new one, or the current one set inactive): the flows it no longer
permits stop at once:
- referral sharing withdrawn: open referral Tasks for the patient are cancelled, their time banks'
  child Tasks too (the child Task, with its reason, is how the broker is told), the ServiceRequest
  is revoked, and the time banks lose their grants on the Patient and the filler-order;
- referral sharing still permitted, but no longer with one time bank (a nested `deny` naming it):
  that time bank's open Task is cancelled with a reason and its access ends; a referral still
  waiting for an answer goes to the next time bank, one already taken up is cancelled;
- share-back withdrawn: the practice loses its grants on what time banks recorded about the
  patient (activities, hours, scores); given again if a later Consent permits it;
- secondary use withdrawn (or a national data opt-out set on the Patient): the person's outcome
  rows are marked ineligible at once, so no later health board report counts them.

This lives with the referrals, not in `consent`: consent only decides (`decide`), and the package
that owns the Tasks acts on the answer, so the imports run referrals → routing → consent.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import task as fhir_task
from fhir_adapters.codes import ENDED_TASK_STATUSES, OPEN_TASK_STATUSES, TaskStatus
from fhir_adapters.rules import reference
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.kit.refs import OrgId, Ref, ResourceId, id_of
from referral_service.outcomes import eligibility
from referral_service.referrals.status import can_move
from referral_service.routing import service as routing
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.repository import TokenMatch

# Child status → the referral Task's status, when the referral is in a state that allows it.
FOLLOWS = {
    "accepted": "accepted",
    "in-progress": "in-progress",
    "on-hold": "on-hold",
    "completed": "completed",
    "failed": "failed",
}
# ServiceRequest (R4 request-status) states in which a withdrawn referral's request is revoked;
# one already completed, revoked or entered in error is left as it is.
REVOCABLE_REQUEST_STATUSES = ("active", "on-hold", "draft")
WITHDRAWN = "The patient's consent to share this referral was withdrawn"
RECIPIENT_DENIED = (
    "The patient's consent no longer permits sharing this referral with this time bank"
)
TAKEN_UP_BY_DENIED = (
    "The patient's consent no longer permits sharing this referral with the time bank that had "
    "taken it up; refer again to choose another"
)
RECORDED_BY_TIME_BANKS = ("Procedure", "Observation", "QuestionnaireResponse")


# --- a Task changed -----------------------------------------------------------------------------


def after_task_update(ctx: Context, old: dict[str, Any], new: dict[str, Any]) -> None:
    if old["status"] == new["status"]:
        return
    system = routing.system_context(ctx.session, ctx.settings)
    parent = Ref.of((new.get("partOf") or [{}])[0])
    if parent is not None and parent.rtype == "Task":
        _child_changed(system, parent.id, new)
    elif new["status"] in ("cancelled", "entered-in-error"):
        withdraw_referral(system, new, reason="Cancelled by the referring practice")
    elif old["status"] == "draft" and new["status"] == "requested":
        routing.request_routing(ctx.session, new["id"])


def _child_changed(system: Context, referral_id: ResourceId, child: dict[str, Any]) -> None:
    status = child["status"]
    if status in ENDED_TASK_STATUSES:
        routing.end_access(system, child)
    if status == "rejected" or (
        status == "cancelled" and _referral_status(system, referral_id) == "requested"
    ):
        routing.request_routing(system.session, referral_id)
        return
    target = FOLLOWS.get(status) or ("cancelled" if status == "cancelled" else None)
    if target is None:
        return
    row = resources.load(system, "Task", referral_id, for_update=True)
    task = resources.as_dict(row)
    if not can_move(TaskStatus(task["status"]), TaskStatus(target)) or task["status"] == target:
        return
    fhir_task.set_status(task, target, _followed_reason(child, target))
    if target == "completed":
        patient = str(reference(task.get("for")))
        practice = f"Organization/{row.org_id}"
        shared = decide(system, row.org_id, patient, Purpose.SHARE_BACK, practice).permitted
        outputs = _outputs(system, str(reference(task.get("focus")))) if shared else []
        if outputs:  # FHIR allows no empty arrays
            task["output"] = outputs
    resources.update(system, row, task)


def _followed_reason(child: dict[str, Any], target: str) -> str | None:
    reason = (child.get("statusReason") or {}).get("text")
    if reason:
        return f"Time bank: {reason}"
    return "The time bank withdrew from the referral" if target == "cancelled" else None


def _referral_status(system: Context, referral_id: ResourceId) -> str:
    return str(resources.as_dict(resources.load(system, "Task", referral_id))["status"])


def _outputs(system: Context, sr_ref: str) -> list[dict[str, Any]]:
    """Procedures as resulting activities; score and enrolment Observations as additional content.
    A resource entered in error (a reversed exchange's) is no result of the referral."""
    based_on = [[TokenMatch("based-on", sr_ref)]]
    procedures = _recorded(system, "Procedure", based_on)
    observations = _recorded(system, "Observation", based_on)
    return [fhir_task.output("resulting-activity", f"Procedure/{p.id}") for p in procedures] + [
        fhir_task.output("additional-content", f"Observation/{o.id}") for o in observations
    ]


def _recorded(system: Context, rtype: str, query: list[list[TokenMatch]]) -> list[StoredResource]:
    found = store.search(system.session, system.principal, rtype, query, limit=1000, offset=0)
    return [row for row in found if resources.as_dict(row)["status"] != "entered-in-error"]


def withdraw_referral(
    system: Context, referral: dict[str, Any], reason: str
) -> list[dict[str, Any]]:
    """Revoke the referral's ServiceRequest and cancel its open child Tasks; returns those Tasks."""
    sr_ref = Ref.of(referral.get("focus"))
    if sr_ref is not None and sr_ref.rtype == "ServiceRequest":
        row = resources.load(system, "ServiceRequest", sr_ref.id, for_update=True)
        sr = resources.as_dict(row)
        if sr["status"] in REVOCABLE_REQUEST_STATUSES:
            sr["status"] = "revoked"
            resources.update(system, row, sr)
    cancelled = []
    for kid_row, kid in routing.children(system, referral["id"]):
        if kid["status"] in OPEN_TASK_STATUSES:
            fhir_task.set_status(kid, "cancelled", reason)
            resources.update(system, kid_row, kid)
            routing.end_access(system, kid)
            cancelled.append(kid)
    return cancelled


# --- a Consent changed --------------------------------------------------------------------------


def apply_consent_change(system: Context, tenant: OrgId, patient_ref: str) -> None:
    """`patient_ref` is the changed Consent's `patient` as the practice wrote it. One that is not a
    plain `Patient/<id>` finds no Consent, Task or record: the decisions are audited, nothing
    else happens."""
    if not decide(system, tenant, patient_ref, Purpose.REFERRAL).permitted:
        _stop_referrals(system, tenant, patient_ref)
    else:
        _stop_denied_time_banks(system, tenant, patient_ref)
    practice = f"Organization/{tenant}"
    share_back = decide(system, tenant, patient_ref, Purpose.SHARE_BACK, practice).permitted
    for rtype in RECORDED_BY_TIME_BANKS:
        for row in _about(system, rtype, patient_ref):
            if row.org_id == tenant:
                continue  # the practice's own record
            if share_back:
                resources.grant(system, row, [tenant])
            else:
                store.revoke(system.session, row.id, tenant)
    eligibility.after_consent_change(system, tenant, patient_ref)


def after_patient_update(ctx: Context, tenant: OrgId, patient: dict[str, Any]) -> None:
    """A practice updated its Patient: a national data opt-out now set takes the person out of
    every later health board report at once (`outcomes.eligibility`)."""
    eligibility.after_patient_update(
        routing.system_context(ctx.session, ctx.settings), tenant, patient
    )


def _stop_referrals(system: Context, tenant: OrgId, patient_ref: str) -> None:
    for row in _about(system, "Task", patient_ref):
        task = resources.as_dict(row)
        if row.org_id != tenant:
            continue
        if task.get("partOf"):  # any time bank's Task, open or closed: no more access through it
            # Found by the patient's search index, so `patient_ref` is a plain `Patient/<id>`.
            _revoke_time_bank_access(system, task, id_of(patient_ref))
        elif task["status"] in OPEN_TASK_STATUSES:
            withdraw_referral(system, task, reason=WITHDRAWN)
            fhir_task.set_status(task, "cancelled", WITHDRAWN)
            resources.update(system, row, task)


def _revoke_time_bank_access(system: Context, child: dict[str, Any], patient: ResourceId) -> None:
    """The owner of a child Task loses its grants on the filler-order and on the Patient."""
    focus, owner = Ref.of(child.get("focus")), Ref.of(child.get("owner"))
    if owner is None:
        return  # no time bank named: no grant was given through this Task
    if focus is not None:
        store.revoke(system.session, focus.id, owner.id)
    store.revoke(system.session, patient, owner.id)


def _stop_denied_time_banks(system: Context, tenant: OrgId, patient_ref: str) -> None:
    for row in _about(system, "Task", patient_ref):
        child = resources.as_dict(row)
        if (
            row.org_id != tenant
            or not child.get("partOf")
            or child["status"] not in OPEN_TASK_STATUSES
        ):
            continue
        owner = reference(child.get("owner"))
        if decide(system, tenant, patient_ref, Purpose.REFERRAL, owner).permitted:
            continue
        fhir_task.set_status(child, "cancelled", RECIPIENT_DENIED)
        resources.update(system, row, child)
        routing.end_access(system, child)
        referral = Ref.of(child["partOf"][0])
        if referral is not None:
            _after_denied_child(system, referral.id)


def _after_denied_child(system: Context, referral_id: ResourceId) -> None:
    """Still waiting for an answer: the next time bank. Taken up already: the referral cannot
    move back to `requested`, so it stops and the GP refers again."""
    row = resources.load(system, "Task", referral_id, for_update=True)
    referral = resources.as_dict(row)
    if referral["status"] == "requested":
        routing.request_routing(system.session, referral_id)
    elif referral["status"] in OPEN_TASK_STATUSES:
        withdraw_referral(system, referral, reason=RECIPIENT_DENIED)
        fhir_task.set_status(referral, "cancelled", TAKEN_UP_BY_DENIED)
        resources.update(system, row, referral)


def _about(system: Context, rtype: str, patient_ref: str) -> list[StoredResource]:
    query = [[TokenMatch("patient", patient_ref)]]
    return store.search(system.session, system.principal, rtype, query, limit=10_000, offset=0)
