"""What the practice's pages say about a referral's status and its time bank, and how they show
dates. Pure, apart from looking up time banks' names."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from fhir_adapters.codes import ENDED_TASK_STATUSES, OPEN_TASK_STATUSES, TaskStatus
from fhir_adapters.summaries import TaskSummary, id_of
from referral_service.context import Context
from referral_service.organisations import repository as organisations

STATUS_LABELS: dict[str, str] = {
    TaskStatus.DRAFT: "Draft",
    TaskStatus.REQUESTED: "Requested",
    TaskStatus.ACCEPTED: "Accepted",
    TaskStatus.IN_PROGRESS: "In progress",
    TaskStatus.ON_HOLD: "On hold",
    TaskStatus.COMPLETED: "Completed",
    TaskStatus.REJECTED: "Rejected",
    TaskStatus.CANCELLED: "Cancelled",
    TaskStatus.FAILED: "Failed",
    TaskStatus.ENTERED_IN_ERROR: "Entered in error",
}
EXPLANATIONS: dict[str, str] = {
    TaskStatus.DRAFT: "The referral has not been sent to a time bank yet.",
    TaskStatus.REQUESTED: (
        "SPIS is finding a time bank for the person, or waiting for the time bank it chose to "
        "answer."
    ),
    TaskStatus.ACCEPTED: "A time bank has taken the referral and will get in touch with the person.",
    TaskStatus.IN_PROGRESS: "The person is taking part in the time bank.",
    TaskStatus.ON_HOLD: "The time bank has paused the referral; the history says why.",
    TaskStatus.COMPLETED: "The time bank has finished its work with the person.",
    TaskStatus.REJECTED: "No time bank could take the referral; the history says why.",
    TaskStatus.CANCELLED: "The referral was cancelled; the history says why.",
    TaskStatus.FAILED: "The time bank could not help the person; the history says why.",
    TaskStatus.ENTERED_IN_ERROR: "The referral was withdrawn as made in error.",
}
OPEN = frozenset(s.value for s in OPEN_TASK_STATUSES)
_ENDED = frozenset(s.value for s in ENDED_TASK_STATUSES)
_REFUSED = frozenset({TaskStatus.REJECTED.value, TaskStatus.ENTERED_IN_ERROR.value})


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", status or "Unknown")


def explanation(status: str | None) -> str:
    return EXPLANATIONS.get(status or "", "SPIS does not know this status.")


def is_open(status: str | None) -> bool:
    return status in OPEN


def current_child(
    referral_status: str | None, children: Sequence[TaskSummary]
) -> TaskSummary | None:
    """The time bank Task that has the referral: the newest one the time bank did not decline.
    While the referral is open that excludes Tasks already ended (a referral being routed
    again); once it has ended, the Task that ended with it still names who had it."""
    excluded = _ENDED if is_open(referral_status) else _REFUSED
    live = [c for c in children if c.status not in excluded]
    return max(live, key=lambda c: c.authored_on or "", default=None)


def current_timebank(
    referral_status: str | None, children: Sequence[TaskSummary], names: dict[str, str]
) -> str | None:
    child = current_child(referral_status, children)
    return names.get(child.owner or "") if child else None


def timebank_names(ctx: Context, children: Sequence[TaskSummary]) -> dict[str, str]:
    """`Organization/<id>` → name, for the owners of `children` (one lookup per time bank)."""
    names = {}
    for owner in {c.owner for c in children if c.owner}:
        org_id = id_of(owner)
        org = organisations.get(ctx.session, org_id) if org_id else None
        if org is not None:
            names[owner] = org.name
    return names


def instant_of(value: str | None) -> datetime | None:
    """A FHIR date or dateTime as an aware datetime (a date alone: its start, UTC)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def day_of(value: str | None) -> date | None:
    when = instant_of(value)
    return when.date() if when else None


def display_date(value: str | datetime | None) -> str:
    """ "2 March 2026"; an empty string for no date or one that cannot be read."""
    when = instant_of(value) if isinstance(value, str | None) else value
    return f"{when.day} {when:%B %Y}" if when else ""
