"""A health board's area with outcome rows written straight into the outcome tables, for the
analyst pages' tests (route tests and the browser test): enough people in the board's big practice
that real numbers show, a small practice and small groups that get masked, a practice of another
board and ineligible referrals that must count nowhere.

    area = add_area(session_factory)
    add_outcomes(session_factory, area, Period(date(2026, 7, 1), date(2026, 9, 30)))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session, sessionmaker

from referral_service.organisations import service as organisations
from referral_service.organisations.models import OrgKind
from referral_service.outcomes.models import (
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from referral_service.web.analyst_period import Period
from tests.fixtures.systems import TestSystem, register_system

BIG, SMALL, ELSEWHERE, INELIGIBLE = 30, 5, 10, 3


@dataclass(frozen=True)
class Area:
    board: TestSystem  # a SMART client of the board too: it can pull the same report over FHIR
    other_board: TestSystem
    big: str  # practice ids
    small: str
    elsewhere: str  # a practice of the other board
    timebank_a: str
    timebank_b: str


def add_area(session_factory: sessionmaker[Session]) -> Area:
    board = register_system(
        session_factory, OrgKind.HEALTHBOARD, name="South East London ICB", ods="QKK"
    )
    other = register_system(session_factory, OrgKind.HEALTHBOARD, name="North ICB", ods="QMJ")
    with session_factory() as session, session.begin():

        def placed(kind: OrgKind, name: str, ods: str | None, board_id: str) -> str:
            return organisations.register(session, kind, name, ods, board_id).id

        big = placed(OrgKind.PRACTICE, "Rushey Green Group Practice", "F84001", board.org_id)
        small = placed(OrgKind.PRACTICE, "Torridon Road Surgery", "F84002", board.org_id)
        elsewhere = placed(OrgKind.PRACTICE, "Northern Practice", "N81001", other.org_id)
        tb_a = placed(OrgKind.TIMEBANK, "Catford Time Bank", None, board.org_id)
        tb_b = placed(OrgKind.TIMEBANK, "Lewisham Time Bank", None, board.org_id)
    return Area(board, other, big, small, elsewhere, tb_a, tb_b)


def add_outcomes(session_factory: sessionmaker[Session], area: Area, period: Period) -> None:
    """The rows, all dated inside `period` (a quarter: three months)."""
    with session_factory() as session, session.begin():
        for i in range(BIG):
            _person(session, area, period, area.big, f"big-{i}", i, eligible=True)
        for i in range(INELIGIBLE):
            _person(session, area, period, area.big, f"opted-out-{i}", i, eligible=False)
        for i in range(SMALL):
            _person(session, area, period, area.small, f"small-{i}", i, eligible=True)
        for i in range(ELSEWHERE):
            _person(session, area, period, area.elsewhere, f"elsewhere-{i}", i, eligible=True)


def _at(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), tzinfo=UTC)


def _person(
    session: Session,
    area: Area,
    period: Period,
    practice: str,
    name: str,
    i: int,
    *,
    eligible: bool,
) -> None:
    """Person `i` of a practice: the further down the list, the less far they got."""
    month_start = _month_start(period, i % 3)
    received = _at(month_start + timedelta(days=i % 20))
    accepted = received + timedelta(days=3 + i % 9) if i < 24 else None
    enrolled = accepted + timedelta(days=2) if accepted and i < 22 else None
    referral = ReferralOutcome(
        referral_id=f"task-{name}",
        practice_id=practice,
        patient_id=f"patient-{name}",
        timebank_id=(area.timebank_a if i % 2 == 0 else area.timebank_b) if i < 28 else None,
        status=_status(i),
        received_at=received,
        routed_at=received + timedelta(hours=1) if i < 28 else None,
        accepted_at=accepted,
        first_exchange_on=(enrolled.date() + timedelta(days=4 + i % 6))
        if enrolled and i < 20
        else None,
        completed_at=received + timedelta(days=40) if i < 10 else None,
        rejected_reason="no-address" if 28 <= i < 30 else None,
        member_id=f"member-{name}" if enrolled else None,
        enrolled_at=enrolled,
        first_gift_on=(enrolled.date() + timedelta(days=6 + i % 11))
        if enrolled and i < 14
        else None,
        eligible=eligible,
    )
    session.add(referral)
    session.flush()
    _declines(session, area, referral, i)
    if referral.first_exchange_on is not None:
        _activity(session, period, referral.referral_id, i)
    _scores(session, period, referral, i)


def _status(i: int) -> str:
    if i < 10:
        return "completed"
    if i < 24:
        return "in-progress"
    return "requested" if i < 28 else "rejected"


def _declines(session: Session, area: Area, referral: ReferralOutcome, i: int) -> None:
    # Twelve "no capacity" (shown), three "outside catchment" (masked).
    reason = "no-capacity" if i < 12 else "outside-catchment" if i < 15 else None
    if reason is None:
        return
    session.add(
        OutcomeDecline(
            referral_id=referral.referral_id,
            task_id=f"decline-{referral.referral_id}",
            timebank_id=area.timebank_b,
            reason=reason,
            declined_at=referral.received_at + timedelta(hours=5),
        )
    )


def _activity(session: Session, period: Period, referral_id: str, i: int) -> None:
    for m in range(3):
        month = _month_start(period, m)
        session.add(
            OutcomeActivity(
                referral_id=referral_id,
                month=month,
                minutes_given=60 * (i % 4) + 30 * m,
                minutes_received=90 + 15 * (i % 3),
                exchanges=2 + i % 2,
            )
        )
        for p in range(1 + (i + m) % 3):
            session.add(
                OutcomePartner(
                    referral_id=referral_id, month=month, partner_member_id=f"partner-{p}"
                )
            )


# scale: (people in the big practice with a pair, baseline, change for person i)
SCORED: dict[str, tuple[int, float, Callable[[int], float]]] = {
    "swemwbs": (20, 18.5, lambda i: (i % 7) - 1.5),
    "wemwbs": (16, 40.0, lambda i: (i % 9) - 2.0),
    "ons4-life-satisfaction": (18, 5.0, lambda i: (i % 4) - 1.0),
    "ons4-anxiety": (5, 6.0, lambda i: -(i % 3)),  # too few: masked
    "ucla3": (12, 7.0, lambda i: -(i % 3) + 0.0),
}


def _scores(session: Session, period: Period, referral: ReferralOutcome, i: int) -> None:
    """The small practice's people have SWEMWBS only (so ONS4 anxiety stays under 8 people)."""
    small = referral.referral_id.startswith("task-small-")
    for scale, (people, baseline, change) in SCORED.items():
        if i >= people or (small and scale != "swemwbs"):
            continue
        follow_up_at = _at(period.start + timedelta(days=5 + 3 * i))
        session.add(
            OutcomeScore(
                referral_id=referral.referral_id,
                scale=scale,
                baseline=baseline,
                baseline_at=follow_up_at - timedelta(weeks=10),
                follow_up=baseline + change(i),
                follow_up_at=follow_up_at,
            )
        )


def _month_start(period: Period, months_in: int) -> date:
    year, month = divmod(period.start.month - 1 + months_in, 12)
    return date(period.start.year + year, month + 1, 1)
