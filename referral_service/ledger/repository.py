"""Every ledger query. The tenant (the time bank's org_id) is a parameter of every function and part
of every WHERE clause: another time bank's rows look exactly like rows that do not exist."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, case, func, select, tuple_
from sqlalchemy.orm import Session, aliased

from referral_service.ledger.models import Exchange, LedgerEntry, Member, Offer, Request
from referral_service.store import unreadable

# Sealed names and descriptions open tolerantly (store/unreadable.py): one bad row fails alone.
_TOLERANT = {unreadable.SKIP_UNREADABLE: True}

Listing = Offer | Request
ListingT = TypeVar("ListingT", Offer, Request)


@dataclass(frozen=True, slots=True)
class Totals:
    """A member's minutes given and received, both as positive numbers, net of reversals."""

    given: int
    received: int

    @property
    def balance(self) -> int:
        return self.given - self.received


class Lock(enum.Enum):
    """How a member row is held until commit: SHARE while an exchange or listing names it (so
    that the membership cannot end under it), UPDATE to end it."""

    SHARE = "share"
    UPDATE = "update"


def add(session: Session, *rows: Member | Listing | Exchange | LedgerEntry) -> None:
    session.add_all(rows)
    session.flush()


def get_member(
    session: Session, org_id: str, member_id: str, lock: Lock | None = None
) -> Member | None:
    """The member, None, or `Unreadable` when the alias does not open."""
    stmt = select(Member).where(Member.org_id == org_id, Member.id == member_id)
    if lock is not None:
        stmt = stmt.with_for_update(read=lock is Lock.SHARE)
    return unreadable.first_readable(session, _all(session, stmt))


def member_for_task(session: Session, org_id: str, task_id: str) -> Member | None:
    stmt = select(Member).where(Member.org_id == org_id, Member.referral_task_id == task_id)
    return unreadable.first_readable(session, _all(session, stmt))


def members_by_id(session: Session, org_id: str, member_ids: Iterable[str]) -> list[Member]:
    """These members (unknown ids are skipped). Marked when the alias does not open."""
    wanted = sorted(set(member_ids))
    if not wanted:
        return []
    stmt = select(Member).where(Member.org_id == org_id, Member.id.in_(wanted))
    return list(_all(session, stmt))


def all_members(session: Session, org_id: str) -> list[Member]:
    """Every member of the time bank. Marked when the alias does not open."""
    return list(_all(session, select(Member).where(Member.org_id == org_id)))


def _all(session: Session, stmt: Select[Member]) -> Sequence[Member]:
    return session.scalars(stmt.execution_options(**_TOLERANT)).all()


# Net of reversals by the member's role in each exchange, not by the sign of the entry: a
# reversal writes the opposite entries with the same giver and receiver, so it takes away what
# the original added to both `given` and `received` (and the balance, a plain sum of entries).
def _given() -> ColumnElement[int]:
    as_giver = case((LedgerEntry.member_id == Exchange.giver_id, LedgerEntry.minutes), else_=0)
    return func.coalesce(func.sum(as_giver), 0)


def _received() -> ColumnElement[int]:
    as_receiver = case(
        (LedgerEntry.member_id == Exchange.receiver_id, -LedgerEntry.minutes), else_=0
    )
    return func.coalesce(func.sum(as_receiver), 0)


def members_with_totals(session: Session, org_id: str) -> list[tuple[Member, Totals]]:
    """Every member with their totals, in one grouped query; oldest member first. Members whose
    alias does not open come back marked (`unreadable.split`)."""
    stmt = (
        select(Member, _given(), _received())
        .outerjoin(
            LedgerEntry, (LedgerEntry.member_id == Member.id) & (LedgerEntry.org_id == org_id)
        )
        .outerjoin(Exchange, (Exchange.id == LedgerEntry.exchange_id) & (Exchange.org_id == org_id))
        .where(Member.org_id == org_id)
        .group_by(Member.id)
        .order_by(Member.joined_at, Member.id)
        .execution_options(**_TOLERANT)
    )
    return [
        (member, Totals(int(given), int(received)))
        for member, given, received in session.execute(stmt)
    ]


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


def _reversal() -> type[Exchange]:
    return aliased(Exchange, name="reversal")


def _live(reversal: type[Exchange]) -> ColumnElement[bool]:
    """The exchange stands: it is no reversal and nothing reversed it (`reversal` is outer-joined
    on `reverses_id`). Only standing exchanges count as partners and first gifts."""
    return Exchange.reverses_id.is_(None) & reversal.id.is_(None)


def _reversed_by(org_id: str, reversal: type[Exchange]) -> ColumnElement[bool]:
    return (reversal.reverses_id == Exchange.id) & (reversal.org_id == org_id)


def exchanges(
    session: Session, org_id: str, member_id: str | None, *, limit: int, offset: int
) -> list[tuple[Exchange, str | None]]:
    """Exchanges, each with the id of the reversal that undid it (or None), newest first.
    Exchanges whose description or reason does not open come back marked (`unreadable.split`)."""
    reversal = _reversal()
    stmt = (
        select(Exchange, reversal.id)
        .outerjoin(reversal, _reversed_by(org_id, reversal))
        .where(Exchange.org_id == org_id)
    )
    if member_id is not None:
        stmt = stmt.where((Exchange.giver_id == member_id) | (Exchange.receiver_id == member_id))
    stmt = stmt.order_by(Exchange.performed_on.desc(), Exchange.created_at.desc(), Exchange.id)
    stmt = stmt.limit(limit).offset(offset).execution_options(**_TOLERANT)
    return [(exchange, reversed_by) for exchange, reversed_by in session.execute(stmt)]


