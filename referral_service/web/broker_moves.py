"""What a broker does to a referral from its page: accept, decline, hold, start, complete or fail
the time bank's Task, and enrol the person as a member.

A move is a FHIR update in all but transport: the Task is built by `fhir_adapters.task`,
validated, and written through intake (`referrals.service.submit`) with `If-Match` naming the
version the page showed, then audited as /fhir audits a PUT. The state machine
(referrals/status.py) decides which forms a page offers, but intake enforces it: a stale or
crafted form gets the service's own refusal, and nothing changes (the write runs in a savepoint).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fhir_adapters import task as fhir_task
from fhir_adapters.audit import patient_id_of
from fhir_adapters.codes import TaskStatus
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.summaries import task_summary
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.context import Context
from referral_service.errors import NotFound, ServiceError
from referral_service.ledger import service as ledger
from referral_service.organisations.models import OrgKind
from referral_service.referrals import service as referrals
from referral_service.referrals.rules import MAY_SET
from referral_service.referrals.service import Entry
from referral_service.referrals.status import ALLOWED
from referral_service.store import service as resources
from referral_service.store.models import StoredResource

CHANGED = "This referral changed while you were looking at it; here it is now."
NO_DECLINE_REASON = "Choose a reason for declining"
ALIAS_LABEL = "Name to use in the ledger"


@dataclass(frozen=True, slots=True)
class MoveForm:
    """What the move forms post. `version` is the Task version the page showed."""

    version: str
    reason_code: str = ""
    note: str = ""
    hold_reason: str = ""
    fail_reason: str = ""


Builder = Callable[[dict[str, Any], MoveForm], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Move:
    status: TaskStatus
    build: Builder
    notice: str  # web/notices.py
    reason_field: str | None  # the form field whose text becomes Task.statusReason.text


MOVES: dict[str, Move] = {
    "accept": Move(
        TaskStatus.ACCEPTED, lambda t, f: fhir_task.accepted(t), "referral-accepted", None
    ),
    "decline": Move(
        TaskStatus.REJECTED,
        lambda t, f: fhir_task.declined(t, f.reason_code, f.note),
        "referral-declined",
        "note",
    ),
    "hold": Move(
        TaskStatus.ON_HOLD,
        lambda t, f: fhir_task.on_hold(t, f.hold_reason),
        "referral-on-hold",
        "hold_reason",
    ),
    "start": Move(
        TaskStatus.IN_PROGRESS, lambda t, f: fhir_task.in_progress(t), "referral-started", None
    ),
    "complete": Move(
        TaskStatus.COMPLETED, lambda t, f: fhir_task.completed(t), "referral-completed", None
    ),
    "fail": Move(
        TaskStatus.FAILED,
        lambda t, f: fhir_task.failed(t, f.fail_reason),
        "referral-failed",
        "fail_reason",
    ),
}


@dataclass(frozen=True, slots=True)
class Refused:
    """A move or enrolment the service refused: its status and message, and the form field the
    message belongs beside (None: about the referral as a whole)."""

    status: int
    message: str
    field: str | None = None


def allowed_moves(status: str | None) -> tuple[str, ...]:
    """The moves a time bank may make from `status`, in the order the page offers them."""
    try:
        current = TaskStatus(status or "")
    except ValueError:
        return ()
    return tuple(
        name
        for name, move in MOVES.items()
        if move.status in ALLOWED[current] and move.status in MAY_SET[OrgKind.TIMEBANK]
    )


def own_task(ctx: Context, task_id: str, *, for_update: bool = False) -> StoredResource:
    """The time bank's own Task. Anything else (unknown, another organisation's, a Task the time
    bank may read but does not own) is the same NotFound, so the same 404 page."""
    row = resources.load(ctx, "Task", task_id, for_update=for_update)
    owner = task_summary(resources.as_dict(row)).owner
    if owner != f"Organization/{ctx.principal.org_id}":
        raise NotFound(f"Task/{task_id} is not known")
    return row


def move(ctx: Context, task_id: str, name: str, form: MoveForm) -> Refused | None:
    """Make the move `name` (a key of MOVES); None when done, else why not."""
    chosen = MOVES[name]
    row = own_task(ctx, task_id, for_update=True)
    if not (
        form.version.isascii() and form.version.isdigit()
    ):  # no version from the page: it cannot say what it showed
        return Refused(412, CHANGED)
    try:
        body = chosen.build(resources.as_dict(row), form)
    except ValueError:  # not one of DECLINE_REASONS (or none chosen)
        return Refused(422, NO_DECLINE_REASON, "reason_code")
    entry = Entry("PUT", "Task", body, rid=row.id, if_match=f'W/"{form.version}"')
    try:
        with ctx.session.begin_nested():
            validate_resource(body, expected_type="Task")
            [outcome] = referrals.submit(ctx, [entry])
    except (ServiceError, FhirError) as exc:
        return _refused(ctx, row, exc, chosen.reason_field, Kind.UPDATE)
    audit.record_write(ctx, Kind.UPDATE, [outcome.version])
    return None


def enrol(ctx: Context, task_id: str, alias: str) -> Refused | None:
    """Enrol the referred person as a member (the ledger checks the Task's status and that
    nobody is enrolled from it yet, and audits the enrolment)."""
    row = own_task(ctx, task_id)
    try:
        with ctx.session.begin_nested():
            ledger.enrol(ctx, task_id, alias)
    except ServiceError as exc:
        refused = _refused(ctx, row, exc, None, Kind.CREATE)
        if exc.expression == ["alias"]:
            message = exc.message.replace("alias", ALIAS_LABEL, 1)
            return Refused(refused.status, message, "alias")
        return refused
    return None


def _refused(
    ctx: Context,
    row: StoredResource,
    exc: ServiceError | FhirError,
    reason_field: str | None,
    kind: Kind,
) -> Refused:
    """The refusal as the page shows it, audited like a refused /fhir request. Not found stays
    an error: it is the 404 page, whatever the form."""
    if isinstance(exc, NotFound):
        raise exc
    status = exc.status
    code = exc.issue_code if isinstance(exc, ServiceError) else exc.code
    audit.record_refusal(
        ctx,
        kind,
        status=status,
        issue_code=code,
        entities=[f"Task/{row.id}"],
        tenant=row.org_id,
        patient_id=patient_id_of("Task", row.id, resources.as_dict(row)),
    )
    if status == 412:
        return Refused(412, CHANGED)
    message = exc.message if isinstance(exc, ServiceError) else exc.diagnostics
    return Refused(status, message, _field_of(exc, reason_field))


def _field_of(exc: ServiceError | FhirError, reason_field: str | None) -> str | None:
    if isinstance(exc, ServiceError):
        expressions = list(exc.expression or [])
    else:
        expressions = [e for issue in exc.issues for e in issue.expression]
    for expression in expressions:
        if fhir_task.decision_field_of(expression) == "reason":
            return reason_field
    return None
