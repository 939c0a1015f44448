"""Plain typed factories for the report tests: organisations and outcome rows inserted directly
(the refresh that maintains them in production is tested elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import count

from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Report
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.organisations.models import Organisation, OrgKind
from referral_service.outcomes import service
from referral_service.outcomes.models import (
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from referral_service.principal import Principal

_ids = count(1)


def at(day: str, hour: int = 9) -> datetime:
    """A UTC time on an ISO day."""
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC) + timedelta(
        hours=hour
    )


def org(
    session: Session, kind: OrgKind, name: str, ods: str | None = None, board: str | None = None
) -> str:
    org_id = f"{kind.value}-{next(_ids)}"
    session.add(Organisation(id=org_id, kind=kind, name=name, ods_code=ods, board_id=board))
    session.flush()
    return org_id


@dataclass(frozen=True)
class Area:
    """A board with two practices and two time banks in its area, and another board with a
    practice of its own."""

    board: str
    p1: str  # Hill Surgery (P11111)
    p2: str  # Vale Practice (P22222)
    t1: str  # Catford Time Bank
    t2: str  # Lewisham Time Bank
    other_board: str
    p3: str  # Far Surgery (P33333), in the other board's area


def area(session: Session) -> Area:
    board = org(session, OrgKind.HEALTHBOARD, "South East London", "QKK")
    other = org(session, OrgKind.HEALTHBOARD, "North London", "QMJ")
    found = Area(
        board=board,
        p1=org(session, OrgKind.PRACTICE, "Hill Surgery", "P11111", board),
        p2=org(session, OrgKind.PRACTICE, "Vale Practice", "P22222", board),
        t1=org(session, OrgKind.TIMEBANK, "Catford Time Bank", None, board),
        t2=org(session, OrgKind.TIMEBANK, "Lewisham Time Bank", None, board),
        other_board=other,
        p3=org(session, OrgKind.PRACTICE, "Far Surgery", "P33333", other),
    )
    return found


def referral(
    session: Session,
    practice: str,
    patient: str,
    received: datetime,
    *,
    timebank: str | None = None,
    status: str = "requested",
    routed: datetime | None = None,
    accepted: datetime | None = None,
    first_exchange: date | None = None,
    completed: datetime | None = None,
    rejected_reason: str | None = None,
    enrolled: datetime | None = None,
    first_gift: date | None = None,
    eligible: bool = True,
) -> str:
    referral_id = f"task-{next(_ids)}"
    session.add(
        ReferralOutcome(
            referral_id=referral_id,
            practice_id=practice,
            patient_id=patient,
            timebank_id=timebank,
            status=status,
            received_at=received,
            routed_at=routed,
            accepted_at=accepted,
            first_exchange_on=first_exchange,
            completed_at=completed,
            rejected_reason=rejected_reason,
            member_id=None,
            enrolled_at=enrolled,
            first_gift_on=first_gift,
            eligible=eligible,
        )
    )
    session.flush()
    return referral_id


def decline(session: Session, referral_id: str, timebank: str, reason: str) -> None:
    session.add(
        OutcomeDecline(
            referral_id=referral_id,
            task_id=f"tbtask-{next(_ids)}",
            timebank_id=timebank,
            reason=reason,
            declined_at=at("2026-07-01"),
        )
    )


def activity(
    session: Session,
    referral_id: str,
    month: str,
    given: int,
    received: int,
    partners: tuple[str, ...] = (),
    exchanges: int = 1,
) -> None:
    """A month ("2026-07") of a referred member's exchanges, minutes, and their partners."""
    first = date.fromisoformat(f"{month}-01")
    session.add(
        OutcomeActivity(
            referral_id=referral_id,
            month=first,
            minutes_given=given,
            minutes_received=received,
            exchanges=exchanges,
        )
    )
    for member in partners:
        session.add(OutcomePartner(referral_id=referral_id, month=first, partner_member_id=member))


def score(
    session: Session,
    referral_id: str,
    scale: str,
    baseline: float,
    follow_up: float | None,
    follow_up_at: datetime | None,
    baseline_at: datetime | None = None,
) -> None:
    session.add(
        OutcomeScore(
            referral_id=referral_id,
            scale=scale,
            baseline=baseline,
            baseline_at=baseline_at or at("2026-04-01"),
            follow_up=follow_up,
            follow_up_at=follow_up_at,
        )
    )


Q3 = (date(2026, 7, 1), date(2026, 9, 30))


def evaluate(
    factory: sessionmaker[Session],
    settings: Settings,
    measure: str,
    board: str,
    *,
    focus: str | None = None,
    principal: Principal | None = None,
    period: tuple[date, date] = Q3,
) -> Report:
    """`service.evaluate` in a unit of work of its own (committed, so its audit event is kept)."""
    with unit_of_work(factory) as session:
        ctx = Context(session, principal or Principal.spis(), settings)
        return service.evaluate(ctx, measure, *period, board, focus)


Shown = tuple[float | None, str | None]  # (value, suppression)


def table(report: Report) -> dict[tuple[str, str, str], Shown]:
    """Every cell as (figure, stratifier, key) → (value, suppression code or None)."""
    return {
        (c.figure, c.stratifier.value, c.key): (
            c.value,
            None if c.suppressed is None else c.suppressed.value,
        )
        for c in report.cells
    }


def keys(report: Report, figure: str, stratifier: str) -> list[str]:
    return [c.key for c in report.cells if c.figure == figure and c.stratifier.value == stratifier]