# Where the previous batch of an export ended: (performed_on, created_at, id) of its last row.
After = tuple[date, datetime, str]


def exchange_batch(
    session: Session, org_id: str, after: After | None, limit: int
) -> list[tuple[Exchange, str | None]]:
    """The next `limit` exchanges in ledger order (day, then when recorded), each with the id of
    its reversal; keyset paging, so a batch costs the same at any depth. Marked when their
    sealed text does not open."""
    reversal = _reversal()
    stmt = (
        select(Exchange, reversal.id)
        .outerjoin(reversal, _reversed_by(org_id, reversal))
        .where(Exchange.org_id == org_id)
    )
    if after is not None:
        key = tuple_(Exchange.performed_on, Exchange.created_at, Exchange.id)
        stmt = stmt.where(key > tuple_(*after))
    stmt = stmt.order_by(Exchange.performed_on, Exchange.created_at, Exchange.id).limit(limit)
    found = session.execute(stmt.execution_options(**_TOLERANT))
    return [(exchange, reversed_by) for exchange, reversed_by in found]


def member_lines(
    session: Session, org_id: str, member_id: str
) -> list[tuple[Exchange, int, str | None]]:
    """A member's exchanges in ledger order, each with the member's own entry (+ credit, − debit)
    and the id of its reversal. Marked when their sealed text does not open."""
    reversal = _reversal()
    stmt = (
        select(Exchange, LedgerEntry.minutes, reversal.id)
        .join(LedgerEntry, LedgerEntry.exchange_id == Exchange.id)
        .outerjoin(reversal, _reversed_by(org_id, reversal))
        .where(
            Exchange.org_id == org_id,
            LedgerEntry.org_id == org_id,
            LedgerEntry.member_id == member_id,
        )
        .order_by(Exchange.performed_on, Exchange.created_at, Exchange.id)
        .execution_options(**_TOLERANT)
    )
    return [(exchange, minutes, by) for exchange, minutes, by in session.execute(stmt)]


def get_exchange(
    session: Session, org_id: str, exchange_id: str, *, for_update: bool = False
) -> Exchange | None:
    """The exchange, None, or `Unreadable` when its sealed text does not open."""
    stmt = select(Exchange).where(Exchange.org_id == org_id, Exchange.id == exchange_id)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalars(stmt.execution_options(**_TOLERANT)).all()
    return unreadable.first_readable(session, found)


def reversal_of(session: Session, org_id: str, exchange_id: str) -> str | None:
    stmt = select(Exchange.id).where(Exchange.org_id == org_id, Exchange.reverses_id == exchange_id)
    return session.scalar(stmt)


def entries(session: Session, org_id: str, exchange_ids: Sequence[str]) -> list[LedgerEntry]:
    if not exchange_ids:
        return []
    stmt = select(LedgerEntry).where(
        LedgerEntry.org_id == org_id, LedgerEntry.exchange_id.in_(exchange_ids)
    )
    return list(session.scalars(stmt))


def totals(session: Session, org_id: str, member_id: str) -> Totals:
    stmt = (
        select(_given(), _received())
        .select_from(LedgerEntry)
        .join(Exchange, Exchange.id == LedgerEntry.exchange_id)
        .where(
            LedgerEntry.org_id == org_id,
            Exchange.org_id == org_id,
            LedgerEntry.member_id == member_id,
        )
    )
    given, received = session.execute(stmt).one()
    return Totals(int(given), int(received))


def partner_counts(session: Session, org_id: str, member_id: str | None = None) -> dict[str, int]:
    """Distinct members each member has exchanged time with, in either direction (network
    reach), over standing exchanges: one grouped query for every member (or just one).
    Members with no partner are absent."""
    mine, theirs, reversal = aliased(LedgerEntry), aliased(LedgerEntry), _reversal()
    stmt = (
        select(mine.member_id, func.count(func.distinct(theirs.member_id)))
        .select_from(mine)
        .join(theirs, (theirs.exchange_id == mine.exchange_id) & (theirs.id != mine.id))
        .join(Exchange, Exchange.id == mine.exchange_id)
        .outerjoin(reversal, _reversed_by(org_id, reversal))
        .where(
            mine.org_id == org_id,
            theirs.org_id == org_id,
            Exchange.org_id == org_id,
            _live(reversal),
        )
        .group_by(mine.member_id)
    )
    if member_id is not None:
        stmt = stmt.where(mine.member_id == member_id)
    return {member: int(count) for member, count in session.execute(stmt)}


def first_gift_on(session: Session, org_id: str, member_id: str) -> date | None:
    reversal = _reversal()
    stmt = (
        select(func.min(Exchange.performed_on))
        .outerjoin(reversal, _reversed_by(org_id, reversal))
        .where(Exchange.org_id == org_id, Exchange.giver_id == member_id, _live(reversal))
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
