"""The broker's exchanges page: record an exchange, the exchanges newest first (paged), and a
mistaken one reversed by a new, opposite exchange (never edited: both stay listed).

Thin, like web/ledger.py: what the broker typed is read and the ledger service judges it; its
refusals are shown next to the field they name, with what was typed kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.context import Context
from referral_service.errors import NotFound, ServiceError
from referral_service.kit.clock import utcnow
from referral_service.ledger import service
from referral_service.ledger.service import MemberRow, NewExchange
from referral_service.web.ledger_display import (
    EXCHANGE_TYPE,
    FORMATS,
    MEMBER_TYPE,
    UNNAMED,
    category_choices,
    is_about_a_field,
    left_out_notice,
    record_shown,
    refs,
    refusal,
)
from referral_service.web.render import render, see_other
from referral_service.web.security import Broker, FormText

router = APIRouter(prefix="/broker")

EXCHANGES_PATH = "/broker/exchanges"
PAGE_SIZE = 20
MAX_PAGE = 100_000  # far beyond any ledger; keeps the offset a small number
# The service's issue expressions → the form's fields.
EXCHANGE_FIELDS = {
    "giver_id": "giver_id",
    "receiver_id": "receiver_id",
    "minutes": "minutes",
    "date": "date",
    "performed_on": "date",
    "category": "category",
    "description": "description",
}
_WHOLE = re.compile(r"[+-]?\d{1,9}")


@dataclass(slots=True)
class ExchangeForm:
    """The "Record an exchange" form as typed (kept when the ledger refuses it)."""

    giver_id: str = ""
    receiver_id: str = ""
    minutes: str = ""
    date: str = ""
    category: str = ""
    description: str = ""
    errors: dict[str, str] = field(default_factory=dict)

    def checked(self) -> NewExchange | None:
        """The exchange to record, or None with `errors` set for what is missing or is not a
        number or a date. Everything else (the parties, the range, the day) is the ledger's."""
        required = {
            "giver_id": (self.giver_id, "Choose who gave time"),
            "receiver_id": (self.receiver_id, "Choose who received time"),
            "minutes": (self.minutes, "Enter the minutes, like 90"),
            "date": (self.date, "Enter the date of the exchange"),
            "category": (self.category, "Choose a category"),
        }
        self.errors = {name: message for name, (value, message) in required.items() if not value}
        minutes = self.minutes.strip()
        if "minutes" not in self.errors and not _WHOLE.fullmatch(minutes):
            self.errors["minutes"] = "Enter the minutes as a whole number, like 90"
        performed_on = _date(self.date.strip())
        if "date" not in self.errors and performed_on is None:
            self.errors["date"] = "Enter a real date, like 2026-11-20"
        if self.errors or performed_on is None:
            return None
        return NewExchange(
            giver_id=self.giver_id,
            receiver_id=self.receiver_id,
            minutes=int(minutes),
            performed_on=performed_on,
            category=self.category,
            description=self.description,
        )


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def _page_number(value: str) -> int:
    """`?page=` as typed: anything that is not a page number is the first page."""
    number = int(value) if value.isdecimal() and len(value) <= 6 else 1
    return min(max(number, 1), MAX_PAGE)


def page_path(page: int) -> str:
    return EXCHANGES_PATH if page == 1 else f"{EXCHANGES_PATH}?page={page}"


@router.get("/exchanges")
def exchanges_page(request: Request, viewer: Broker, page: str = "1") -> Response:
    form = ExchangeForm(date=utcnow().date().isoformat())
    return _exchanges_page(request, viewer, _page_number(page), form)


@router.post("/exchanges")
def record_exchange(
    request: Request,
    viewer: Broker,
    giver_id: FormText = "",
    receiver_id: FormText = "",
    minutes: FormText = "",
    date: FormText = "",
    category: FormText = "",
    description: FormText = "",
) -> Response:
    form = ExchangeForm(giver_id, receiver_id, minutes, date, category, description)
    new = form.checked()
    if new is None:
        return _exchanges_page(request, viewer, 1, form, status=422)
    ctx = viewer.context
    try:
        with ctx.session.begin_nested():
            service.record_exchange(ctx, new)
    except ServiceError as exc:
        if isinstance(exc, NotFound) and not is_about_a_field(exc, EXCHANGE_FIELDS):
            raise
        audit.record_refusal(
            ctx,
            Kind.CREATE,
            status=exc.status,
            issue_code=exc.issue_code,
            entities=[],
            tenant=ctx.principal.org_id,
        )
        refused = refusal(exc, EXCHANGE_FIELDS)
        form.errors = refused.errors
        return _exchanges_page(
            request, viewer, 1, form, form_error=refused.form_error, status=refused.status
        )
    return see_other(EXCHANGES_PATH, notice="exchange-recorded")


