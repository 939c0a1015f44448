"""Exchanges: recording one (two ledger entries, and the GP's Procedure and hours Observation for
a referred party), reversing a mistaken one with a new exchange, and listing them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhir_adapters.ledger import Direction
from referral_service.audit.models import Action
from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.ledger import common, feedback, repository, rules
from referral_service.ledger.common import Listed
from referral_service.ledger.members import active_member, get_member
from referral_service.ledger.models import Exchange, LedgerEntry, Member
from referral_service.store import unreadable


@dataclass(frozen=True, slots=True)
class NewExchange:
    giver_id: str
    receiver_id: str
    minutes: int
    performed_on: date
    category: str
    description: str | None = None  # free text, at most rules.MAX_DESCRIPTION; sealed at rest


@dataclass(frozen=True, slots=True)
class RecordedExchange:
    """An exchange (or a reversal: `exchange.reverses_id`), its two entries, the giver's first,
    and the reversal that undid it, if one did."""

    exchange: Exchange
    entries: list[LedgerEntry]
    reversed_by: str | None = None


def record_exchange(ctx: Context, new: NewExchange) -> RecordedExchange:
    """The exchange, its two ledger entries, and for each referred party the Procedure and hours
    Observation the GP will see. Both members must be current (not ended)."""
    description = _check(new)
    giver = active_member(ctx, new.giver_id, "giver_id")
    receiver = active_member(ctx, new.receiver_id, "receiver_id")
    exchange = Exchange(
        id=new_id(),
        org_id=common.tenant(ctx),
        giver_id=giver.id,
        receiver_id=receiver.id,
        minutes=new.minutes,
        performed_on=new.performed_on,
        category=new.category,
        description=description,
    )
    repository.add(ctx.session, exchange)
    entries = [
        _entry(ctx, exchange, giver, Direction.GIVEN),
        _entry(ctx, exchange, receiver, Direction.RECEIVED),
    ]
    repository.add(ctx.session, *entries)
    common.audit_write(
        ctx, [common.ref(exchange), common.ref(giver), common.ref(receiver)], "ledger exchange"
    )
    return RecordedExchange(exchange, entries)


def _check(new: NewExchange) -> str | None:
    """The rules an exchange must meet; returns its cleaned description."""
    rules.minutes(new.minutes)
    rules.parties(new.giver_id, new.receiver_id)
    rules.performed_on(new.performed_on, utcnow())
    rules.category(new.category)
    return rules.optional_text(new.description, "description", rules.MAX_DESCRIPTION)


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
        common.audit_write(
            ctx,
            [
                f"Procedure/{produced.procedure_id}",
                f"Observation/{produced.observation_id}",
                common.ref(exchange),
            ],
            f"ledger exchange: {direction.value}",
            tenant=referral.practice_org_id,
            patient_id=referral.patient_id,
        )
    return entry


def reverse_exchange(ctx: Context, exchange_id: str, reason: str) -> RecordedExchange:
    """Undo a mistaken exchange with a new one: same parties, minutes, day and category, the
    opposite entries, and the broker's reason; the original stays, marked reversed. The
    Procedure and hours Observation the GP got for it become entered-in-error; the reversal
    makes none. Allowed after a party's membership ended: it corrects the history they keep."""
    reason_text = rules.text(reason, "reason", rules.MAX_DESCRIPTION)
    original = _reversible(ctx, exchange_id)
    parties = {
        member.id: member
        for member in (
            get_member(ctx, original.giver_id, "giver_id"),
            get_member(ctx, original.receiver_id, "receiver_id"),
        )
    }
    reversal = Exchange(
        id=new_id(),
        org_id=original.org_id,
        giver_id=original.giver_id,
        receiver_id=original.receiver_id,
        minutes=original.minutes,
        performed_on=original.performed_on,
        category=original.category,
        reverses_id=original.id,
        reason=reason_text,
    )
    repository.add(ctx.session, reversal)
    entries = [
        _reversing_entry(reversal, original.giver_id, -original.minutes),
        _reversing_entry(reversal, original.receiver_id, original.minutes),
    ]
    repository.add(ctx.session, *entries)
    _withdraw_feedback(ctx, original, reversal, parties)
    common.audit_write(
        ctx,
        [common.ref(reversal), common.ref(original), *(common.ref(m) for m in parties.values())],
        "ledger reversal",
    )
    return RecordedExchange(reversal, entries)


