"""FHIR shapes of the referral Task SPIS builds and changes (SDOH referral management Task).

Pure builders on dicts, taking plain values: the domain decides what goes in.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters import codes
from fhir_adapters.codes import TaskStatus
from fhir_adapters.measures import REJECTED_REASON_SYSTEM, REJECTED_REASONS


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
    return _requested_task(
        focus={"reference": focus},
        patient=dict(patient),
        requester=dict(requester),
        owner=dict(owner),
        authored_on=authored_on,
    )


def child_task(
    referral_task_ref: str, filler_ref: str, patient_ref: str, timebank_ref: str, now: str
) -> dict[str, Any]:
    """A time bank's Task: `partOf` the referral Task, focused on the filler order."""
    task = _requested_task(
        focus=_ref(filler_ref),
        patient=_ref(patient_ref),
        requester={"reference": "Organization/spis", "display": "SPIS"},
        owner=_ref(timebank_ref),
        authored_on=now,
    )
    task["partOf"] = [_ref(referral_task_ref)]
    return task


def _requested_task(
    *,
    focus: dict[str, Any],
    patient: dict[str, Any],
    requester: dict[str, Any],
    owner: dict[str, Any],
    authored_on: str,
) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "meta": {"profile": [codes.SDOH_TASK_PROFILE]},
        "status": TaskStatus.REQUESTED.value,
        "intent": "order",
        "code": {"coding": [{"system": codes.TASK_CODE_SYSTEM, "code": codes.TASK_CODE_FULFILL}]},
        "focus": focus,
        "for": patient,
        "requester": requester,
        "authoredOn": authored_on,
        "owner": owner,
    }


def _ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


def set_status(task: dict[str, Any], status: str, reason: str | None = None) -> None:
    """Move `task` (in place) to `status`, with `reason` as its statusReason text. A reason
    belongs to the status it explained, so an earlier one is dropped whether or not one is given."""
    task["status"] = status
    task.pop("statusReason", None)
    if reason is not None:
        task["statusReason"] = {"text": reason}


# Task.businessStatus codes routing and the broker SLA set (BUSINESS_STATUS_SYSTEM).
ROUTED = "routed"
REMINDER_DUE = "reminder-due"
# What versions before issue 8 stamped for REMINDER_DUE, though no reminder was ever sent. Tasks
# stored then still carry it; it is read, never written.
LEGACY_REMINDER_SENT = "reminder-sent"


