"""The cohort rules the upkeep applies, as pure functions over plain values (no database, no FHIR):
when a referral reached each stage (from its Tasks' version histories), the monthly rollup of a
member's exchanges, and the baseline and follow-up chosen among a scale's scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fhir_adapters import codes
from fhir_adapters.wellbeing import SWEMWBS_SCORE, WELLBEING_SYSTEM, WEMWBS_SCORE

# A Task in one of these was taken up: `accepted` comes first in the state machine, the others
# can only follow it (a history missing its `accepted` version still counts from the first).
TAKEN_UP = frozenset({"accepted", "in-progress", "on-hold", "completed", "failed"})

# Scale keys (fhir_adapters.measures.SCALES) by the score Observation's code (DESIGN §7).
SCALE_BY_CODE: dict[tuple[str, str], str] = {
    (codes.SNOMED, SWEMWBS_SCORE): "swemwbs",  # the Rasch metric score is the value
    (codes.SNOMED, WEMWBS_SCORE): "wemwbs",
    (WELLBEING_SYSTEM, "ons4-life-satisfaction"): "ons4-life-satisfaction",
    (WELLBEING_SYSTEM, "ons4-worthwhile"): "ons4-worthwhile",
    (WELLBEING_SYSTEM, "ons4-happiness"): "ons4-happy",
    (WELLBEING_SYSTEM, "ons4-anxiety"): "ons4-anxiety",
    (WELLBEING_SYSTEM, "ucla3-loneliness"): "ucla3",
}


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of a Task: when it was written, and its status then."""

    at: datetime
    status: str


def first_at(history: Sequence[Version], statuses: Iterable[str]) -> datetime | None:
    """When the Task first stood in one of `statuses` (history oldest first)."""
    wanted = frozenset(statuses)
    return next((v.at for v in history if v.status in wanted), None)


def earliest(*times: datetime | None) -> datetime | None:
    found = [t for t in times if t is not None]
    return min(found) if found else None


def month_of(day: date) -> date:
    return day.replace(day=1)


@dataclass
class Month:
    """One month of a member's standing exchanges."""

    given: int = 0
    received: int = 0
    exchanges: int = 0
    partners: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class Exchanged:
    performed_on: date
    giver_id: str
    receiver_id: str
    minutes: int


def rollup(member_id: str, exchanges: Iterable[Exchanged]) -> dict[date, Month]:
    """Per month (its first day, by the day the exchange happened): minutes the member gave and
    received, how many exchanges, and with whom."""
    months: dict[date, Month] = {}
    for x in exchanges:
        month = months.setdefault(month_of(x.performed_on), Month())
        month.exchanges += 1
        if x.giver_id == member_id:
            month.given += x.minutes
            month.partners.add(x.receiver_id)
        else:
            month.received += x.minutes
            month.partners.add(x.giver_id)
    return months


@dataclass(frozen=True, slots=True)
class Scored:
    """One score: the scale's value at a time. `order` breaks ties between equal times (when it
    was stored), so the choice never depends on the order rows come back in."""

    at: datetime
    value: float
    order: tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class Pair:
    baseline: Scored
    follow_up: Scored | None


@dataclass(frozen=True, slots=True)
class Windows:
    """settings.outcome_baseline_window_days, outcome_follow_up_min_weeks / _max_weeks."""

    baseline_days: int
    min_weeks: int
    max_weeks: int


def choose(scores: Iterable[Scored], enrolled_at: datetime, windows: Windows) -> Pair | None:
    """Baseline: the first score within `baseline_days` of enrolment, either side (bounds
    included). Follow-up: the last score from `min_weeks` to `max_weeks` after the baseline
    (bounds included). No baseline, no pair; scores outside both windows are ignored."""
    ordered = sorted(scores, key=lambda s: (s.at, s.order))
    window = timedelta(days=windows.baseline_days)
    baseline = next((s for s in ordered if abs(s.at - enrolled_at) <= window), None)
    if baseline is None:
        return None
    low = baseline.at + timedelta(weeks=windows.min_weeks)
    high = baseline.at + timedelta(weeks=windows.max_weeks)
    later = [s for s in ordered if low <= s.at <= high and s is not baseline]
    return Pair(baseline, later[-1] if later else None)
