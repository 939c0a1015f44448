"""What the broker's referral pages show: the inbox's rows and one referral, read as the broker.

Every read goes through the store as the signed-in person's time bank (tenancy and grants exactly
as over FHIR); bodies come back as a time bank may see them (`presented`: the Patient cut down to
`fhir_adapters.views.BROKER_FIELDS`), and each page's reads are audited as /fhir audits them.
A time bank keeps its Task when its part ends, but not the Patient or the filler order
(`routing.service.end_access`): a closed referral then shows no person or needs, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from fhir_adapters.codes import OFFER_CATEGORIES, REFERRAL_REASONS, TaskStatus
from fhir_adapters.summaries import (
    Coded,
    PersonSummary,
    RequestSummary,
    TaskSummary,
    id_of,
    person_summary,
    request_summary,
    task_summary,
)
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.errors import NotFound
from referral_service.ledger import service as ledger
from referral_service.ledger.feedback import ENROLLABLE_TASK_STATUSES
from referral_service.routing.rules import add_working_days
from referral_service.routing.sla import REMINDED
from referral_service.store import reads
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.service import Version
from referral_service.web.broker_moves import allowed_moves, own_task

PAGE_SIZE = 20
S = TaskStatus
# `?show=`: which of the time bank's Tasks the inbox lists. Without it, the open ones.
SHOW: dict[str, tuple[TaskStatus, ...]] = {
    "waiting": (S.REQUESTED,),
    "active": (S.ACCEPTED, S.IN_PROGRESS, S.ON_HOLD),
    "closed": (S.REJECTED, S.CANCELLED, S.COMPLETED, S.FAILED, S.ENTERED_IN_ERROR),
    "all": (),
}
OPEN = SHOW["waiting"] + SHOW["active"]
# A time bank's Task as its broker reads it: `rejected` is the broker's own decline.
STATUS_LABELS: dict[str, str] = {
    S.DRAFT: "Draft",
    S.REQUESTED: "Waiting for your answer",
    S.ACCEPTED: "Accepted",
    S.REJECTED: "Declined",
    S.CANCELLED: "Cancelled",
    S.IN_PROGRESS: "In progress",
    S.ON_HOLD: "On hold",
    S.COMPLETED: "Completed",
    S.FAILED: "Failed",
    S.ENTERED_IN_ERROR: "Entered in error",
}
# Brokers and GPs in England read times in UK time, whatever the server's zone.
LOCAL_TIME = ZoneInfo("Europe/London")


# --- the inbox -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxRow:
    task_id: str
    referred: str | None
    person: str | None  # None once the time bank no longer sees the person
    needs: tuple[str, ...] | None  # None once it no longer sees the filler order
    status: str
    answer_due: str | None


@dataclass(frozen=True, slots=True)
class Inbox:
    rows: list[InboxRow]
    show: str | None  # None: the open referrals
    page: int
    has_next: bool
    left_out: int  # matches whose stored body did not open (audited as failures)


def inbox(ctx: Context, show: str | None, page: int, now: datetime) -> Inbox:
    """One page of the time bank's Tasks, newest first: a single search as the broker, with the
    filler orders and Patients it shows brought in by `_include` (one query each, whatever the
    page's length), audited like the same search over /fhir."""
    show = show if show in SHOW else None
    found = reads.search(ctx, "Task", _inbox_params(ctx, show, page), strict=True)
    assert found.page is not None  # _count is never 0 here
    matches, included = found.page.matches, found.page.included
    audit.record_read(ctx, [*matches, *included], kind=Kind.SEARCH)
    audit.record_unreadable(ctx, found.page.unreadable, kind=Kind.SEARCH)
    shown = {f"{row.type}/{row.id}": _presented(ctx, row) for row in included}
    rows = [_inbox_row(ctx.settings, task_summary(_presented(ctx, m)), shown, now) for m in matches]
    left_out = sum(row.type == "Task" for row in found.page.unreadable)
    return Inbox(rows, show, page, found.page.has_next, left_out)


def _inbox_params(ctx: Context, show: str | None, page: int) -> list[tuple[str, str]]:
    statuses = SHOW[show] if show is not None else OPEN
    params = [("owner", f"Organization/{ctx.principal.org_id}")]
    if statuses:
        params.append(("status", ",".join(statuses)))
    return [
        *params,
        ("_sort", "-_lastUpdated"),
        ("_count", str(PAGE_SIZE)),
        ("_offset", str((page - 1) * PAGE_SIZE)),
        ("_include", "Task:focus"),
        ("_include", "Task:patient"),
    ]


def _inbox_row(
    settings: Settings, task: TaskSummary, shown: dict[str, dict[str, Any]], now: datetime
) -> InboxRow:
    patient = shown.get(task.patient or "")
    request = shown.get(task.focus or "")
    return InboxRow(
        task_id=task.id or "",
        referred=day(task.authored_on),
        person=person_summary(patient, _today(now)).name if patient else None,
        needs=needs_of(request_summary(request)) if request else None,
        status=status_label(task.status),
        answer_due=answer_due(settings, task, now),
    )


# --- one referral --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryLine:
    when: str
    status: str
    reason: str | None  # the statusReason a person wrote (a decline, a hold...)
    note: str | None  # SPIS's businessStatus (routed, a reminder due)


@dataclass(frozen=True, slots=True)
class Referral:
    task_id: str
    version: int
    status: str | None
    status_label: str
    status_reason: str | None
    referred: str | None
    answer_due: str | None
    person: PersonSummary | None
    reasons: tuple[str, ...]
    needs: tuple[str, ...]
    history: tuple[HistoryLine, ...]  # oldest first
    moves: tuple[str, ...]  # the broker's moves the current status allows (web/broker_moves.py)
    can_enrol: bool
    member_id: str | None


def referral(ctx: Context, task_id: str, now: datetime) -> Referral:
    """The referral page's contents; records the reads of what it shows (the Task with its
    history, the Patient view and the filler order)."""
    row = own_task(ctx, task_id)
    task = task_summary(_presented(ctx, row))
    patient = _readable(ctx, "Patient", task.patient)
    request = _readable(ctx, "ServiceRequest", task.focus)
    versions = reads.history(ctx, "Task", task_id).versions
    audit.record_read(ctx, [r for r in (row, patient, request) if r is not None])
    audit.record_read(ctx, [row], kind=Kind.HISTORY)
    sr = request_summary(_presented(ctx, request)) if request else None
    member = ledger.member_for_task(ctx, task_id)
    return Referral(
        task_id=row.id,
        version=row.version_id,
        status=task.status,
        status_label=status_label(task.status),
        status_reason=task.status_reason,
        referred=day(task.authored_on),
        answer_due=answer_due(ctx.settings, task, now),
        person=person_summary(_presented(ctx, patient), _today(now)) if patient else None,
        reasons=reasons_of(sr) if sr else (),
        needs=needs_of(sr) if sr else (),
        history=tuple(_history_line(v) for v in reversed(versions)),
        moves=allowed_moves(task.status),
        can_enrol=member is None and task.status in ENROLLABLE_TASK_STATUSES,
        member_id=member.id if member else None,
    )


def _readable(ctx: Context, rtype: str, reference: str | None) -> StoredResource | None:
    """The resource a Task points at, if the time bank may (still) read it."""
    rid = id_of(reference) if reference and reference.startswith(f"{rtype}/") else None
    if rid is None:
        return None
    try:
        return resources.load(ctx, rtype, rid)
    except NotFound:
        return None


def _history_line(version: Version) -> HistoryLine:
    task = task_summary(orjson.loads(version.body))
    return HistoryLine(
        when=moment(version.last_updated),
        status=status_label(task.status),
        reason=task.status_reason,
        note="; ".join(c.display or c.code for c in task.business_status) or None,
    )


# --- what the pages say --------------------------------------------------------------------


def status_label(status: str | None) -> str:
    return STATUS_LABELS.get(status or "", status or "Unknown")


def reasons_of(request: RequestSummary) -> tuple[str, ...]:
    coded = tuple(_label(c, REFERRAL_REASONS) for c in request.reasons)
    return coded + tuple(t for t in request.reason_texts if t not in coded)


def needs_of(request: RequestSummary) -> tuple[str, ...]:
    return tuple(_label(c, OFFER_CATEGORIES) for c in request.needs)


def _label(coded: Coded, known: dict[str, str]) -> str:
    return known.get(coded.code) or coded.display or coded.code


def answer_due(settings: Settings, task: TaskSummary, now: datetime) -> str | None:
    """The SLA clock of a Task waiting for the broker's answer (routing/sla.py keeps the same
    time): working days left; "Reminder due" once the SLA has passed (the sweep marks the Task
    `reminder-due`); "Overdue" once the grace period after it has passed too, when the sweep
    sends the referral to the next time bank. Nothing for an answered Task."""
    authored = _instant(task.authored_on)
    if task.status != S.REQUESTED or authored is None:
        return None
    due = add_working_days(authored, settings.broker_sla)
    if now >= add_working_days(due, settings.broker_reminder_grace_working_days):
        return "Overdue"
    if now >= due or REMINDED & {c.code for c in task.business_status}:
        return "Reminder due"
    left = _working_days_left(now, due, settings.broker_sla)
    return f"{left} working day{'' if left == 1 else 's'} left"


def _working_days_left(now: datetime, due: datetime, most: int) -> int:
    """How many working days from now the deadline falls (at least 1 while it is ahead)."""
    days = 1
    while days < most and add_working_days(now, days) < due:
        days += 1
    return days


def day(value: str | None) -> str | None:
    """A FHIR date or instant as "9 Jan 2099" (UK time for an instant)."""
    when = _instant(value)
    if when is not None:
        return _day(when.astimezone(LOCAL_TIME).date())
    try:
        return _day(date.fromisoformat(value)) if value else None
    except ValueError:
        return value


def moment(when: datetime) -> str:
    """An instant as "9 Jan 2099, 14:05" in UK time."""
    local = when.astimezone(LOCAL_TIME)
    return f"{_day(local.date())}, {local:%H:%M}"


def _today(now: datetime) -> date:
    return now.astimezone(LOCAL_TIME).date()


def _day(value: date) -> str:
    return f"{value.day} {value:%b %Y}"


def _instant(value: str | None) -> datetime | None:
    """An instant with its zone; None for a bare date or anything unreadable."""
    if not value or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _presented(ctx: Context, row: StoredResource) -> dict[str, Any]:
    shown: dict[str, Any] = orjson.loads(reads.present(ctx, row))
    return shown