def _reversible(ctx: Context, exchange_id: str) -> Exchange:
    """The exchange to reverse, locked until commit so that two reversals of it are serialised
    (and the unique index on `reverses_id` stops a second one regardless)."""
    found = rules.is_id(exchange_id)
    tenant = common.tenant(ctx)
    original = (
        repository.get_exchange(ctx.session, tenant, exchange_id, for_update=True)
        if found
        else None
    )
    if original is None:
        name = f"Exchange {exchange_id}" if found else "That exchange id"
        raise NotFound(f"{name} is not an exchange of this time bank", expression=["exchange"])
    if original.is_reversal:
        raise BusinessRuleViolation(
            f"Exchange {original.id} is a reversal; a reversal cannot itself be reversed",
            expression=["exchange"],
        )
    if (done := repository.reversal_of(ctx.session, tenant, original.id)) is not None:
        raise BusinessRuleViolation(
            f"Exchange {original.id} is already reversed (by exchange {done})",
            expression=["exchange"],
        )
    return original


def _reversing_entry(reversal: Exchange, member_id: str, minutes: int) -> LedgerEntry:
    return LedgerEntry(
        id=new_id(),
        org_id=reversal.org_id,
        exchange_id=reversal.id,
        member_id=member_id,
        minutes=minutes,
    )


def _withdraw_feedback(
    ctx: Context, original: Exchange, reversal: Exchange, parties: dict[str, Member]
) -> None:
    """For each referred party of the original: its Procedure and hours Observation marked
    entered-in-error, audited as the practice's patient's data (as their creation was)."""
    for entry in repository.entries(ctx.session, common.tenant(ctx), [original.id]):
        referral = feedback.referral_of_member(parties[entry.member_id])
        if referral is None or entry.procedure_id is None or entry.observation_id is None:
            continue
        produced = feedback.Produced(entry.procedure_id, entry.observation_id)
        changed = feedback.mark_entered_in_error(ctx, produced)
        if changed:
            common.audit_write(
                ctx,
                [*changed, common.ref(reversal)],
                "ledger reversal: entered-in-error",
                action=Action.UPDATE,
                tenant=referral.practice_org_id,
                patient_id=referral.patient_id,
            )


def exchanges(
    ctx: Context, member_id: str | None, *, limit: int, offset: int
) -> Listed[RecordedExchange]:
    """Newest first; reversals are listed like any exchange, and what they reversed is marked
    (`reversed_by`). An exchange whose sealed text does not open is left out (logged and
    audited), not the whole list."""
    tenant = common.tenant(ctx)
    if member_id is not None:
        get_member(ctx, member_id)
    found = repository.exchanges(ctx.session, tenant, member_id, limit=limit, offset=offset)
    _, bad = unreadable.split(ctx.session, [exchange for exchange, _ in found])
    left_out = {exchange.id for exchange in bad}
    kept = [(e, reversed_by) for e, reversed_by in found if e.id not in left_out]
    rows = repository.entries(ctx.session, tenant, [e.id for e, _ in kept])
    listed = [
        RecordedExchange(e, _giver_first(e, [r for r in rows if r.exchange_id == e.id]), by)
        for e, by in kept
    ]
    return Listed(listed, common.audit_left_out(ctx, bad))


def _giver_first(exchange: Exchange, entries: list[LedgerEntry]) -> list[LedgerEntry]:
    return sorted(entries, key=lambda entry: entry.member_id != exchange.giver_id)