def business_status(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": codes.BUSINESS_STATUS_SYSTEM, "code": code, "display": display}]}


def business_status_codes(task: dict[str, Any]) -> frozenset[str]:
    status = task.get("businessStatus")
    codings = status.get("coding") if isinstance(status, dict) else None
    return frozenset(
        c["code"] for c in codings or [] if isinstance(c, dict) and isinstance(c.get("code"), str)
    )


def routed(task: dict[str, Any], timebank_name: str) -> dict[str, Any]:
    """The referral Task once a time bank has been offered it."""
    return {**task, "businessStatus": business_status(ROUTED, f"Routed to {timebank_name}")}


def reminder_due(task: dict[str, Any], working_days: int) -> dict[str, Any]:
    """A time bank's Task left unanswered for `working_days`: a reminder is due."""
    display = f"No answer within {working_days} working days: a reminder is due"
    return {**task, "businessStatus": business_status(REMINDER_DUE, display)}


def cancelled(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """Cancelled with a reason a person can read; any businessStatus stays as the last news."""
    ended = dict(task)
    set_status(ended, TaskStatus.CANCELLED, reason)
    return ended


def rejected(task: dict[str, Any], reason: str, code: str | None = None) -> dict[str, Any]:
    """The referral Task no time bank could take: the routing businessStatus no longer holds.
    `code` (a REJECTED_REASONS key) says why in a form reports can count; the text, for the GP,
    says it in full. KeyError for a code not in REJECTED_REASONS."""
    ended = {key: value for key, value in task.items() if key != "businessStatus"}
    set_status(ended, TaskStatus.REJECTED, reason)
    if code is not None:
        coding = {"system": REJECTED_REASON_SYSTEM, "code": code, "display": REJECTED_REASONS[code]}
        ended["statusReason"] = {"coding": [coding], **ended["statusReason"]}
    return ended


def reason_code(task: dict[str, Any], system: str) -> str | None:
    """The code of `system` in the Task's statusReason (a decline or rejection reason), or None."""
    reason = task.get("statusReason")
    codings = reason.get("coding") if isinstance(reason, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and coding.get("system") == system:
            code = coding.get("code")
            return code if isinstance(code, str) and code else None
    return None


def status_reason(task: dict[str, Any]) -> str | None:
    reason = task.get("statusReason")
    text = reason.get("text") if isinstance(reason, dict) else None
    return text if isinstance(text, str) and text else None


def output(kind: str, reference: str) -> dict[str, Any]:
    """A Task.output entry: `resulting-activity` → Procedure, `additional-content` → Observation."""
    return {
        "type": {"coding": [{"system": codes.TASK_OUTPUT_TYPE_SYSTEM, "code": kind}]},
        "valueReference": _ref(reference),
    }


# --- a broker's moves on its time bank Task (issue 9) ---------------------------------------------
# Each returns the Task to PUT, leaving the one passed in as it was. Whether the move is allowed
# is the state machine's question (referral_service/referrals/status.py), asked by intake: these
# only write it down. A reason that is needed but blank is left out, so intake refuses the move
# with its own message on `Task.statusReason.text` (see `decision_field_of`).

_ANSWERED_MARKS = frozenset({REMINDER_DUE, LEGACY_REMINDER_SENT})


def accepted(task: dict[str, Any]) -> dict[str, Any]:
    """The time bank takes the referral."""
    return _moved(_answered(task), TaskStatus.ACCEPTED)


def declined(task: dict[str, Any], reason_code: str, text: str | None = None) -> dict[str, Any]:
    """The time bank declines: `rejected`, with a DECLINE_REASONS code and text the GP reads.

    The text is the reason's display, followed by the broker's note when there is one; the
    `other` reason has no words of its own, so without a note it has no text and intake refuses
    it. ValueError for a code not in DECLINE_REASONS.
    """
    display = codes.DECLINE_REASONS.get(reason_code)
    if display is None:
        raise ValueError("not a decline reason code")
    note = (text or "").strip()
    if reason_code == codes.DECLINE_OTHER:
        words = note or None
    else:
        words = f"{display}: {note}" if note else display
    task = _moved(_answered(task), TaskStatus.REJECTED, words)
    coding = {"system": codes.DECLINE_REASON_SYSTEM, "code": reason_code, "display": display}
    task["statusReason"] = {"coding": [coding], **task.get("statusReason", {})}
    return task


def in_progress(task: dict[str, Any]) -> dict[str, Any]:
    """Work with the person has started (or resumes after a hold)."""
    return _moved(task, TaskStatus.IN_PROGRESS)


def on_hold(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """Paused, with the reason the GP reads."""
    return _moved(task, TaskStatus.ON_HOLD, reason)


def completed(task: dict[str, Any]) -> dict[str, Any]:
    """The time bank's part is done; SPIS then completes the referral Task with its outputs."""
    return _moved(task, TaskStatus.COMPLETED)


def failed(task: dict[str, Any], reason: str) -> dict[str, Any]:
    """It did not work out, with the reason the GP reads."""
    return _moved(task, TaskStatus.FAILED, reason)


def _moved(task: dict[str, Any], status: TaskStatus, reason: str | None = None) -> dict[str, Any]:
    moved = dict(task)
    set_status(moved, status, (reason or "").strip() or None)
    return moved


def _answered(task: dict[str, Any]) -> dict[str, Any]:
    """An answered Task no longer waits for a reminder: the SLA's mark goes."""
    if business_status_codes(task) & _ANSWERED_MARKS:
        return {key: value for key, value in task.items() if key != "businessStatus"}
    return task


def decision_field_of(expression: str) -> str | None:
    """ "reason" when an OperationOutcome issue is about the Task's status reason, "status" when
    about the move itself, else None: where a page shows intake's message."""
    if expression.startswith("Task.statusReason"):
        return "reason"
    return "status" if expression == "Task.status" else None
