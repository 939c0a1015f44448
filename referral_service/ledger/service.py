"""The time credit ledger (DESIGN §5): members, enrolment of referred people, offers and requests,
exchanges and what they add up to. Takes a Context whose principal is the time bank; never commits.

Balances are never stored or edited: every figure is a sum over the double-entry rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Generic, TypeVar

from fhir_adapters.ledger import Direction
from referral_service.audit import service as audit
from referral_service.audit.models import Action, Kind, Outcome
from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.ledger import feedback, repository, rules
from referral_service.ledger.models import Exchange, LedgerEntry, Member, Offer, Request
from referral_service.ledger.repository import Listing, ListingT
from referral_service.store import unreadable

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


def add_member(ctx: Context, alias: str) -> Member:
    member = Member(
        id=new_id(), org_id=_tenant(ctx), alias=rules.text(alias, "alias", rules.MAX_ALIAS)
    )
    repository.add(ctx.session, member)
    _audit_created(ctx, [ref(member)], "ledger member")
    return member


def enrol(ctx: Context, child_task_id: str, alias: str) -> Member:
    """A referred person joins: a member linked to the child Task, and the enrolment Observation
    the GP and the broker can both read."""
    alias = rules.text(alias, "alias", rules.MAX_ALIAS)
    if not rules.is_id(child_task_id):
        raise NotFound("child_task_id is not the id of a Task", expression=["child_task_id"])
    referral = feedback.referral_of_task(ctx, child_task_id)
    if repository.member_for_task(ctx.session, _tenant(ctx), child_task_id) is not None:
        raise BusinessRuleViolation(
            f"The person referred in Task/{child_task_id} is already a member",
            expression=["child_task_id"],
        )
    now = utcnow()
    member = Member(
        id=new_id(),
        org_id=_tenant(ctx),
        alias=alias,
        joined_at=now,
        enrolled_at=now,
        referral_task_id=child_task_id,
        practice_org_id=referral.practice_org_id,
        patient_id=referral.patient_id,
        service_request_id=referral.service_request_id,
    )
    member.enrolment_observation_id = feedback.record_enrolment(ctx, referral, now)
    repository.add(ctx.session, member)
    # The practice's patient: the practice finds this in its patient's audit trail.
    _audit_created(
        ctx,
        [f"Observation/{member.enrolment_observation_id}", f"Task/{child_task_id}", ref(member)],
        "ledger enrolment",
        tenant=referral.practice_org_id,
        patient_id=referral.patient_id,
    )
    return member


def get_member(ctx: Context, member_id: str, field: str = "member") -> Member:
    found = rules.is_id(member_id)
    member = repository.get_member(ctx.session, _tenant(ctx), member_id) if found else None
    if member is None:
        name = f"Member {member_id}" if found else "That member id"
        raise NotFound(f"{name} is not a member of this time bank", expression=[field])
    return member


def members(ctx: Context) -> Listed[tuple[Member, int]]:
    """Every member with their balance in minutes; a member whose alias does not open is left
    out (logged and audited), not the whole list."""
    found = repository.members_with_balances(ctx.session, _tenant(ctx))
    _, bad = unreadable.split(ctx.session, [member for member, _ in found])
    left_out = _audit_left_out(ctx, bad)
    return Listed([(m, balance) for m, balance in found if m not in bad], left_out)


def add_listing(
    ctx: Context, kind: type[Listing], member_id: str, category: str, description: str
) -> Listing:
    """An offer or a request: what a member can give, or would like to receive."""
    member = get_member(ctx, member_id)
    listing = kind(
        id=new_id(),
        org_id=_tenant(ctx),
        member_id=member.id,
        category=rules.category(category),
        description=rules.text(description, "description", rules.MAX_DESCRIPTION),
    )
    repository.add(ctx.session, listing)
    _audit_created(ctx, [ref(listing), ref(member)], f"ledger {kind.__name__.lower()}")
    return listing


def listings(ctx: Context, kind: type[ListingT], category: str | None) -> Listed[ListingT]:
    """A listing whose description does not open is left out (logged and audited)."""
    if category is not None:
        rules.category(category)
    found = repository.listings(ctx.session, kind, _tenant(ctx), category)
    good, bad = unreadable.split(ctx.session, found)
    return Listed(good, _audit_left_out(ctx, bad))


@dataclass(frozen=True, slots=True)
class NewExchange:
    giver_id: str
    receiver_id: str
    minutes: int
    performed_on: date
    category: str


@dataclass(frozen=True, slots=True)
class RecordedExchange:
    exchange: Exchange
    entries: list[LedgerEntry]


def record_exchange(ctx: Context, new: NewExchange) -> RecordedExchange:
    """The exchange, its two ledger entries, and for each referred party the Procedure and hours
    Observation the GP will see."""
    _check(new)
    giver = get_member(ctx, new.giver_id, "giver_id")
    receiver = get_member(ctx, new.receiver_id, "receiver_id")
    exchange = Exchange(
        id=new_id(),
        org_id=_tenant(ctx),
        giver_id=giver.id,
        receiver_id=receiver.id,
        minutes=new.minutes,
        performed_on=new.performed_on,
        category=new.category,
    )
    repository.add(ctx.session, exchange)
    entries = [
        _entry(ctx, exchange, giver, Direction.GIVEN),
        _entry(ctx, exchange, receiver, Direction.RECEIVED),
    ]
    repository.add(ctx.session, *entries)
    _audit_created(ctx, [ref(exchange), ref(giver), ref(receiver)], "ledger exchange")
    return RecordedExchange(exchange, entries)


def _check(new: NewExchange) -> None:
    rules.minutes(new.minutes)
    rules.parties(new.giver_id, new.receiver_id)
    rules.performed_on(new.performed_on, utcnow())
    rules.category(new.category)


def _entry(ctx: Context, exchange: Exchange, member: Member, direction: Direction) -> LedgerEntry:
    """Credit the giver, debit the receiver: the two entries of an exchange sum to zero."""
    sign = 1 if direction is Direction.GIVEN else -1
    entry = LedgerEntry(
        id=new_id(),
        org_id=exchange.org_id,
        exchange_id=exchange.id,
        member_id=member.id,
        minutes=sign * exchange.minutes,
    )
    referral = feedback.referral_of_member(member)
    if referral is not None:
        produced = feedback.record_exchange(
            ctx,
            referral,
            activity=exchange.category,
            minutes=exchange.minutes,
            performed_on=exchange.performed_on,
            direction=direction,
        )
        entry.procedure_id, entry.observation_id = produced.procedure_id, produced.observation_id
        _audit_created(
            ctx,
            [
                f"Procedure/{produced.procedure_id}",
                f"Observation/{produced.observation_id}",
                ref(exchange),
            ],
            f"ledger exchange: {direction.value}",
            tenant=referral.practice_org_id,
            patient_id=referral.patient_id,
        )
    return entry


def exchanges(
    ctx: Context, member_id: str | None, *, limit: int, offset: int
) -> list[RecordedExchange]:
    tenant = _tenant(ctx)
    if member_id is not None:
        get_member(ctx, member_id)
    found = repository.exchanges(ctx.session, tenant, member_id, limit=limit, offset=offset)
    rows = repository.entries(ctx.session, tenant, [e.id for e in found])
    rows.sort(key=lambda row: -row.minutes)  # the giver's entry first, as when recorded
    return [RecordedExchange(e, [r for r in rows if r.exchange_id == e.id]) for e in found]


@dataclass(frozen=True, slots=True)
class Statement:
    """A member's account, derived from the ledger; indicators only for referred members."""

    member: Member
    given: int
    received: int
    partners: int
    reciprocity: float | None
    first_gift_days: int | None

    @property
    def balance(self) -> int:
        return self.given - self.received


