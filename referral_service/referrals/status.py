"""The referral Task state machine (DESIGN §3; SDOH referral Task status value set). Pure data."""

from __future__ import annotations

from fhir_adapters.codes import STATUS_REASON_REQUIRED, TaskStatus
from referral_service.errors import BusinessRuleViolation

S = TaskStatus
ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    S.DRAFT: frozenset({S.REQUESTED}),
    S.REQUESTED: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELLED}),
    S.ACCEPTED: frozenset({S.IN_PROGRESS, S.ON_HOLD, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.ON_HOLD, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.ON_HOLD: frozenset({S.IN_PROGRESS, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.REJECTED: frozenset(),
    S.CANCELLED: frozenset(),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
    S.ENTERED_IN_ERROR: frozenset(),
}
TERMINAL = frozenset(status for status, nexts in ALLOWED.items() if not nexts)
NEEDS_REASON = STATUS_REASON_REQUIRED
# Statuses a new referral Task may be created in.
INITIAL = frozenset({S.DRAFT, S.REQUESTED})


def can_move(current: TaskStatus, new: TaskStatus) -> bool:
    if current == new:
        return True  # an update that changes other elements only
    return new is S.ENTERED_IN_ERROR or new in ALLOWED[current]


def check_transition(current: TaskStatus, new: TaskStatus, reason: str | None) -> None:
    if not can_move(current, new):
        raise BusinessRuleViolation(
            f"A referral Task cannot move from {current.value} to {new.value}",
            expression=["Task.status"],
        )
    if new != current and new in NEEDS_REASON and not (reason and reason.strip()):
        raise BusinessRuleViolation(
            f"Task.statusReason.text is required when the status becomes {new.value}",
            status=422,
            expression=["Task.statusReason.text"],
        )
