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
from referral_service.kit.http import refuse_nul_in_url
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.kit.routes import UniqueKeysRoute
from referral_service.ledger import service
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
    MemberStatement,
    MemberSummary,
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
    listed = service.members(ctx)
    _left_out(response, listed)
    return [
        MemberSummary(**MemberOut.of(member).model_dump(), balance_minutes=balance)
        for member, balance in listed.items
    ]


@router.get("/members/{member_id}")
def get_member(ctx: Ctx, member_id: str) -> MemberStatement:
    """Balance, minutes given and received, partners; co-production indicators if referred."""
    return MemberStatement.of_statement(service.statement(ctx, member_id))


@router.post("/enrolments", status_code=201, responses={**INVALID, **CONFLICT})
def enrol(ctx: Ctx, body: EnrolmentIn) -> EnrolmentOut:
    """Enrol the person referred in a child Task; writes a ProgramEnrollmentStatus Observation
    (`enrolled`) that the referring practice can read."""
    member = service.enrol(ctx, body.child_task_id, body.alias)
    return EnrolmentOut(
        member=MemberOut.of(member), observation=f"Observation/{member.enrolment_observation_id}"
    )


@router.post("/members/{member_id}/offers", status_code=201, responses=INVALID)
def add_offer(ctx: Ctx, member_id: str, body: ListingIn) -> ListingOut:
    listing = service.add_listing(ctx, Offer, member_id, body.category, body.description)
    return ListingOut.of(listing)


@router.post("/members/{member_id}/requests", status_code=201, responses=INVALID)
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


@router.post("/exchanges", status_code=201, responses=INVALID)
def record_exchange(ctx: Ctx, body: ExchangeIn) -> ExchangeOut:
    """Record time given by one member to another: a credit to the giver, a debit to the
    receiver; for a referred party also a Procedure and an hours Observation for the GP."""
    return ExchangeOut.of(service.record_exchange(ctx, body.as_new()))


@router.get("/exchanges")
def list_exchanges(
    ctx: Ctx,
    member_id: Annotated[str | None, Query(description="Only this member's exchanges")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0,
) -> list[ExchangeOut]:
    """Newest first."""
    found = service.exchanges(ctx, member_id, limit=limit, offset=offset)
    return [ExchangeOut.of(recorded) for recorded in found]