def statement(ctx: Context, member_id: str) -> Statement:
    member = get_member(ctx, member_id)
    tenant = _tenant(ctx)
    totals = repository.totals(ctx.session, tenant, member.id)
    partners = repository.partner_count(ctx.session, tenant, member.id)
    reciprocity, first_gift = None, None
    if member.enrolled_at is not None:
        reciprocity = rules.reciprocity(totals.given, totals.received)
        first = repository.first_gift_on(ctx.session, tenant, member.id)
        first_gift = rules.first_gift_days(member.enrolled_at, first)
    return Statement(member, totals.given, totals.received, partners, reciprocity, first_gift)


def _audit_created(
    ctx: Context,
    entities: list[str],
    detail: str,
    *,
    tenant: str | None = None,
    patient_id: str | None = None,
) -> None:
    """A ledger write; it joins the audit chain when the request commits. `tenant` is whose data
    it is: the time bank's own, or for a referred person the referring practice's."""
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.CREATE,
        action=Action.CREATE,
        entities=entities,
        tenant=tenant or _tenant(ctx),
        patient_id=patient_id,
        detail=detail,
    )


def _audit_left_out(ctx: Context, rows: Sequence[Member | Listing]) -> list[str]:
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
            tenant=_tenant(ctx),
            outcome=Outcome.SERIOUS_FAILURE,
            detail=audit.UNREADABLE_DETAIL,
        )
    return refs


def _tenant(ctx: Context) -> str:
    """The time bank whose ledger this is: always the caller's own organisation."""
    return ctx.principal.org_id
