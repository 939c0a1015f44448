"""The time bank broker's referral pages (issue 9): the inbox of routed referrals with their
answer deadlines, one referral (the person as the time bank may see them, the GP's reason and
needs, its history), the broker's moves on it and enrolling the person as a member.

Thin: read the form, call web/broker_views.py (reads) or web/broker_moves.py (writes), which
call the same services as /fhir with the broker's Context; render, or 303 after a form.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from fhir_adapters.codes import DECLINE_REASONS
from referral_service.errors import NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.web import broker_moves as moves
from referral_service.web import broker_views as views
from referral_service.web.broker_moves import MOVES, MoveForm, Refused
from referral_service.web.render import render, see_other
from referral_service.web.security import Broker, FormText, Viewer

router = APIRouter()


INBOX = "/broker"
# The inbox's filters: `?show=` value (None: the default, open referrals) and label.
FILTERS: tuple[tuple[str | None, str], ...] = (
    (None, "Waiting and active"),
    ("waiting", "Waiting for your answer"),
    ("active", "Active"),
    ("closed", "Closed"),
    ("all", "All"),
)
# The largest page whose offset the search still takes.
LAST_PAGE = MAX_SQL_INT // views.PAGE_SIZE
FIELDS = ("reason_code", "note", "hold_reason", "fail_reason", "alias")


def referral_path(task_id: str) -> str:
    return f"/broker/referrals/{task_id}"


@router.get(INBOX)
def inbox_page(request: Request, viewer: Broker, show: str = "", page: str = "1") -> Response:
    found = views.inbox(viewer.context, show or None, _page_number(page), utcnow())
    return render(
        request,
        "broker/referrals.html",
        {
            "inbox": found,
            "filters": [
                {"label": label, "href": _inbox_href(value), "current": value == found.show}
                for value, label in FILTERS
            ],
            "previous_href": _inbox_href(found.show, found.page - 1) if found.page > 1 else None,
            "next_href": _inbox_href(found.show, found.page + 1) if found.has_next else None,
        },
    )


@router.get("/broker/referrals/{task_id}")
def referral_page(request: Request, viewer: Broker, task_id: str) -> Response:
    return _referral(request, viewer, task_id)


@router.post("/broker/referrals/{task_id}/enrol")
def enrol(request: Request, viewer: Broker, task_id: str, alias: FormText = "") -> Response:
    refused = moves.enrol(viewer.context, task_id, alias)
    if refused is not None:
        return _referral(request, viewer, task_id, refused, {"alias": alias})
    return see_other(referral_path(task_id), notice="member-enrolled")


@router.post("/broker/referrals/{task_id}/{action}")
def move(
    request: Request,
    viewer: Broker,
    task_id: str,
    action: str,
    version: FormText = "",
    reason_code: FormText = "",
    note: FormText = "",
    hold_reason: FormText = "",
    fail_reason: FormText = "",
) -> Response:
    if action not in MOVES:
        raise NotFound("Not found")
    form = MoveForm(version, reason_code, note, hold_reason, fail_reason)
    refused = moves.move(viewer.context, task_id, action, form)
    if refused is not None:
        entered = {"reason_code": reason_code, "note": note}
        entered |= {"hold_reason": hold_reason, "fail_reason": fail_reason}
        return _referral(request, viewer, task_id, refused, entered)
    # A declined referral leaves the time bank's list: back to the list, not to it.
    after = INBOX if action == "decline" else referral_path(task_id)
    return see_other(after, notice=MOVES[action].notice)


def _referral(
    request: Request,
    viewer: Viewer,
    task_id: str,
    refused: Refused | None = None,
    entered: Mapping[str, str] | None = None,
) -> Response:
    """The referral page, as it is now; after a refused form, with the refusal and what was
    typed (except after a conflict: the page then shows the referral afresh)."""
    shown = views.referral(viewer.context, task_id, utcnow())
    values = dict.fromkeys(FIELDS, "")
    if refused is not None and refused.status != 412:
        values |= entered or {}
    errors = {refused.field: refused.message} if refused and refused.field else {}
    return render(
        request,
        "broker/referral.html",
        {
            "referral": shown,
            "decline_reasons": list(DECLINE_REASONS.items()),
            "values": values,
            "errors": errors,
            "form_error": refused.message if refused and not refused.field else None,
        },
        status=refused.status if refused else 200,
    )


def _page_number(page: str) -> int:
    """`?page=` as a page number; anything else is the first page."""
    number = int(page) if page.isascii() and page.isdigit() and len(page) < 12 else 1
    return number if 1 <= number <= LAST_PAGE else 1


def _inbox_href(show: str | None, page: int = 1) -> str:
    query = {k: v for k, v in (("show", show), ("page", str(page))) if v and v != "1"}
    return f"{INBOX}?{urlencode(query)}" if query else INBOX