@router.post("/exchanges/{exchange_id}/reverse")
def reverse_exchange(
    request: Request,
    viewer: Broker,
    exchange_id: str,
    reason: FormText = "",
    page: FormText = "1",
) -> Response:
    """A new exchange undoing the mistaken one; both stay in the ledger and on this page."""
    ctx = viewer.context
    number = _page_number(page)
    field_name = f"reason-{exchange_id}"
    try:
        with ctx.session.begin_nested():
            service.reverse_exchange(ctx, exchange_id, reason)
    except ServiceError as exc:
        if isinstance(exc, NotFound):
            raise  # another time bank's exchange, or none: the 404 page
        audit.record_refusal(
            ctx,
            Kind.CREATE,
            status=exc.status,
            issue_code=exc.issue_code,
            entities=refs(EXCHANGE_TYPE, [exchange_id]),
            tenant=ctx.principal.org_id,
        )
        refused = refusal(exc, {"reason": field_name})
        return _exchanges_page(
            request,
            viewer,
            number,
            ExchangeForm(date=utcnow().date().isoformat()),
            reasons={exchange_id: reason},
            errors=refused.errors,
            form_error=refused.form_error,
            status=refused.status,
        )
    return see_other(page_path(number), notice="exchange-reversed")


def _exchanges_page(
    request: Request,
    viewer: Broker,
    page: int,
    form: ExchangeForm,
    *,
    reasons: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    form_error: str | None = None,
    status: int = 200,
) -> Response:
    ctx = viewer.context
    members = service.member_rows(ctx)
    offset = (page - 1) * PAGE_SIZE
    listed = service.exchanges(ctx, None, limit=PAGE_SIZE + 1, offset=offset)
    shown = listed.items[:PAGE_SIZE]
    _record_shown(ctx, members.items, shown)
    context: dict[str, Any] = {
        "form": form,
        "errors": {**form.errors, **(errors or {})},
        "form_error": form_error,
        "givers": _choices(members.items),
        "categories": category_choices(),
        "exchanges": shown,
        "names": {row.member.id: row.member.alias for row in members.items},
        "unnamed": UNNAMED,
        "reasons": reasons or {},
        "page": page,
        "previous_page": page_path(page - 1) if page > 1 else None,
        "next_page": page_path(page + 1) if len(listed.items) > PAGE_SIZE else None,
        "notices": left_out_notice(len(members.left_out) + len(listed.left_out)),
        "fmt": FORMATS,
    }
    return render(request, "ledger/exchanges.html", context, status)


def _choices(rows: list[MemberRow]) -> list[tuple[str, str]]:
    """Who may take part in a new exchange: current members only, by name. Two members with
    the same name are told apart by the start of their id."""
    current = [row.member for row in rows if not row.ended]
    aliases = [member.alias for member in current]
    return [
        (m.id, m.alias if aliases.count(m.alias) == 1 else f"{m.alias} ({m.id[:8]})")
        for m in sorted(current, key=lambda m: m.alias.casefold())
    ]


def _record_shown(
    ctx: Context, members: list[MemberRow], exchanges: list[service.RecordedExchange]
) -> None:
    """The page names every current member (the form's choices) and the parties of each
    exchange listed."""
    parties = (
        member_id
        for recorded in exchanges
        for member_id in (recorded.exchange.giver_id, recorded.exchange.receiver_id)
    )
    current = (row.member.id for row in members if not row.ended)
    shown = [
        *refs(EXCHANGE_TYPE, (recorded.exchange.id for recorded in exchanges)),
        *refs(MEMBER_TYPE, [*current, *parties]),
    ]
    record_shown(ctx, shown, kind=Kind.SEARCH, detail="ledger exchanges")
