"""What every ledger module shares: whose ledger it is, lists that leave out a row whose sealed
text does not open, and how ledger writes, exports and left-out rows are audited."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from referral_service.audit import service as audit
from referral_service.audit.models import Action, Kind, Outcome
from referral_service.context import Context
from referral_service.ledger.models import Exchange, Member, Offer, Request
from referral_service.ledger.repository import Listing

T = TypeVar("T")
# How ledger rows are named in audit events (`Type/id`, like the FHIR resources beside them).
AUDIT_TYPE = {
    Member: "LedgerMember",
    Offer: "LedgerOffer",
    Request: "LedgerRequest",
    Exchange: "LedgerExchange",
}


def ref(row: Member | Listing | Exchange) -> str:
    return f"{AUDIT_TYPE[type(row)]}/{row.id}"


@dataclass(frozen=True, slots=True)
class Listed(Generic[T]):
    """A ledger list, and the rows left out because their sealed text did not open (`Type/id`)."""

    items: list[T]
    left_out: list[str]


def audit_write(
    ctx: Context,
    entities: list[str],
    detail: str,
    *,
    action: Action = Action.CREATE,
    tenant: str | None = None,
    patient_id: str | None = None,
) -> None:
    """A ledger write; it joins the audit chain when the request commits. `tenant` is whose data
    it is: the time bank's own, or for a referred person the referring practice's."""
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.CREATE if action is Action.CREATE else Kind.UPDATE,
        action=action,
        entities=entities,
        tenant=tenant or ctx.principal.org_id,
        patient_id=patient_id,
        detail=detail,
    )


def audit_export(ctx: Context, what: str, rows: int | None) -> None:
    """The time bank took a copy of its ledger out of SPIS (a CSV download)."""
    counted = "" if rows is None else f": {rows} rows"
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.EXPORT,
        action=Action.READ,
        entities=[f"Organization/{tenant(ctx)}"],
        tenant=tenant(ctx),
        detail=f"ledger export: {what}{counted}",
    )


def audit_left_out(ctx: Context, rows: Sequence[Member | Listing | Exchange]) -> list[str]:
    """Rows left out of a list because their sealed text did not open: one serious failure each
    (kept even if the request rolls back); their `Type/id`s."""
    refs = [ref(row) for row in rows]
    for row_ref in refs:
        audit.record(
            ctx.session,
            ctx.principal,
            kind=Kind.SEARCH,
            action=Action.EXECUTE,
            entities=[row_ref],
            tenant=tenant(ctx),
            outcome=Outcome.SERIOUS_FAILURE,
            detail=audit.UNREADABLE_DETAIL,
        )
    return refs


def tenant(ctx: Context) -> str:
    """The time bank whose ledger this is: always the caller's own organisation."""
    return ctx.principal.org_id
