"""Ledger tables: members, their offers and requests, exchanges and the double-entry rows.

Every table carries the time bank's `org_id` (the tenant); `repository.py` filters on it in every
query. Time is integer minutes. Balances are never stored: they are sums over `ledger_entry`.
Nothing is edited or deleted: a mistaken exchange is undone by a reversing exchange, an ended
membership keeps its history.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base
from referral_service.store.sealing import seal_text

# One exchange is at most a day of someone's time; more is a typing error, not generosity.
MAX_EXCHANGE_MINUTES = 24 * 60


class Member(Base):
    """A time bank member. The alias is personal data: it is the only name kept, and it is shown
    to the broker only. Referred members also carry the ids their FHIR resources point at."""

    __tablename__ = "ledger_member"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    # Sealed at rest (store/sealing.seal_text): a name is personal data.
    alias: Mapped[str] = mapped_column(LargeBinary)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Referred members only: the child Task they were enrolled from (once per Task), the practice
    # that owns their referral, its Patient and original ServiceRequest, and the enrolment
    # Observation.
    referral_task_id: Mapped[str | None] = mapped_column(String(64))
    practice_org_id: Mapped[str | None] = mapped_column(ForeignKey("organisation.id"))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    service_request_id: Mapped[str | None] = mapped_column(String(64))
    enrolment_observation_id: Mapped[str | None] = mapped_column(String(64))
    enrolled_at: Mapped[datetime | None]
    # An ended membership: the member stays listed with their history, and takes part in nothing
    # new. The reason is the broker's free text, sealed like the alias.
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(LargeBinary)

    __table_args__ = (
        # Leads with org_id, so it is also the index for listing a time bank's members.
        Index("ix_ledger_member_referral_task", "org_id", "referral_task_id", unique=True),
        CheckConstraint("ended_at IS NOT NULL OR end_reason IS NULL", name="end_reason"),
    )

    @property
    def referred(self) -> bool:
        return self.referral_task_id is not None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def __repr__(self) -> str:
        return f"Member(id={self.id!r}, referred={self.referred})"


class _Listing:
    """What a member offers or asks for: a category from DESIGN §4 and a short description."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), index=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("ledger_member.id"), index=True)
    category: Mapped[str] = mapped_column(String(40))
    description: Mapped[str] = mapped_column(LargeBinary)  # sealed at rest: free text
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(id={self.id!r}, category={self.category!r})"


class Offer(_Listing, Base):
    __tablename__ = "ledger_offer"


class Request(_Listing, Base):
    __tablename__ = "ledger_request"


class Exchange(Base):
    """One exchange: the giver gave `minutes` of time to the receiver on `performed_on`.

    A reversal is an exchange too: it names the exchange it undoes (`reverses_id`, at most one
    reversal each), copies its parties, minutes, day and category, and writes the opposite
    entries, so every figure stays a plain sum and the history shows both rows.
    """

    __tablename__ = "ledger_exchange"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    giver_id: Mapped[str] = mapped_column(ForeignKey("ledger_member.id"))
    receiver_id: Mapped[str] = mapped_column(ForeignKey("ledger_member.id"))
    minutes: Mapped[int] = mapped_column(Integer)
    performed_on: Mapped[date]
    category: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    description: Mapped[str | None] = mapped_column(LargeBinary)  # sealed at rest: free text
    reverses_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_exchange.id"))
    reason: Mapped[str | None] = mapped_column(LargeBinary)  # a reversal's why; sealed

    __table_args__ = (
        CheckConstraint(f"minutes > 0 AND minutes <= {MAX_EXCHANGE_MINUTES}", name="minutes"),
        CheckConstraint("giver_id <> receiver_id", name="two_parties"),
        CheckConstraint("(reverses_id IS NULL) = (reason IS NULL)", name="reversal_reason"),
        Index("ix_ledger_exchange_org_performed", "org_id", "performed_on"),
        # An exchange is reversed at most once; also how a list finds what reversed a row.
        Index("ix_ledger_exchange_reverses", "reverses_id", unique=True),
    )

    @property
    def is_reversal(self) -> bool:
        return self.reverses_id is not None

    def __repr__(self) -> str:
        return f"Exchange(id={self.id!r}, minutes={self.minutes})"


class LedgerEntry(Base):
    """Double entry: each exchange writes exactly two rows, +minutes to the giver and -minutes to
    the receiver (a reversal: the opposite), so the entries of every exchange sum to zero
    (`repository.unbalanced` checks). For a referred member the row also names the FHIR resources
    the exchange produced (a reversal produces none: it marks the original's entered-in-error)."""

    __tablename__ = "ledger_entry"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    exchange_id: Mapped[str] = mapped_column(ForeignKey("ledger_exchange.id"))
    member_id: Mapped[str] = mapped_column(ForeignKey("ledger_member.id"))
    minutes: Mapped[int] = mapped_column(Integer)
    procedure_id: Mapped[str | None] = mapped_column(String(64))
    observation_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("minutes <> 0", name="minutes"),
        Index("ix_ledger_entry_member", "org_id", "member_id"),
        Index("ix_ledger_entry_exchange", "exchange_id", "member_id", unique=True),
    )

    def __repr__(self) -> str:
        return f"LedgerEntry(exchange={self.exchange_id!r}, minutes={self.minutes})"


# Bound to the tenant (and a listing to its member): moved to another time bank, it does not open.
seal_text(Member, "alias", "org_id")
seal_text(Member, "end_reason", "org_id")
seal_text(Exchange, "description", "org_id")
seal_text(Exchange, "reason", "org_id")
seal_text(Offer, "description", "org_id", "member_id")
seal_text(Request, "description", "org_id", "member_id")
