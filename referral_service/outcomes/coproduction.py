"""Co-production (`COPRODUCTION`) before disclosure control: what referred people gave as well as
received.

- Taking part: the monthly activity rows of months whose first day is in [start, end] (a period
  that starts mid-month leaves that month out: periods are meant to be whole months). A person
  (patient) is counted with all their referrals' rows, in the practice and time bank strata of
  their earliest referral (by received time) that has activity in the period. The month strata
  count person-months: a person active in July and August is in both, and once in the total.
  Network reach is the number of distinct partners over the person's rows in the stratum's
  months.
- Giving: the people enrolled in [start, end], each by their first enrolment in it, in the strata
  of that referral and the month of enrolment; a giver has given time since (first gift).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fhir_adapters.measures import COPRODUCTION, Stratifier
from referral_service.kit.clock import as_utc
from referral_service.outcomes.disclosure import TOTAL, Raw, StratumKey
from referral_service.outcomes.report_repository import (
    PARTNER_SEPARATOR,
    ActivityRow,
    EnrolmentRow,
)
from referral_service.outcomes.statistics import mean_ci, median_iqr
from referral_service.outcomes.strata import (
    NO_VALUE,
    Names,
    Value,
    bucket,
    first_per_person,
    month_key,
    tabulate,
    timebank_key,
)

MINUTES_PER_HOUR = 60
_ACTIVE = {"active-members", "hours-given", "hours-received", "reciprocity", "network-reach"}


@dataclass(frozen=True, slots=True)
class Active:
    """A person taking part, over the period (or over one month, in a month stratum)."""

    strata: tuple[StratumKey, ...]
    given: int  # minutes
    received: int
    reach: int  # distinct partners


@dataclass(frozen=True, slots=True)
class Enrolled:
    strata: tuple[StratumKey, ...]
    days_to_first_gift: int | None  # None: has not given time


@dataclass(slots=True)
class _Month:
    given: int = 0
    received: int = 0
    partners: set[str] = field(default_factory=set)


def period_months(start: date, end: date) -> tuple[date, date]:
    """The first and last month (first days) whose first day is in [start, end]; first > last
    when there is none."""
    first = start if start.day == 1 else (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, end.replace(day=1)


def raws(
    activity: Sequence[ActivityRow],
    enrolments: Sequence[EnrolmentRow],
    names: Names,
    focus: StratumKey | None,
) -> list[Raw]:
    """Every co-production figure in every stratum, exact."""
    active = _active_groups(active_people(activity, names), focus)
    enrolled = [e for e in _enrolled(enrolments, names) if focus is None or focus in e.strata]
    giving = bucket(enrolled, lambda e: e.strata)
    strata = [*active, *(s for s in giving if s not in active)]
    figures = COPRODUCTION.figures
    return [
        *tabulate([f for f in figures if f.code in _ACTIVE], active, strata, _taking_part, names),
        *tabulate([f for f in figures if f.code not in _ACTIVE], giving, strata, _giving, names),
    ]


Person = tuple[tuple[StratumKey, ...], dict[date, _Month]]


def active_people(activity: Sequence[ActivityRow], names: Names) -> list[Person]:
    """Each person taking part: their practice and time bank strata (from their earliest
    referral with activity, by received time then id) and their activity month by month."""
    first: dict[str, tuple[datetime, str, str, str | None]] = {}
    months: dict[str, dict[date, _Month]] = {}
    for referral, patient, practice, timebank, received, month, given, got, met in activity:
        known = first.get(patient)
        if known is None or (received, referral) < known[:2]:
            first[patient] = (received, referral, practice, timebank)
        entry = months.setdefault(patient, {}).setdefault(month, _Month())
        entry.given += given
        entry.received += got
        if met:
            entry.partners.update(met.split(PARTNER_SEPARATOR))
    return [
        (
            (
                (Stratifier.PRACTICE, names.practice_key(first[patient][2])),
                (Stratifier.TIMEBANK, timebank_key(first[patient][3])),
            ),
            by_month,
        )
        for patient, by_month in months.items()
    ]


def _active_groups(
    people: Sequence[Person], focus: StratumKey | None
) -> dict[StratumKey, list[Active]]:
    """The people in the total and their practice and time bank strata; person-months in the
    month strata."""
    groups: dict[StratumKey, list[Active]] = {TOTAL: []}
    for strata, by_month in people:
        if focus is not None and focus not in strata:
            continue
        whole = _over(strata, by_month.values())
        groups[TOTAL].append(whole)
        for stratum in strata:
            groups.setdefault(stratum, []).append(whole)
        for month, entry in by_month.items():
            stratum = (Stratifier.MONTH, month_key(month))
            groups.setdefault(stratum, []).append(_over(strata, (entry,)))
    return groups


def _over(strata: tuple[StratumKey, ...], months: Iterable[_Month]) -> Active:
    given = received = 0
    partners: set[str] = set()
    for month in months:
        given += month.given
        received += month.received
        partners |= month.partners
    return Active(strata, given, received, len(partners))


def _enrolled(rows: Sequence[EnrolmentRow], names: Names) -> list[Enrolled]:
    dated = [(as_utc(row[4]), row) for row in rows if row[4] is not None]
    chosen = first_per_person(dated, lambda d: d[1][1], lambda d: (d[0], d[1][0]))
    people = []
    for enrolled_at, (_, _, practice, timebank, _, first_gift) in chosen:
        day = enrolled_at.date()
        strata = (
            (Stratifier.PRACTICE, names.practice_key(practice)),
            (Stratifier.TIMEBANK, timebank_key(timebank)),
            (Stratifier.MONTH, month_key(day)),
        )
        people.append(Enrolled(strata, None if first_gift is None else (first_gift - day).days))
    return people


def _taking_part(people: Sequence[Active]) -> dict[str, Value]:
    given = sum(p.given for p in people)
    received = sum(p.received for p in people)
    return {
        "active-members": (float(len(people)), None, None),
        "hours-given": (given / MINUTES_PER_HOUR, None, None),
        "hours-received": (received / MINUTES_PER_HOUR, None, None),
        "reciprocity": (given / received if received else None, None, None),
        "network-reach": mean_ci([float(p.reach) for p in people]) or NO_VALUE,
    }


def _giving(people: Sequence[Enrolled]) -> dict[str, Value]:
    gifts = [float(p.days_to_first_gift) for p in people if p.days_to_first_gift is not None]
    return {
        "enrolled": (float(len(people)), None, None),
        "givers": (float(len(gifts)), None, None),
        "gave-time": (100 * len(gifts) / len(people) if people else None, None, None),
        "days-to-first-gift": median_iqr(gifts) or NO_VALUE,
    }
