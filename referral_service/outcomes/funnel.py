"""The referral funnel (`FUNNEL`) before disclosure control: the people referred in the period by
the stage their referral has reached now, the referrals SPIS could not place and the time banks'
declines by reason, and the days to acceptance and to the first exchange.

Cohort (the contract of issue 10): referrals received in [start, end], each person once, by their
first referral received in the period (then the lower referral id). Strata come from that
referral: its practice, its time bank ("none" when never placed), the month it was received.
Declines are the time banks' answers to those referrals: one per declining time bank, in the
declining time bank's stratum and the decline reason's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from fhir_adapters.measures import FUNNEL, REJECTED_REASONS, Figure, Stratifier
from referral_service.kit.clock import as_utc
from referral_service.outcomes.disclosure import Raw, StratumKey
from referral_service.outcomes.report_repository import ReferralRow
from referral_service.outcomes.statistics import median_iqr
from referral_service.outcomes.strata import (
    Names,
    Value,
    bucket,
    count,
    first_per_person,
    month_key,
    tabulate,
    timebank_key,
)

DAY_SECONDS = 86_400


@dataclass(frozen=True, slots=True)
class Person:
    """A person's first referral in the period, as the funnel sees it."""

    strata: tuple[StratumKey, ...]
    routed: bool
    days_to_acceptance: float | None  # (accepted − received) in days, fractional
    days_to_first_exchange: int | None  # first exchange day − received day, whole days
    completed: bool
    rejected: bool


@dataclass(frozen=True, slots=True)
class Decline:
    strata: tuple[StratumKey, ...]


def raws(
    rows: Sequence[ReferralRow],
    declines: Sequence[tuple[str, str, str]],
    names: Names,
    focus: StratumKey | None,
) -> list[Raw]:
    """Every funnel figure in every stratum, exact. `declines`: (referral, time bank, reason)."""
    chosen = first_per_person(rows, lambda r: r[1], lambda r: (as_utc(r[4]), r[0]))
    people = {row[0]: _person(row, names) for row in chosen}
    own = [
        Decline(_decline_strata(people[referral].strata, timebank, reason))
        for referral, timebank, reason in declines
        if referral in people
    ]
    persons = [p for p in people.values() if focus is None or focus in p.strata]
    own = [d for d in own if focus is None or focus in d.strata]
    groups = bucket(persons, lambda p: p.strata)
    decline_groups = bucket(own, lambda d: d.strata)
    strata = [*groups, *(s for s in decline_groups if s not in groups)]
    person_figures = [f for f in FUNNEL.figures if f.code != "declined"]
    return [
        *tabulate(person_figures, groups, strata, _compute, names),
        *tabulate([FUNNEL.figure("declined")], decline_groups, strata, _count_declines, names),
    ]


def _person(row: ReferralRow, names: Names) -> Person:
    _, _, practice, timebank, received_at, routed, accepted, first_exchange, completed, why = row
    received = as_utc(received_at)
    rejected = why in REJECTED_REASONS
    strata: tuple[StratumKey, ...] = (
        (Stratifier.PRACTICE, names.practice_key(practice)),
        (Stratifier.TIMEBANK, timebank_key(timebank)),
        (Stratifier.MONTH, month_key(received.date())),
    )
    if rejected and why is not None:
        strata = (*strata, (Stratifier.REASON, why))
    return Person(
        strata=strata,
        routed=routed is not None,
        days_to_acceptance=_days(received, accepted),
        days_to_first_exchange=_whole_days(received, first_exchange),
        completed=completed is not None,
        rejected=rejected,
    )


def _days(received: datetime, accepted: datetime | None) -> float | None:
    if accepted is None:
        return None
    return (as_utc(accepted) - received).total_seconds() / DAY_SECONDS


def _whole_days(received: datetime, day: date | None) -> int | None:
    return None if day is None else (day - received.date()).days


def _decline_strata(
    person: tuple[StratumKey, ...], timebank: str, reason: str
) -> tuple[StratumKey, ...]:
    practice, _, month, *_ = person
    return practice, (Stratifier.TIMEBANK, timebank), month, (Stratifier.REASON, reason)


_COUNTS: dict[str, Callable[[Person], bool]] = {
    "received": lambda p: True,
    "routed": lambda p: p.routed,
    "accepted": lambda p: p.days_to_acceptance is not None,
    "first-exchange": lambda p: p.days_to_first_exchange is not None,
    "completed": lambda p: p.completed,
    "rejected": lambda p: p.rejected,
}


def _compute(figure: Figure, people: Sequence[Person]) -> Value:
    if figure.code in _COUNTS:
        test = _COUNTS[figure.code]
        return float(sum(1 for p in people if test(p))), None, None
    if figure.code == "days-to-acceptance":
        values: list[float] = [
            p.days_to_acceptance for p in people if p.days_to_acceptance is not None
        ]
    else:
        values = [p.days_to_first_exchange for p in people if p.days_to_first_exchange is not None]
    found = median_iqr(values)
    return (None, None, None) if found is None else found


def _count_declines(figure: Figure, declines: Sequence[Decline]) -> Value:
    return count(declines)
