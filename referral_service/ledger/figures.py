"""What the ledger adds up to: the members list with every member's figures, a member's
statement, and the whole ledger for a download. Every figure is a sum over the entries, computed
in the database; nothing is stored."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from referral_service.context import Context
from referral_service.ledger import common, repository, rules
from referral_service.ledger.common import Listed
from referral_service.ledger.members import get_member
from referral_service.ledger.models import Exchange, Member
from referral_service.ledger.repository import Totals
from referral_service.store import unreadable


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A member with their figures, as the members list and its CSV show them (minutes)."""

    member: Member
    balance: int
    given: int
    received: int
    partners: int  # distinct members exchanged with (network reach)
    reciprocity: float | None  # given ÷ received, referred members only; None until computable

    @property
    def ended(self) -> bool:
        return self.member.ended

    @property
    def referred(self) -> bool:
        return self.member.referred


def member_rows(ctx: Context) -> Listed[MemberRow]:
    """Every member (oldest first, ended ones included) with their figures, in two grouped
    queries whatever the number of members. A member whose alias does not open is left out
    (logged and audited), not the whole list."""
    tenant = common.tenant(ctx)
    found = repository.members_with_totals(ctx.session, tenant)
    _, bad = unreadable.split(ctx.session, [member for member, _ in found])
    partners = repository.partner_counts(ctx.session, tenant)
    left_out = {member.id for member in bad}
    rows = [
        _member_row(member, totals, partners.get(member.id, 0))
        for member, totals in found
        if member.id not in left_out
    ]
    return Listed(rows, common.audit_left_out(ctx, bad))


def _member_row(member: Member, totals: Totals, partners: int) -> MemberRow:
    reciprocity = rules.reciprocity(totals.given, totals.received) if member.referred else None
    return MemberRow(member, totals.balance, totals.given, totals.received, partners, reciprocity)


def members(ctx: Context) -> Listed[tuple[Member, int]]:
    """Every member with their balance in minutes (`member_rows` has every figure)."""
    listed = member_rows(ctx)
    return Listed([(row.member, row.balance) for row in listed.items], listed.left_out)


def export_members(ctx: Context) -> Listed[MemberRow]:
    """`member_rows` for a download (`export.members_csv`): the same rows, audited as an export."""
    listed = member_rows(ctx)
    common.audit_export(ctx, "members", len(listed.items))
    return listed


@dataclass(frozen=True, slots=True)
class ExchangeRow:
    """One exchange of the whole-ledger export, with both parties' aliases (None when an alias
    does not open: the id still says who)."""

    exchange: Exchange
    giver_alias: str | None
    receiver_alias: str | None
    reversed_by: str | None

    @property
    def minutes(self) -> int:
        """Signed: a reversal counts against the time it undoes, so a column of these sums to
        the time actually exchanged."""
        return -self.exchange.minutes if self.exchange.is_reversal else self.exchange.minutes


EXPORT_BATCH = 500


def exchange_rows(ctx: Context, *, batch_size: int = EXPORT_BATCH) -> Iterator[ExchangeRow]:
    """Every exchange of the time bank in ledger order (day, then when recorded), for a download
    (`export.exchanges_csv`); audited as an export when called. Read in batches as the iterator
    is consumed (keep the session open until it is). An exchange whose sealed text does not
    open is left out (logged and audited)."""
    tenant = common.tenant(ctx)
    aliases = _aliases(ctx, repository.all_members(ctx.session, tenant))
    common.audit_export(ctx, "exchanges", None)
    return _exchange_batches(ctx, aliases, batch_size)


def _exchange_batches(
    ctx: Context, aliases: dict[str, str | None], batch_size: int
) -> Iterator[ExchangeRow]:
    after: repository.After | None = None
    while batch := repository.exchange_batch(ctx.session, common.tenant(ctx), after, batch_size):
        _, bad = unreadable.split(ctx.session, [exchange for exchange, _ in batch])
        common.audit_left_out(ctx, bad)
        left_out = {exchange.id for exchange in bad}
        for exchange, reversed_by in batch:
            if exchange.id not in left_out:
                giver, receiver = aliases.get(exchange.giver_id), aliases.get(exchange.receiver_id)
                yield ExchangeRow(exchange, giver, receiver, reversed_by)
        last = batch[-1][0]
        after = (last.performed_on, last.created_at, last.id)


def _aliases(ctx: Context, found: list[Member]) -> dict[str, str | None]:
    """Member id → alias; None for an alias that does not open (the row is not left out: the
    member is named by id)."""
    _, bad = unreadable.split(ctx.session, found)
    unopened = {member.id for member in bad}
    return {m.id: None if m.id in unopened else m.alias for m in found}


@dataclass(frozen=True, slots=True)
class StatementLine:
    """One exchange on a member's statement, from the member's side."""

    exchange: Exchange
    minutes: int  # the member's entry: + credited (time given), − debited (time received)
    balance: int  # the member's balance after this line
    partner_id: str
    partner_alias: str | None  # None when the alias does not open
    reversed_by: str | None


@dataclass(frozen=True, slots=True)
class Statement:
    """A member's account, derived from the ledger; indicators only for referred members. The
    lines are every exchange the member took part in, in ledger order, reversals included; one
    whose sealed text does not open is left out (its `Type/id` in `left_out`), but still counts
    in the running balance of the lines after it, so the last line always shows the balance."""

    member: Member
    given: int
    received: int
    partners: int
    reciprocity: float | None
    first_gift_days: int | None
    lines: list[StatementLine]
    left_out: list[str]

    @property
    def balance(self) -> int:
        return self.given - self.received


def statement(ctx: Context, member_id: str) -> Statement:
    member = get_member(ctx, member_id)
    tenant = common.tenant(ctx)
    totals = repository.totals(ctx.session, tenant, member.id)
    partners = repository.partner_counts(ctx.session, tenant, member.id).get(member.id, 0)
    reciprocity, first_gift = None, None
    if member.enrolled_at is not None:
        reciprocity = rules.reciprocity(totals.given, totals.received)
        first = repository.first_gift_on(ctx.session, tenant, member.id)
        first_gift = rules.first_gift_days(member.enrolled_at, first)
    lines, left_out = _lines(ctx, member)
    return Statement(
        member,
        totals.given,
        totals.received,
        partners,
        reciprocity,
        first_gift,
        lines,
        left_out,
    )


def _lines(ctx: Context, member: Member) -> tuple[list[StatementLine], list[str]]:
    tenant = common.tenant(ctx)
    found = repository.member_lines(ctx.session, tenant, member.id)
    _, bad = unreadable.split(ctx.session, [exchange for exchange, _, _ in found])
    left_out = {exchange.id for exchange in bad}

    def partner(exchange: Exchange) -> str:
        return exchange.receiver_id if exchange.giver_id == member.id else exchange.giver_id

    partners = repository.members_by_id(ctx.session, tenant, (partner(e) for e, _, _ in found))
    aliases = _aliases(ctx, partners)
    lines, balance = [], 0
    for exchange, minutes, reversed_by in found:
        balance += minutes
        if exchange.id not in left_out:
            who = partner(exchange)
            lines.append(
                StatementLine(exchange, minutes, balance, who, aliases.get(who), reversed_by)
            )
    return lines, common.audit_left_out(ctx, bad)
