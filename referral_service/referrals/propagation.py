"""What a Task change means for the rest of the referral (DESIGN §3 steps 3, 5, 6).

- a time bank's child Task accepted / started / held / completed / failed → the referral Task
  follows; declined → routed to the next candidate;
- the practice cancels the referral Task → its ServiceRequest is revoked and open child Tasks are
  cancelled (capacity frees itself: it is derived from open child Tasks).
Runs in the same transaction as the change, as SPIS (the child's referral Task belongs to the
practice, which the time bank cannot read).
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import referral as fhir_referral
from fhir_adapters.codes import ENDED_TASK_STATUSES, OPEN_TASK_STATUSES, TaskStatus
from fhir_adapters.rules import reference
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.referrals.status import can_move
from referral_service.routing import service as routing
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.repository import TokenMatch

# Child status → the referral Task's status, when the referral is in a state that allows it.
FOLLOWS = {
    "accepted": "accepted",
    "in-progress": "in-progress",
    "on-hold": "on-hold",
    "completed": "completed",
    "failed": "failed",
}


def after_task_update(ctx: Context, old: dict[str, Any], new: dict[str, Any]) -> None:
    if old["status"] == new["status"]:
        return
    system = routing.system_context(ctx.session, ctx.settings)
    parent = (new.get("partOf") or [{}])[0]
    parent_ref = reference(parent)
    if parent_ref and parent_ref.startswith("Task/"):
        _child_changed(system, parent_ref.partition("/")[2], new)
    elif new["status"] in ("cancelled", "entered-in-error"):
        _referral_withdrawn(system, new)
    elif old["status"] == "draft" and new["status"] == "requested":
        routing.request_routing(ctx.session, new["id"])


def _child_changed(system: Context, referral_id: str, child: dict[str, Any]) -> None:
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
    task["status"] = target
    task.pop("statusReason", None)  # a reason belongs to the status it explained
    reason = (child.get("statusReason") or {}).get("text")
    if reason:
        task["statusReason"] = {"text": f"Time bank: {reason}"}
    elif target == "cancelled":
        task["statusReason"] = {"text": "The time bank withdrew from the referral"}
    if target == "completed":
        patient = str(reference(task.get("for")))
        practice = f"Organization/{row.org_id}"
        shared = decide(system, row.org_id, patient, Purpose.SHARE_BACK, practice).permitted
        outputs = _outputs(system, str(reference(task.get("focus")))) if shared else []
        if outputs:  # FHIR allows no empty arrays
            task["output"] = outputs
    resources.update(system, row, task)


def _referral_status(system: Context, referral_id: str) -> str:
    return str(resources.as_dict(resources.load(system, "Task", referral_id))["status"])


def _outputs(system: Context, sr_ref: str) -> list[dict[str, Any]]:
    """Procedures as resulting activities; score and enrolment Observations as additional content."""
    based_on = [[TokenMatch("based-on", sr_ref)]]
    procedures = store.search(
        system.session, system.principal, "Procedure", based_on, limit=1000, offset=0
    )
    observations = store.search(
        system.session, system.principal, "Observation", based_on, limit=1000, offset=0
    )
    return [fhir_referral.output("resulting-activity", f"Procedure/{p.id}") for p in procedures] + [
        fhir_referral.output("additional-content", f"Observation/{o.id}") for o in observations
    ]


def _referral_withdrawn(system: Context, referral: dict[str, Any]) -> None:
    withdraw_referral(system, referral, reason="Cancelled by the referring practice")


def withdraw_referral(
    system: Context, referral: dict[str, Any], reason: str
) -> list[dict[str, Any]]:
    """Revoke the referral's ServiceRequest and cancel its open child Tasks; returns those Tasks."""
    sr_ref = reference(referral.get("focus"))
    if sr_ref and sr_ref.startswith("ServiceRequest/"):
        row = resources.load(system, "ServiceRequest", sr_ref.partition("/")[2], for_update=True)
        sr = resources.as_dict(row)
        if sr["status"] in ("active", "on-hold", "draft"):
            sr["status"] = "revoked"
            resources.update(system, row, sr)
    cancelled = []
    for kid_row, kid in routing.children(system, referral["id"]):
        if kid["status"] in OPEN_TASK_STATUSES:
            kid["status"] = "cancelled"
            kid["statusReason"] = {"text": reason}
            resources.update(system, kid_row, kid)
            routing.end_access(system, kid)
            cancelled.append(kid)
    return cancelled
