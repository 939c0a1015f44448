"""The ledger's JSON API under /api/timebanks/{timebank_id}: thin — parse, call the service, respond.

Only the time bank's own system may use its ledger: another time bank gets 404 (its ledger does
not exist as far as the caller can tell), any other kind of organisation 403.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi import Request as HttpRequest
from sqlalchemy.orm import Session

from referral_service.auth.dependencies import current_principal
from referral_service.context import Context
from referral_service.db import get_session
from referral_service.errors import Forbidden, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.http import refuse_nul_in_url
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.kit.routes import UniqueKeysRoute
from referral_service.ledger import export, service
from referral_service.ledger.models import Offer, Request
from referral_service.ledger.schemas import (
    EnrolmentIn,
    EnrolmentOut,
    ErrorOutcome,
    ExchangeIn,
    ExchangeOut,
    ListingIn,
    ListingOut,
    MemberIn,
    MemberOut,
    MembershipEndIn,
    MemberStatement,
    MemberSummary,
    ReversalIn,
)
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal

Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOutcome, "description": description}


ERRORS: Responses = {
    401: _error("No valid bearer token"),
    403: _error("The caller is not a time bank"),
    404: _error("Not this caller's time bank, or an unknown member"),
}
INVALID: Responses = {422: _error("A rule was broken; the issue names the field")}
CONFLICT: Responses = {
    409: _error("The child Task cannot be enrolled (owner, status, or already done)")
}
ENDED: Responses = {409: _error("A member named has ended their membership")}
REVERSED: Responses = {
    404: _error("Not this caller's time bank, or an unknown exchange"),
    409: _error("The exchange is already reversed, or is itself a reversal"),
}
ENDED_ALREADY: Responses = {409: _error("The membership has already ended")}
CSV: Responses = {
    200: {
        "description": "CSV (a header line, then one line per row), as an attachment",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}

router = APIRouter(
    prefix="/api/timebanks/{timebank_id}",
    tags=["Time credit ledger"],
    responses=ERRORS,
    route_class=UniqueKeysRoute,
    dependencies=[Depends(refuse_nul_in_url)],
)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
TimeBankId = Annotated[str, Path(description="The time bank's organisation id")]


def ledger_context(
    timebank_id: TimeBankId, request: HttpRequest, session: SessionDep, principal: PrincipalDep
) -> Context:
    if principal.org_kind is not OrgKind.TIMEBANK:
        raise Forbidden("Only a time bank's own system may use its ledger")
    if principal.org_id != timebank_id:
        raise NotFound(f"Time bank {timebank_id} is not known")
    return Context(session, principal, request.app.state.settings)


Ctx = Annotated[Context, Depends(ledger_context)]
Category = Annotated[str | None, Query(description="Only this category")]


@router.post("/members", status_code=201, responses=INVALID)
def add_member(ctx: Ctx, body: MemberIn) -> MemberOut:
    """Add a member who joined on their own (not from a referral)."""
    return MemberOut.of(service.add_member(ctx, body.alias))


# A row whose sealed text does not open is left out of a list rather than failing it; the
# response names such rows (by id only) in this header.
LEFT_OUT_HEADER = "SPIS-Left-Out"
LEFT_OUT: Responses = {
    200: {
        "headers": {
            LEFT_OUT_HEADER: {
                "description": "Rows left out because their stored data failed its integrity "
                "check (`LedgerMember/<id>`, comma-separated); absent when none was",
                "schema": {"type": "string"},
            }
        }
    }
}


def _left_out(response: Response, listed: service.Listed[Any]) -> None:
    if listed.left_out:
        response.headers[LEFT_OUT_HEADER] = ", ".join(listed.left_out)


@router.get("/members", responses=LEFT_OUT)
def list_members(ctx: Ctx, response: Response) -> list[MemberSummary]:
    """Every member, oldest first, ended ones included, with balance, minutes given and
    received, partners and (referred members) reciprocity."""
    listed = service.member_rows(ctx)
    _left_out(response, listed)
    return [MemberSummary.of_row(row) for row in listed.items]


@router.get("/members.csv", response_class=Response, responses=CSV)
def download_members(ctx: Ctx) -> Response:
    """The members list as CSV (audited as an export). Members left out as in `GET /members`."""
    listed = service.export_members(ctx)
    response = _csv("members", "".join(export.members_csv(listed.items)))
    _left_out(response, listed)
    return response


@router.get("/members/{member_id}", responses=LEFT_OUT)
def get_member(ctx: Ctx, member_id: str, response: Response) -> MemberStatement:
    """The member's statement: balance, minutes given and received, partners, co-production
    indicators if referred, and every exchange they took part in."""
    found = service.statement(ctx, member_id)
    _left_out(response, service.Listed(found.lines, found.left_out))
    return MemberStatement.of_statement(found)


@router.post("/members/{member_id}/end", responses={**INVALID, **ENDED_ALREADY})
def end_membership(ctx: Ctx, member_id: str, body: MembershipEndIn) -> MemberOut:
    """End a membership. The member stays in every list, marked ended, with their history and
    balance; no new exchange, offer or request may name them."""
    return MemberOut.of(service.end_membership(ctx, member_id, body.reason))


@router.post("/enrolments", status_code=201, responses={**INVALID, **CONFLICT})
def enrol(ctx: Ctx, body: EnrolmentIn) -> EnrolmentOut:
    """Enrol the person referred in a child Task; writes a ProgramEnrollmentStatus Observation
    (`enrolled`) that the referring practice can read."""
    member = service.enrol(ctx, body.child_task_id, body.alias)
    return EnrolmentOut(
        member=MemberOut.of(member), observation=f"Observation/{member.enrolment_observation_id}"
    )


@router.post("/members/{member_id}/offers", status_code=201, responses={**INVALID, **ENDED})
def add_offer(ctx: Ctx, member_id: str, body: ListingIn) -> ListingOut:
    listing = service.add_listing(ctx, Offer, member_id, body.category, body.description)
    return ListingOut.of(listing)


@router.post("/members/{member_id}/requests", status_code=201, responses={**INVALID, **ENDED})
def add_request(ctx: Ctx, member_id: str, body: ListingIn) -> ListingOut:
    listing = service.add_listing(ctx, Request, member_id, body.category, body.description)
    return ListingOut.of(listing)


@router.get("/offers", responses={**INVALID, **LEFT_OUT})
def list_offers(ctx: Ctx, response: Response, category: Category = None) -> list[ListingOut]:
    listed = service.listings(ctx, Offer, category)
    _left_out(response, listed)
    return [ListingOut.of(listing) for listing in listed.items]


@router.get("/requests", responses={**INVALID, **LEFT_OUT})
def list_requests(ctx: Ctx, response: Response, category: Category = None) -> list[ListingOut]:
    listed = service.listings(ctx, Request, category)
    _left_out(response, listed)
    return [ListingOut.of(listing) for listing in listed.items]


@router.post("/exchanges", status_code=201, responses={**INVALID, **ENDED})
def record_exchange(ctx: Ctx, body: ExchangeIn) -> ExchangeOut:
    """Record time given by one member to another: a credit to the giver, a debit to the
    receiver; for a referred party also a Procedure and an hours Observation for the GP."""
    return ExchangeOut.of(service.record_exchange(ctx, body.as_new()))


@router.post(
    "/exchanges/{exchange_id}/reversal", status_code=201, responses={**INVALID, **REVERSED}
)
def reverse_exchange(ctx: Ctx, exchange_id: str, body: ReversalIn) -> ExchangeOut:
    """Correct a mistaken exchange: a new exchange with the opposite entries and the reason.
    The original stays, marked `reversed_by`; for a referred party its Procedure and hours
    Observation become entered-in-error."""
    return ExchangeOut.of(service.reverse_exchange(ctx, exchange_id, body.reason))


@router.get("/exchanges", responses=LEFT_OUT)
def list_exchanges(
    ctx: Ctx,
    response: Response,
    member_id: Annotated[str | None, Query(description="Only this member's exchanges")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> list[ExchangeOut]:
    """Newest first; reversals are listed too, and what they undid is marked `reversed_by`."""
    listed = service.exchanges(ctx, member_id, limit=limit, offset=offset)
    _left_out(response, listed)
    return [ExchangeOut.of(recorded) for recorded in listed.items]


@router.get("/exchanges.csv", response_class=Response, responses=CSV)
def download_exchanges(ctx: Ctx) -> Response:
    """The whole ledger as CSV, by date then when recorded (audited as an export)."""
    rows = service.exchange_rows(ctx)
    return _csv("exchanges", "".join(export.exchanges_csv(rows)))


def _csv(what: str, body: str) -> Response:
    # Built whole while the request's session is open (the rows are read in batches as the CSV
    # is written); a streamed body would outlive the unit of work.
    name = export.filename(what, utcnow().date())
    return Response(
        body,
        media_type=export.MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
