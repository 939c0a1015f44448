"""Every ledger query. The tenant (the time bank's org_id) is a parameter of every function and part
of every WHERE clause: another time bank's rows look exactly like rows that do not exist."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session, aliased

from referral_service.ledger.models import Exchange, LedgerEntry, Member, Offer, Request
from referral_service.store import unreadable

# Sealed names and descriptions open tolerantly (store/unreadable.py): one bad row fails alone.
_TOLERANT = {unreadable.SKIP_UNREADABLE: True}

Listing = Offer | Request
ListingT = TypeVar("ListingT", Offer, Request)


@dataclass(frozen=True, slots=True)
class Totals:
    """A member's minutes given (credits) and received (debits), both as positive numbers."""

    given: int
    received: int


def add(session: Session, *rows: Member | Listing | Exchange | LedgerEntry) -> None:
    session.add_all(rows)
    session.flush()


def get_member(session: Session, org_id: str, member_id: str) -> Member | None:
    """The member, None, or `Unreadable` when the alias does not open."""
    stmt = select(Member).where(Member.org_id == org_id, Member.id == member_id)
    return unreadable.first_readable(session, _all(session, stmt))


def member_for_task(session: Session, org_id: str, task_id: str) -> Member | None:
    stmt = select(Member).where(Member.org_id == org_id, Member.referral_task_id == task_id)
    return unreadable.first_readable(session, _all(session, stmt))


def _all(session: Session, stmt: Select[Member]) -> Sequence[Member]:
    return session.scalars(stmt.execution_options(**_TOLERANT)).all()


def members_with_balances(session: Session, org_id: str) -> list[tuple[Member, int]]:
    """Members whose alias does not open come back marked (`unreadable.split`)."""
    balance = func.coalesce(func.sum(LedgerEntry.minutes), 0)
    stmt = (
        select(Member, balance)
        .outerjoin(
            LedgerEntry, (LedgerEntry.member_id == Member.id) & (LedgerEntry.org_id == org_id)
        )
        .where(Member.org_id == org_id)
        .group_by(Member.id)
        .order_by(Member.joined_at, Member.id)
        .execution_options(**_TOLERANT)
    )
    return [(member, int(minutes)) for member, minutes in session.execute(stmt)]


def listings(
    session: Session, model: type[ListingT], org_id: str, category: str | None
) -> Sequence[ListingT]:
    """Listings whose description does not open come back marked (`unreadable.split`)."""
    stmt = (
        select(model)
        .where(model.org_id == org_id)
        .order_by(model.created_at, model.id)
        .execution_options(**_TOLERANT)
    )
    if category is not None:
        stmt = stmt.where(model.category == category)
    return session.scalars(stmt).all()


def exchanges(
    session: Session, org_id: str, member_id: str | None, *, limit: int, offset: int
) -> list[Exchange]:
    stmt = select(Exchange).where(Exchange.org_id == org_id)
    if member_id is not None:
        stmt = stmt.where((Exchange.giver_id == member_id) | (Exchange.receiver_id == member_id))
    stmt = stmt.order_by(Exchange.performed_on.desc(), Exchange.created_at.desc(), Exchange.id)
    return list(session.scalars(stmt.limit(limit).offset(offset)))


def entries(session: Session, org_id: str, exchange_ids: Sequence[str]) -> list[LedgerEntry]:
    if not exchange_ids:
        return []
    stmt = select(LedgerEntry).where(
        LedgerEntry.org_id == org_id, LedgerEntry.exchange_id.in_(exchange_ids)
    )
    return list(session.scalars(stmt))


def totals(session: Session, org_id: str, member_id: str) -> Totals:
    credit = case((LedgerEntry.minutes > 0, LedgerEntry.minutes), else_=0)
    debit = case((LedgerEntry.minutes < 0, -LedgerEntry.minutes), else_=0)
    stmt = select(func.coalesce(func.sum(credit), 0), func.coalesce(func.sum(debit), 0)).where(
        LedgerEntry.org_id == org_id, LedgerEntry.member_id == member_id
    )
    given, received = session.execute(stmt).one()
    return Totals(int(given), int(received))


def partner_count(session: Session, org_id: str, member_id: str) -> int:
    """Distinct members this one has exchanged time with, in either direction (network reach)."""
    mine, theirs = aliased(LedgerEntry), aliased(LedgerEntry)
    stmt = (
        select(func.count(func.distinct(theirs.member_id)))
        .select_from(mine)
        .join(theirs, (theirs.exchange_id == mine.exchange_id) & (theirs.id != mine.id))
        .where(mine.org_id == org_id, theirs.org_id == org_id, mine.member_id == member_id)
    )
    return int(session.scalar(stmt) or 0)


def first_gift_on(session: Session, org_id: str, member_id: str) -> date | None:
    stmt = select(func.min(Exchange.performed_on)).where(
        Exchange.org_id == org_id, Exchange.giver_id == member_id
    )
    return session.scalar(stmt)


def unbalanced(session: Session, org_id: str) -> list[str]:
    """Exchanges whose entries are not exactly two rows summing to zero: always empty, unless
    something wrote to the ledger behind the service's back. An audit check, not a hot path."""
    stmt = (
        select(Exchange.id)
        .outerjoin(LedgerEntry, LedgerEntry.exchange_id == Exchange.id)
        .where(Exchange.org_id == org_id)
        .group_by(Exchange.id)
        .having(
            (func.count(LedgerEntry.id) != 2)
            | (func.coalesce(func.sum(LedgerEntry.minutes), 0) != 0)
        )
    )
    return list(session.scalars(stmt))
