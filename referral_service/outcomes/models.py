"""Outcome rows: what a report reads instead of the raw resources and ledger.

Workers keep them up to date (`refresh.py`): one `outcome_referral` row per referral Task, the time
banks' declines, and per referred member and month the hours given and received and the partners.
Scores keep the baseline and follow-up the cohort rules chose. Every row is derived: deleting them
all and running `spis outcomes rebuild` gives the same rows.

Nothing here names a person beyond SPIS's own ids (Patient id, ledger member ids), which never
leave the service: reports carry only aggregates that passed disclosure control.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base


class ReferralOutcome(Base):
    """One referral (the practice's referral Task) as the funnel and the cohorts see it."""

    __tablename__ = "outcome_referral"

    referral_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    practice_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    # The person: the same Patient id across a patient's referrals at one practice.
    patient_id: Mapped[str] = mapped_column(String(64))
    # The time bank that took it up (accepted); otherwise the last one it was routed to; else None.
    timebank_id: Mapped[str | None] = mapped_column(ForeignKey("organisation.id"))
    # The referral Task's status now (task-status code).
    status: Mapped[str] = mapped_column(String(32))
    received_at: Mapped[datetime]
    routed_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    # The first exchange of the member enrolled from this referral (net of reversals).
    first_exchange_on: Mapped[date | None]
    completed_at: Mapped[datetime | None]
    # Rejected by SPIS (no time bank could take it): a routing-outcome code, see refresh.py.
    rejected_reason: Mapped[str | None] = mapped_column(String(40))
    # The ledger member enrolled from it, when enrolment happened, and their first gift of time.
    member_id: Mapped[str | None] = mapped_column(String(36))
    enrolled_at: Mapped[datetime | None]
    first_gift_on: Mapped[date | None]
    # Secondary use permitted by the governing Consent and no national data opt-out, as of the
    # last refresh; set False at once, in the same transaction, when either is withdrawn.
    eligible: Mapped[bool] = mapped_column(Boolean)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        Index("ix_outcome_referral_practice_received", "practice_id", "received_at"),
        Index("ix_outcome_referral_practice_enrolled", "practice_id", "enrolled_at"),
        Index("ix_outcome_referral_patient", "patient_id"),
    )

    def __repr__(self) -> str:
        return f"ReferralOutcome({self.referral_id!r}, {self.status!r})"


class OutcomeDecline(Base):
    """A time bank declined the referral (its Task `rejected`), with the broker's reason code."""

    __tablename__ = "outcome_decline"

    referral_id: Mapped[str] = mapped_column(
        ForeignKey("outcome_referral.referral_id", ondelete="CASCADE"), primary_key=True
    )
    # The time bank's Task: one decline each.
    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    timebank_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    reason: Mapped[str] = mapped_column(String(40))  # a DECLINE_REASONS code, or "unknown"
    declined_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"OutcomeDecline({self.referral_id!r}, {self.reason!r})"


class OutcomeActivity(Base):
    """Monthly rollup of a referred member's exchanges (by the day they happened, reversals
    netted out): minutes given and received and the number of exchanges."""

    __tablename__ = "outcome_activity"

    referral_id: Mapped[str] = mapped_column(
        ForeignKey("outcome_referral.referral_id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(primary_key=True)  # the first day of the month
    minutes_given: Mapped[int] = mapped_column(Integer)
    minutes_received: Mapped[int] = mapped_column(Integer)
    exchanges: Mapped[int] = mapped_column(Integer)

    __table_args__ = (Index("ix_outcome_activity_month", "month", "referral_id"),)

    def __repr__(self) -> str:
        return f"OutcomeActivity({self.referral_id!r}, {self.month})"


class OutcomePartner(Base):
    """The distinct members a referred member exchanged with, per month (network reach)."""

    __tablename__ = "outcome_partner"

    referral_id: Mapped[str] = mapped_column(
        ForeignKey("outcome_referral.referral_id", ondelete="CASCADE"), primary_key=True
    )
    month: Mapped[date] = mapped_column(primary_key=True)
    partner_member_id: Mapped[str] = mapped_column(String(36), primary_key=True)

    def __repr__(self) -> str:
        return f"OutcomePartner({self.referral_id!r}, {self.month})"


class OutcomeScore(Base):
    """One scale's baseline and follow-up for a referral, as the cohort rules chose them.
    No row when there is no baseline; `follow_up` is None until a follow-up falls in the window."""

    __tablename__ = "outcome_score"

    referral_id: Mapped[str] = mapped_column(
        ForeignKey("outcome_referral.referral_id", ondelete="CASCADE"), primary_key=True
    )
    # swemwbs, wemwbs, ons4-life-satisfaction, ons4-worthwhile, ons4-happy, ons4-anxiety, ucla3
    scale: Mapped[str] = mapped_column(String(40), primary_key=True)
    baseline: Mapped[float] = mapped_column(Float)
    baseline_at: Mapped[datetime]
    follow_up: Mapped[float | None] = mapped_column(Float)
    follow_up_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outcome_score_follow_up", "scale", "follow_up_at"),)

    def __repr__(self) -> str:
        return f"OutcomeScore({self.referral_id!r}, {self.scale!r})"


class ProgrammeCost(Base):
    """What a board says its social prescribing programme cost over a period, for the social
    value estimate. One figure per board and exact period; entering it again replaces it."""

    __tablename__ = "outcome_programme_cost"

    board_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    period_end: Mapped[date] = mapped_column(primary_key=True)
    amount_pence: Mapped[int] = mapped_column(Integer)
    entered_by: Mapped[str] = mapped_column(String(80))  # "Person/<id>" or "cli"
    entered_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"ProgrammeCost({self.board_id!r}, {self.period_start}..{self.period_end})"


class BoardVersion(Base):
    """How many times the outcome rows of a board's practices have changed: bumped in the same
    transaction as every change (`repository.rows_changed`), so a report cached at an older
    version is known to be out of date. No row: version 0."""

    __tablename__ = "outcome_board_version"

    board_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)

    def __repr__(self) -> str:
        return f"BoardVersion({self.board_id!r}, {self.version})"


class CachedReport(Base):
    """A report's published cells (after disclosure control; aggregates only), kept until the
    board's rows change (`version`) or what else it rests on does (`fingerprint`: the board's
    area, the settings the figures use, the programme cost, the report code). See
    report_cache.py."""

    __tablename__ = "outcome_report_cache"

    board_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    measure: Mapped[str] = mapped_column(String(64), primary_key=True)
    period_start: Mapped[date] = mapped_column(primary_key=True)
    period_end: Mapped[date] = mapped_column(primary_key=True)
    focus: Mapped[str] = mapped_column(String(80), primary_key=True)  # "" for the whole board
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(64))
    cells: Mapped[bytes] = mapped_column(LargeBinary)  # JSON, see report_cache.py
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the board last pulled it (to the hour): the workers keep reports pulled lately
    # computed (outcomes/warm.py) and drop the others.
    pulled_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"CachedReport({self.board_id!r}, {self.measure!r}, {self.period_start})"
