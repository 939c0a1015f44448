"""The practice staff's pages: their referrals, a new referral, one referral, and cancelling it.

Thin, like every page: read the form, call the same services a GP system reaches over /fhir
(`fhir/transactions.py`: intake, then the audit of what was written), render or redirect. A
write intake refuses runs in a savepoint that is rolled back, so nothing of it is stored, while
the refusal is audited and its messages are shown next to the fields they are about.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from fhir_adapters import task as fhir_task
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.referral_form import form_problems, referral_bundle
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.errors import ServiceError
from referral_service.fhir import transactions
from referral_service.store import reads
from referral_service.store import service as resources
from referral_service.web import practice_form as forms
from referral_service.web.practice_detail import referral_detail, referral_task
from referral_service.web.practice_list import STATUS_FILTERS, referral_list
from referral_service.web.practice_status import STATUS_LABELS, is_open
from referral_service.web.render import render, see_other
from referral_service.web.security import FormText, PracticeStaff, Viewer

router = APIRouter()

LIST_PATH = "/practice"
NEW_PATH = "/practice/referrals/new"
REASON_REQUIRED = "Say why the referral is being cancelled: the time bank and the record keep it"
CLOSED = "This referral has ended, so it cannot be cancelled. Nothing was changed."


def detail_path(task_id: str) -> str:
    return f"/practice/referrals/{task_id}"


# --- the list --------------------------------------------------------------------------------


@router.get(LIST_PATH)
def referrals_page(
    request: Request, viewer: PracticeStaff, status: str = "all", page: str = "1"
) -> Response:
    chosen = status if status in STATUS_FILTERS else "all"
    number = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
    found = referral_list(viewer.context, chosen, number)
    filters = [(s, "All" if s == "all" else STATUS_LABELS[s]) for s in STATUS_FILTERS]
    context = {"found": found, "filters": filters, "chosen_label": dict(filters)[chosen]}
    return render(request, "practice/list.html", context)


# --- a new referral --------------------------------------------------------------------------


@router.get(NEW_PATH)
def new_referral_page(request: Request, viewer: PracticeStaff) -> Response:
    return _form_page(request, forms.blank_form())


@router.post("/practice/referrals")
def send_referral(
    request: Request,
    viewer: PracticeStaff,
    typed: Annotated[forms.Typed, Form()],
) -> Response:
    now = forms.sent_at(typed)
    if now is None or not typed.referral_id:
        fresh = forms.blank_form()  # keeps what was typed, under a new identifier and moment
        reset = typed.model_copy(
            update={"referral_id": fresh.referral_id, "sent_at": fresh.sent_at}
        )
        return _form_page(request, reset, form_error=forms.EXPIRED, status=400)
    form = forms.referral_form(typed, viewer.organisation.id)
    if problems := form_problems(form):
        return _form_page(request, typed, errors=problems, status=400)
    ctx = viewer.context
    try:
        with ctx.session.begin_nested():
            bundle = referral_bundle(form, now)
            validate_resource(bundle, expected_type="Bundle")
            outcomes = transactions.submit_transaction(ctx, bundle)
    except (ServiceError, FhirError) as refusal:
        status, code = forms.status_of(refusal)
        audit.record_refusal(ctx, Kind.TRANSACTION, status=status, issue_code=code)
        found = forms.refusal_problems(refusal)
        return _form_page(request, typed, found.fields, found.form_error, status)
    request_id = next(o.version.id for o in outcomes if o.version.type == "ServiceRequest")
    return see_other(detail_path(_task_for(viewer, request_id)), notice="referral-sent")


def _task_for(viewer: Viewer, request_id: str) -> str:
    """The referral Task of a ServiceRequest intake took: the one it created or, for a resend,
    the one created the first time."""
    params = [("focus", f"ServiceRequest/{request_id}"), ("_count", "1")]
    page = reads.search(viewer.context, "Task", params, strict=True).page
    if page is None or not page.matches:  # intake always makes one: a broken store
        raise RuntimeError("a referral without its referral Task")
    return page.matches[0].id


def _form_page(
    request: Request,
    typed: forms.Typed,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    context = {
        "form": typed,
        "reasons": forms.REASONS,
        "needs": forms.NEEDS,
        "errors": errors or {},
        "form_error": form_error,
    }
    return render(request, "practice/new.html", context, status=status)


# --- one referral ----------------------------------------------------------------------------


@router.get("/practice/referrals/{task_id}")
def referral_page(request: Request, viewer: PracticeStaff, task_id: str) -> Response:
    return _detail_page(request, viewer, task_id)


@router.post("/practice/referrals/{task_id}/cancel")
def cancel_referral(
    request: Request,
    viewer: PracticeStaff,
    task_id: str,
    reason: FormText = "",
    version: FormText = "",
) -> Response:
    ctx = viewer.context
    row, task = referral_task(ctx, task_id)
    reason = reason.strip()
    if not is_open(task.status):  # intake would take it as a new reason on a closed referral
        return _detail_page(request, viewer, task_id, reason, form_error=CLOSED, status=409)
    if not reason:
        errors = {"reason": REASON_REQUIRED}
        return _detail_page(request, viewer, task_id, reason, errors, status=400)
    body = fhir_task.cancelled(resources.as_dict(row), reason)
    if_match = f'W/"{version}"' if version.isdigit() else None
    try:
        with ctx.session.begin_nested():
            validate_resource(body, expected_type="Task")
            transactions.submit_update(ctx, "Task", task_id, body, if_match)
    except (ServiceError, FhirError) as refusal:
        status, code = forms.status_of(refusal)
        audit.record_refusal(
            ctx, Kind.UPDATE, status=status, issue_code=code, entities=[f"Task/{task_id}"]
        )
        found = forms.refusal_problems(refusal, _reason_field)
        return _detail_page(
            request, viewer, task_id, reason, found.fields, found.form_error, status
        )
    return see_other(detail_path(task_id), notice="referral-cancelled")


def _reason_field(expression: str) -> str | None:
    """Intake's message about the status reason goes next to "Reason for cancelling"; one about
    the move itself (the state machine's) above the form."""
    return "reason" if fhir_task.decision_field_of(expression) == "reason" else None


def _detail_page(
    request: Request,
    viewer: Viewer,
    task_id: str,
    reason: str = "",
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    detail = referral_detail(viewer.context, task_id)
    context = {
        "detail": detail,
        "reason": reason,
        "errors": errors or {},
        "form_error": form_error,
    }
    return render(request, "practice/detail.html", context, status=status)
