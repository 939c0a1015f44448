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

from collections.abc import Sequence
from datetime import date, datetime
from typing import NamedTuple

from fhir_adapters.measures import FUNNEL, REJECTED_REASONS, Stratifier
from referral_service.kit.clock import as_utc
from referral_service.outcomes.disclosure import Raw, StratumKey
from referral_service.outcomes.report_repository import ReferralRow
from referral_service.outcomes.statistics import median_iqr
from referral_service.outcomes.strata import (
    NO_VALUE,
    Keys,
    Names,
    Value,
    bucket,
    first_per_person,
    tabulate,
)

DAY_SECONDS = 86_400


class Person(NamedTuple):
    """A person's first referral in the period, as the funnel sees it."""

    strata: tuple[StratumKey, ...]
    routed: bool
    days_to_acceptance: float | None  # (accepted − received) in days, fractional
    days_to_first_exchange: int | None  # first exchange day − received day, whole days
    completed: bool
    rejected: bool


class Decline(NamedTuple):
    strata: tuple[StratumKey, ...]


def raws(
    rows: Sequence[ReferralRow],
    declines: Sequence[tuple[str, str, str]],
    names: Names,
    focus: StratumKey | None,
) -> list[Raw]:
    """Every funnel figure in every stratum, exact. `declines`: (referral, time bank, reason)."""
    dated = [(as_utc(row[4]), row) for row in rows]
    chosen = first_per_person(dated, lambda d: d[1][1], lambda d: (d[0], d[1][0]))
    keys = Keys(names)
    people = {row[0]: _person(received, row, keys) for received, row in chosen}
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
        *tabulate(person_figures, groups, strata, _summarise, names),
        *tabulate([FUNNEL.figure("declined")], decline_groups, strata, _summarise_declines, names),
    ]


def _person(received: datetime, row: ReferralRow, keys: Keys) -> Person:
    """`received`: the row's received time in UTC."""
    _, _, practice, timebank, received_at, routed, accepted, first_exchange, completed, why = row
    rejected = why in REJECTED_REASONS
    strata: tuple[StratumKey, ...] = (*keys.place(practice, timebank), keys.month(received))
    if rejected and why is not None:
        strata = (*strata, (Stratifier.REASON, why))
    return Person(
        strata=strata,
        routed=routed is not None,
        days_to_acceptance=_days(received_at, accepted),
        days_to_first_exchange=_whole_days(received, first_exchange),
        completed=completed is not None,
        rejected=rejected,
    )


def _days(received: datetime, accepted: datetime | None) -> float | None:
    """Both as the row has them (naive UTC from SQLite, aware from PostgreSQL): the difference
    is the same in any zone."""
    if accepted is None:
        return None
    return (accepted - received).total_seconds() / DAY_SECONDS


def _whole_days(received: datetime, day: date | None) -> int | None:
    return None if day is None else (day - received.date()).days


def _decline_strata(
    person: tuple[StratumKey, ...], timebank: str, reason: str
) -> tuple[StratumKey, ...]:
    practice, _, month, *_ = person
    return practice, (Stratifier.TIMEBANK, timebank), month, (Stratifier.REASON, reason)


def _summarise(people: Sequence[Person]) -> dict[str, Value]:
    routed = completed = rejected = 0
    to_acceptance: list[float] = []
    to_first_exchange: list[float] = []
    for p in people:
        routed += p.routed
        completed += p.completed
        rejected += p.rejected
        if p.days_to_acceptance is not None:
            to_acceptance.append(p.days_to_acceptance)
        if p.days_to_first_exchange is not None:
            to_first_exchange.append(p.days_to_first_exchange)
    return {
        "received": _count(len(people)),
        "routed": _count(routed),
        "accepted": _count(len(to_acceptance)),
        "first-exchange": _count(len(to_first_exchange)),
        "completed": _count(completed),
        "rejected": _count(rejected),
        "days-to-acceptance": median_iqr(to_acceptance) or NO_VALUE,
        "days-to-first-exchange": median_iqr(to_first_exchange) or NO_VALUE,
    }


def _summarise_declines(declines: Sequence[Decline]) -> dict[str, Value]:
    return {"declined": _count(len(declines))}


def _count(number: int) -> Value:
    return float(number), None, None
