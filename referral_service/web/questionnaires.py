"""Wellbeing questionnaires on the broker's pages: the published Questionnaire as a form for a
referred member, saved through the same intake and scoring as `POST /fhir/QuestionnaireResponse`.
The scores it produces are shown on the member's statement (web/scores.py).

The form's answers become the QuestionnaireResponse a time bank system would send
(`fhir_adapters.questionnaire_form`), validated as /fhir validates it and submitted to
`referrals.service.submit`, which scores it into Observations; intake's refusals are mapped back
to the items they name. Nothing about scoring lives here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.questionnaire_form import (
    FormItem,
    form_items,
    item_of,
    questionnaire_choices,
    questionnaire_response,
)
from fhir_adapters.questionnaires import INSTRUMENTS
from fhir_adapters.summaries import task_summary
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.context import Context
from referral_service.errors import NotFound, ServiceError
from referral_service.kit.clock import fhir_instant, utcnow
from referral_service.ledger import service as ledger
from referral_service.ledger.models import Member
from referral_service.referrals import service as referrals
from referral_service.referrals.service import Entry
from referral_service.store import service as resources
from referral_service.web.ledger_display import (
    MEMBER_TYPE,
    record_shown,
    refs,
    sentence,
)
from referral_service.web.render import render, see_other
from referral_service.web.security import Broker

router = APIRouter(prefix="/broker")

ITEM_FIELD = "item-{}"  # a radio group's name (and its first radio's id), by linkId


async def form_data(request: Request) -> FormData:
    """The posted form (already parsed for the CSRF check): a questionnaire's fields are its
    items, so they cannot be declared one by one."""
    return await request.form()


Form = Annotated[FormData, Depends(form_data)]


def choices() -> list[tuple[str, str]]:
    """(questionnaire id, title) of the four instruments a broker can record."""
    return questionnaire_choices()


def questionnaire_path(member_id: str, questionnaire_id: str) -> str:
    return f"/broker/members/{member_id}/questionnaires/{questionnaire_id}"


@router.get("/members/{member_id}/questionnaires/{questionnaire_id}")
def questionnaire_page(
    request: Request, viewer: Broker, member_id: str, questionnaire_id: str
) -> Response:
    member = _referred_member(viewer.context, member_id, questionnaire_id)
    return _page(request, viewer, member, questionnaire_id, {})


@router.post("/members/{member_id}/questionnaires/{questionnaire_id}")
def save_answers(
    request: Request, viewer: Broker, member_id: str, questionnaire_id: str, form: Form
) -> Response:
    ctx = viewer.context
    member = _referred_member(ctx, member_id, questionnaire_id)
    items = form_items(questionnaire_id)
    answers = {item.link_id: _answer(form, item) for item in items}
    response = questionnaire_response(
        questionnaire_id,
        answers,
        patient_ref=f"Patient/{member.patient_id}",
        based_on_ref=_based_on(ctx, member),
        authored=fhir_instant(utcnow()),
    )
    try:
        with ctx.session.begin_nested():
            validate_resource(response, expected_type="QuestionnaireResponse")
            [outcome] = referrals.submit(ctx, [Entry("POST", "QuestionnaireResponse", response)])
    except (ServiceError, FhirError) as exc:
        if isinstance(exc, NotFound):
            raise
        code = exc.issue_code if isinstance(exc, ServiceError) else exc.code
        audit.record_refusal(
            ctx,
            Kind.CREATE,
            status=exc.status,
            issue_code=code,
            entities=[],
            tenant=ctx.principal.org_id,
        )
        errors, form_error = _refusal(exc, response, items)
        return _page(
            request, viewer, member, questionnaire_id, answers, errors, form_error, exc.status
        )
    if outcome.created:
        audit.record_write(ctx, Kind.CREATE, outcome.written())
    return see_other(f"/broker/members/{member.id}", notice="questionnaire-saved")


def _referred_member(ctx: Context, member_id: str, questionnaire_id: str) -> Member:
    """The member, if they are this time bank's and were referred (only a referral has the
    patient and ServiceRequest a response is about); the 404 page otherwise."""
    member = ledger.get_member(ctx, member_id)
    if not member.referred or member.patient_id is None or member.service_request_id is None:
        raise NotFound("Questionnaires are recorded for referred members only")
    if questionnaire_id not in INSTRUMENTS:
        raise NotFound("No such questionnaire")
    return member


def _answer(form: FormData, item: FormItem) -> str:
    value = form.get(ITEM_FIELD.format(item.link_id))
    return value if isinstance(value, str) else ""


def _based_on(ctx: Context, member: Member) -> str:
    """The ServiceRequest the time bank holds for this referral: the filler order its Task
    focuses on, as a time bank system names it (the practice's original may not be readable by
    the time bank; intake follows the filler order to it, and the scores hang off the original).
    """
    assert member.referral_task_id is not None  # a referred member (_referred_member)
    task = resources.load_json(ctx, "Task", member.referral_task_id)
    focus = task_summary(task).focus if task is not None else None
    if focus is not None and focus.startswith("ServiceRequest/"):
        return focus
    return f"ServiceRequest/{member.service_request_id}"


def _refusal(
    exc: ServiceError | FhirError,
    response: dict[str, Any],
    items: list[FormItem],
) -> tuple[dict[str, str], str | None]:
    """Intake's issues by item (which item, and whether it was left out or answered out of
    range), in words for the person filling in the form; an issue about no one item is shown
    above the form in intake's own words."""
    labels = {item.link_id: item for item in items}
    issues = (
        [(e, i.code, i.diagnostics) for i in exc.issues for e in i.expression or ("",)]
        if isinstance(exc, FhirError)
        else [(e, exc.issue_code, exc.message) for e in exc.expression or ("",)]
    )
    errors: dict[str, str] = {}
    general: list[str] = []
    for expression, code, message in issues:
        link_id = item_of(expression, response) if expression else None
        if link_id in labels:
            errors[ITEM_FIELD.format(link_id)] = _item_message(labels[link_id], code)
        elif sentence(message) not in general:
            general.append(sentence(message))
    ordered = {
        ITEM_FIELD.format(i.link_id): errors[ITEM_FIELD.format(i.link_id)]
        for i in items
        if ITEM_FIELD.format(i.link_id) in errors
    }
    return ordered, " ".join(general) or None


def _item_message(item: FormItem, code: str) -> str:
    if code == "required":
        return f"Choose an answer for {item.label}"
    return f"Choose one answer for {item.label}, from {item.min_value} to {item.max_value}"


def _page(
    request: Request,
    viewer: Broker,
    member: Member,
    questionnaire_id: str,
    answers: dict[str, str],
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    record_shown(
        viewer.context, refs(MEMBER_TYPE, [member.id]), kind=Kind.READ, detail="ledger member"
    )
    instrument = INSTRUMENTS[questionnaire_id]
    page = {
        "member": member,
        "title": instrument.title,
        "copyright": instrument.copyright,
        "action": questionnaire_path(member.id, questionnaire_id),
        "items": form_items(questionnaire_id),
        "answers": answers,
        "item_field": ITEM_FIELD,
        "errors": errors or {},
        "form_error": form_error,
    }
    return render(request, "ledger/questionnaire.html", page, status)
