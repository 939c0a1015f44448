"""FHIR shapes of the referral Task SPIS builds and changes (SDOH referral management Task).

Pure builders on dicts, taking plain values: the domain decides what goes in.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import codes
from fhir_adapters.codes import TaskStatus


def referral_task(
    *,
    focus: str,
    patient: dict[str, Any],
    requester: dict[str, Any],
    owner: dict[str, Any],
    authored_on: str,
) -> dict[str, Any]:
    """A new referral Task, `requested`, for the ServiceRequest `focus` ("ServiceRequest/<id>")
    and the Reference elements given (copied, so the Task never shares them with the caller)."""
    return {
        "resourceType": "Task",
        "meta": {"profile": [codes.SDOH_TASK_PROFILE]},
        "status": TaskStatus.REQUESTED.value,
        "intent": "order",
        "code": {"coding": [{"system": codes.TASK_CODE_SYSTEM, "code": codes.TASK_CODE_FULFILL}]},
        "focus": {"reference": focus},
        "for": dict(patient),
        "requester": dict(requester),
        "authoredOn": authored_on,
        "owner": dict(owner),
    }


def set_status(task: dict[str, Any], status: str, reason: str | None = None) -> None:
    """Move `task` (in place) to `status`, with `reason` as its statusReason text. A reason
    belongs to the status it explained, so an earlier one is dropped whether or not one is given."""
    task["status"] = status
    task.pop("statusReason", None)
    if reason is not None:
        task["statusReason"] = {"text": reason}
