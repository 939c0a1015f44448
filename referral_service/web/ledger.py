"""The broker's ledger pages: the members list (and adding a member), a member's time statement
(and ending a membership), and the two CSV downloads. The exchanges page is web/exchanges.py, the
wellbeing questionnaires web/questionnaires.py.

Thin, like every page: read the form, call `ledger.service` with the viewer's context, render or
redirect. Every rule, the tenancy and the audit of writes and exports live in the ledger; a page
records only what it showed (person-level data). A write runs in a savepoint, so a refusal
changes nothing while the page, with the message next to its field, still commits the audit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.errors import NotFound, ServiceError
from referral_service.kit.clock import utcnow
from referral_service.ledger import export, service
from referral_service.web import questionnaires, scores
from referral_service.web.ledger_display import (
    EXCHANGE_TYPE,
    FORMATS,
    MEMBER_TYPE,
    is_about_a_field,
    left_out_notice,
    record_shown,
    refs,
    refusal,
)
from referral_service.web.render import render, see_other
from referral_service.web.security import Broker, FormText

router = APIRouter(prefix="/broker")

MEMBERS_PATH = "/broker/members"
# Excel reads a CSV file as UTF-8 only when it starts with a byte order mark; without one, names
# such as "Zoë" or "Łukasz" come out garbled. Only the pages add it: the JSON API's downloads are
# for machines, whose CSV readers would take the mark for part of the first column's name.
EXCEL_BOM = "\ufeff"


def member_path(member_id: str) -> str:
    return f"{MEMBERS_PATH}/{member_id}"


# --- the members list ----------------------------------------------------------------------


@router.get("/members")
def members_page(request: Request, viewer: Broker) -> Response:
    return _members_page(request, viewer)


@router.post("/members")
def add_member(request: Request, viewer: Broker, alias: FormText = "") -> Response:
    """A person who joined on their own (referred people are enrolled from their referral)."""
    ctx = viewer.context
    if not alias.strip():
        errors = {"alias": "Enter the name to use in the ledger"}
        return _members_page(request, viewer, alias=alias, errors=errors, status=422)
    fields = {"alias": "alias"}
    try:
        with ctx.session.begin_nested():
            service.add_member(ctx, alias)
    except ServiceError as exc:
        if not is_about_a_field(exc, fields):
            raise
        audit.record_refusal(
            ctx,
            Kind.CREATE,
            status=exc.status,
            issue_code=exc.issue_code,
            entities=[],
            tenant=ctx.principal.org_id,
        )
        refused = refusal(exc, fields)
        return _members_page(
            request, viewer, alias=alias, errors=refused.errors, status=refused.status
        )
    return see_other(MEMBERS_PATH, notice="member-added")


def _members_page(
    request: Request,
    viewer: Broker,
    *,
    alias: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    ctx = viewer.context
    listed = service.member_rows(ctx)
    shown = refs(MEMBER_TYPE, (row.member.id for row in listed.items))
    record_shown(ctx, shown, kind=Kind.SEARCH, detail="ledger members list")
    page = {
        "rows": listed.items,
        "alias": alias,
        "errors": errors or {},
        "notices": left_out_notice(len(listed.left_out)),
        "fmt": FORMATS,
    }
    return render(request, "ledger/members.html", page, status)


# --- a member's time statement -------------------------------------------------------------


@router.get("/members/{member_id}")
def statement_page(request: Request, viewer: Broker, member_id: str) -> Response:
    return _statement_page(request, viewer, member_id)


@router.post("/members/{member_id}/end")
def end_membership(
    request: Request, viewer: Broker, member_id: str, reason: FormText = ""
) -> Response:
    """The member leaves: marked ended everywhere, history and balance kept."""
    ctx = viewer.context
    fields = {"reason": "reason"}
    try:
        with ctx.session.begin_nested():
            member = service.end_membership(ctx, member_id, reason)
    except ServiceError as exc:
        if isinstance(exc, NotFound) and not is_about_a_field(exc, fields):
            raise  # another time bank's member, or none: the 404 page
        audit.record_refusal(
            ctx,
            Kind.UPDATE,
            status=exc.status,
            issue_code=exc.issue_code,
            entities=[],
            tenant=ctx.principal.org_id,
        )
        refused = refusal(exc, fields)
        return _statement_page(
            request,
            viewer,
            member_id,
            reason=reason,
            errors=refused.errors,
            form_error=refused.form_error,
            status=refused.status,
        )
    return see_other(member_path(member.id), notice="membership-ended")


def _statement_page(
    request: Request,
    viewer: Broker,
    member_id: str,
    *,
    reason: str = "",
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    ctx = viewer.context
    found = service.statement(ctx, member_id)
    member = found.member
    shown = [
        *refs(MEMBER_TYPE, [member.id, *(line.partner_id for line in found.lines)]),
        *refs(EXCHANGE_TYPE, (line.exchange.id for line in found.lines)),
    ]
    record_shown(ctx, shown, kind=Kind.READ, detail="ledger statement")
    wellbeing = scores.wellbeing_of(ctx, member) if member.referred else None
    page: dict[str, Any] = {
        "statement": found,
        "member": member,
        "wellbeing": wellbeing,
        "questionnaires": questionnaires.choices() if member.referred else [],
        "printed_on": utcnow().date(),
        "reason": reason,
        "errors": errors or {},
        "form_error": form_error,
        "notices": left_out_notice(len(found.left_out)),
        "fmt": FORMATS,
    }
    return render(request, "ledger/statement.html", page, status)


# --- the downloads -------------------------------------------------------------------------


@router.get("/members.csv")
def download_members(viewer: Broker) -> Response:
    """The members list as CSV; `export_members` audits the export."""
    listed = service.export_members(viewer.context)
    return _csv("members", "".join(export.members_csv(listed.items)))


@router.get("/exchanges.csv")
def download_exchanges(viewer: Broker) -> Response:
    """Every exchange as CSV, in ledger order; `exchange_rows` audits the export."""
    rows = service.exchange_rows(viewer.context)
    return _csv("exchanges", "".join(export.exchanges_csv(rows)))


def _csv(what: str, body: str) -> Response:
    # Built whole while the request's session is open (the exchanges are read in batches as the
    # CSV is written), as the JSON API's downloads are.
    name = export.filename(what, utcnow().date())
    return Response(
        EXCEL_BOM + body,
        media_type=export.MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
