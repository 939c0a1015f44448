"""A measure's exact figures for one board, period and focus (`Scope`): the queries of
report_repository.py, the names strata are labelled with, and the family modules that count.
Nothing here is published until `disclosure.disclose` has passed it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy.orm import Session

from referral_service.config import Settings
from referral_service.kit.collector import without_cycle_collection
from referral_service.outcomes import coproduction, funnel, wellbeing_change
from referral_service.outcomes import report_repository as repository
from referral_service.outcomes.disclosure import Raw, StratumKey
from referral_service.outcomes.strata import Names


@dataclass(frozen=True, slots=True)
class Scope:
    """What a report covers: a board's practices, the dates [start, end] (inclusive, UTC), and
    the stratum it is narrowed to (a practice's or a time bank's), if any."""

    session: Session
    settings: Settings
    board_id: str
    start: date
    end: date
    focus: StratumKey | None = None

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), UTC)

    @property
    def until(self) -> datetime:
        """The first instant after the period."""
        return datetime.combine(self.end + timedelta(days=1), time(), UTC)


def names(session: Session, practices: Iterable[str], timebanks: Iterable[str | None]) -> Names:
    wanted = {*practices, *(t for t in timebanks if t is not None)}
    rows = repository.names(session, wanted)
    return Names(
        practices={org_id: (ods or org_id, name) for org_id, name, ods in rows},
        timebanks={org_id: name for org_id, name, _ in rows},
    )


@without_cycle_collection
def funnel_raws(scope: Scope) -> list[Raw]:
    rows = repository.referrals_received(scope.session, scope.board_id, scope.since, scope.until)
    declines = repository.declines(scope.session, scope.board_id, scope.since, scope.until)
    found = names(
        scope.session,
        (row[2] for row in rows),
        [*(row[3] for row in rows), *(row[1] for row in declines)],
    )
    return funnel.raws(rows, [(d[0], d[1], d[2]) for d in declines], found, scope.focus)


@without_cycle_collection
def coproduction_raws(scope: Scope) -> list[Raw]:
    first, last = coproduction.period_months(scope.start, scope.end)
    session, board = scope.session, scope.board_id
    activity: Sequence[repository.ActivityRow] = ()
    if first <= last:
        activity = repository.activity(session, board, first, last)
    enrolments = repository.enrolments(session, board, scope.since, scope.until)
    found = names(
        session,
        [*(row[2] for row in activity), *(row[2] for row in enrolments)],
        [*(row[3] for row in activity), *(row[3] for row in enrolments)],
    )
    return coproduction.raws(activity, enrolments, found, scope.focus)


@without_cycle_collection
def hours_raws(scope: Scope) -> list[Raw]:
    """The people taking part and their hours, in the total only (what the social value needs)."""
    first, last = coproduction.period_months(scope.start, scope.end)
    activity: Sequence[repository.ActivityRow] = ()
    if first <= last:
        activity = repository.activity(scope.session, scope.board_id, first, last, partners=False)
    found = names(scope.session, (row[2] for row in activity), (row[3] for row in activity))
    return coproduction.hours_total(activity, found, scope.focus)


@without_cycle_collection
def wellbeing_raws(scope: Scope) -> list[Raw]:
    rows, found = _score_pairs(scope, wellbeing_change.SCALE_CODES)
    thresholds = scope.settings.outcome_meaningful_change
    return wellbeing_change.raws(rows, thresholds, found, scope.focus)


@without_cycle_collection
def change_raws(scope: Scope, scale: str) -> list[Raw]:
    """One scale's change, in the total only (what the social value needs)."""
    rows, found = _score_pairs(scope, (scale,))
    thresholds = scope.settings.outcome_meaningful_change
    return wellbeing_change.total(rows, thresholds, found, scope.focus, scale)


def _score_pairs(
    scope: Scope, scales: Sequence[str]
) -> tuple[Sequence[repository.ScoreRow], Names]:
    rows = repository.score_pairs(scope.session, scope.board_id, scales, scope.since, scope.until)
    return rows, names(scope.session, (row[2] for row in rows), (row[3] for row in rows))
