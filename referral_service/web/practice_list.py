"""The practice's referrals list: its referral Tasks, newest first, a page at a time, with each
patient's name and the time bank that has the referral.

Read as the signed-in person's organisation through the store's searches (tenancy and grants in
every query), in a fixed number of queries per page: the Tasks with their Patients
(`_include=Task:patient`), then the time bank Tasks of all of them in one `part-of` search, then
the time banks' names. What the page shows is audited as a search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from fhir_adapters.summaries import TaskSummary, id_of, person_summary, task_summary
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.context import Context
from referral_service.kit.clock import utcnow
from referral_service.store import reads
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.web.practice_status import (
    current_timebank,
    day_of,
    display_date,
    is_open,
    status_label,
    timebank_names,
)

PAGE_SIZE = 20
# The Status filter's choices, in the order the select lists them ("all" sends no status).
STATUS_FILTERS = (
    "all",
    "requested",
    "accepted",
    "in-progress",
    "on-hold",
    "completed",
    "rejected",
    "cancelled",
    "failed",
)


@dataclass(frozen=True, slots=True)
class Row:
    task_id: str
    referred: str
    patient_name: str
    status: str
    status_label: str
    timebank: str
    days: int | None


@dataclass(frozen=True, slots=True)
class ListPage:
    rows: list[Row]
    page: int
    has_next: bool
    status: str  # one of STATUS_FILTERS


def referral_list(ctx: Context, status: str, page: int) -> ListPage:
    """One page of the caller's referral Tasks, filtered by status unless it is "all"."""
    params = [
        # The referral Tasks only: time bank Tasks have SPIS as requester (docs/api.md).
        ("requester", f"Organization/{ctx.principal.org_id}"),
        ("_include", "Task:patient"),
        ("_sort", "-_lastUpdated"),
        ("_count", str(PAGE_SIZE)),
        ("_offset", str((page - 1) * PAGE_SIZE)),
    ]
    if status != "all":
        params.append(("status", status))
    found = reads.search(ctx, "Task", params, strict=True).page
    assert found is not None  # _count is never 0 here
    children = child_tasks(ctx, [row.id for row in found.matches])
    audit.record_read(ctx, [*found.matches, *found.included, *children.rows], kind=Kind.SEARCH)
    audit.record_unreadable(ctx, found.unreadable, kind=Kind.SEARCH)
    patients = {f"Patient/{row.id}": row for row in found.included if row.type == "Patient"}
    tasks = [task_summary(resources.as_dict(row)) for row in found.matches]
    names = timebank_names(ctx, children.all)
    today = utcnow().date()
    rows = [_row(t, patients, children.of(t.id), names, today) for t in tasks]
    return ListPage(rows, page, found.has_next, status)


@dataclass(frozen=True, slots=True)
class Children:
    """Time bank Tasks: the stored rows (for the audit trail) and their summaries by parent."""

    rows: list[StoredResource]
    by_parent: dict[str, list[TaskSummary]]

    @property
    def all(self) -> list[TaskSummary]:
        return [child for children in self.by_parent.values() for child in children]

    def of(self, referral_task_id: str | None) -> list[TaskSummary]:
        return self.by_parent.get(referral_task_id or "", [])


def child_tasks(ctx: Context, referral_task_ids: Sequence[str]) -> Children:
    """The time bank Tasks of the referral Tasks named, in one search."""
    if not referral_task_ids:
        return Children([], {})
    params = [
        ("part-of", ",".join(f"Task/{rid}" for rid in referral_task_ids)),
        ("_count", str(ctx.settings.max_page_size)),
    ]
    found = reads.search(ctx, "Task", params, strict=True).page
    assert found is not None
    grouped: dict[str, list[TaskSummary]] = {}
    for row in found.matches:
        child = task_summary(resources.as_dict(row))
        for parent in child.part_of:
            grouped.setdefault(id_of(parent) or "", []).append(child)
    return Children(found.matches, grouped)


def _row(
    task: TaskSummary,
    patients: dict[str, StoredResource],
    children: list[TaskSummary],
    names: dict[str, str],
    today: date,
) -> Row:
    patient = patients.get(task.patient or "")
    name = person_summary(resources.as_dict(patient), today).name if patient else None
    referred = day_of(task.authored_on)
    return Row(
        task_id=task.id or "",
        referred=display_date(task.authored_on),
        patient_name=name or "Name not given",
        status=task.status or "",
        status_label=status_label(task.status),
        timebank=current_timebank(task.status, children, names)
        or ("Not yet" if is_open(task.status) else "None"),
        days=(today - referred).days if referred else None,
    )
