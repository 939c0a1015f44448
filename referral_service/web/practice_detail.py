"""One of the practice's referrals: its status, the time bank, its history, and what came back.

Everything is read as the signed-in person's organisation (tenancy and grants in every query): a
Task of another practice, or a time bank's Task, is the same NotFound as an unknown id. What
came back (Procedures and Observations based on the ServiceRequest) is shown only when the
person's Consent permits share-back to this practice, as the consent domain decides; the store's
grants already hide the rest. The rows shown are audited as a read.
"""

from __future__ import annotations

from dataclasses import dataclass

from fhir_adapters.summaries import (
    TaskSummary,
    id_of,
    person_summary,
    request_summary,
    task_summary,
)
from referral_service.audit import service as audit
from referral_service.context import Context
from referral_service.errors import NotFound
from referral_service.kit.clock import utcnow
from referral_service.store import reads
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.web.practice_came_back import CameBack, came_back
from referral_service.web.practice_history import Event, history
from referral_service.web.practice_list import child_tasks
from referral_service.web.practice_status import (
    current_timebank,
    display_date,
    explanation,
    is_open,
    status_label,
    timebank_names,
)

# SPIS coordinates every referral Task (referrals/rules.SPIS_OWNER); time bank Tasks have an owner
# of their own and a partOf.
_SPIS_OWNER = "Organization/spis"


@dataclass(frozen=True, slots=True)
class Detail:
    task_id: str
    version: int  # for If-Match when the page cancels it
    status: str
    status_label: str
    explanation: str
    open: bool
    patient_name: str
    referred: str
    reasons: tuple[str, ...]
    needs: tuple[str, ...]
    timebank: str | None
    history: list[Event]
    came_back: CameBack


def referral_task(ctx: Context, task_id: str) -> tuple[StoredResource, TaskSummary]:
    """The caller's referral Task, or NotFound (for a time bank's Task too: not a referral)."""
    row = resources.load(ctx, "Task", task_id)
    task = task_summary(resources.as_dict(row))
    if task.owner != _SPIS_OWNER or task.part_of or row.org_id != ctx.principal.org_id:
        raise NotFound(f"Task/{task_id} is not known")
    return row, task


def referral_detail(ctx: Context, task_id: str) -> Detail:
    row, task = referral_task(ctx, task_id)
    patient_row = resources.load(ctx, "Patient", id_of(task.patient) or "")
    request_row = resources.load(ctx, "ServiceRequest", id_of(task.focus) or "")
    request = request_summary(resources.as_dict(request_row))
    versions = reads.history(ctx, "Task", task_id).versions
    children = child_tasks(ctx, [task_id])
    names = timebank_names(ctx, children.all)
    back, back_rows = came_back(ctx, row.org_id, task.patient or "", f"ServiceRequest/{request.id}")
    shown = [row, patient_row, request_row, *children.rows, *back_rows]
    audit.record_read(ctx, shown)
    today = utcnow().date()
    return Detail(
        task_id=task_id,
        version=row.version_id,
        status=task.status or "",
        status_label=status_label(task.status),
        explanation=explanation(task.status),
        open=is_open(task.status),
        patient_name=person_summary(resources.as_dict(patient_row), today).name or "",
        referred=display_date(task.authored_on),
        reasons=(*(r.display or r.code for r in request.reasons), *request.reason_texts),
        needs=tuple(n.display or n.code for n in request.needs),
        timebank=current_timebank(task.status, children.all, names),
        history=history(versions, children.all, names),
        came_back=back,
    )
