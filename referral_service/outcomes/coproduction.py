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
from datetime import date, timedelta

from fhir_adapters.measures import COPRODUCTION, Figure, Stratifier
from referral_service.kit.clock import as_utc
from referral_service.outcomes.disclosure import Raw, StratumKey
from referral_service.outcomes.report_repository import ActivityRow, EnrolmentRow
from referral_service.outcomes.statistics import mean_ci, median_iqr
from referral_service.outcomes.strata import (
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
    partners: Sequence[tuple[str, date, str]],
    enrolments: Sequence[EnrolmentRow],
    names: Names,
    focus: StratumKey | None,
) -> list[Raw]:
    """Every co-production figure in every stratum, exact."""
    active = _active_groups(activity, partners, names, focus)
    enrolled = [e for e in _enrolled(enrolments, names) if focus is None or focus in e.strata]
    giving = bucket(enrolled, lambda e: e.strata)
    strata = [*active, *(s for s in giving if s not in active)]
    figures = COPRODUCTION.figures
    return [
        *tabulate([f for f in figures if f.code in _ACTIVE], active, strata, _active, names),
        *tabulate([f for f in figures if f.code not in _ACTIVE], giving, strata, _giving, names),
    ]


def active_people(
    activity: Sequence[ActivityRow],
    partners: Sequence[tuple[str, date, str]],
    names: Names,
) -> dict[str, tuple[tuple[StratumKey, ...], dict[date, _Month]]]:
    """Per person: their practice and time bank strata, and their activity month by month."""
    first = {
        row[1]: row
        for row in first_per_person(activity, lambda r: r[1], lambda r: (as_utc(r[4]), r[0]))
    }
    patient_of = {row[0]: row[1] for row in activity}
    months: dict[str, dict[date, _Month]] = {}
    for _, patient, _, _, _, month, given, received in activity:
        entry = months.setdefault(patient, {}).setdefault(month, _Month())
        entry.given += given
        entry.received += received
    for referral, month, partner in partners:
        months[patient_of[referral]][month].partners.add(partner)
    return {
        patient: (_strata(first[patient], names), by_month) for patient, by_month in months.items()
    }


def _strata(row: ActivityRow, names: Names) -> tuple[StratumKey, ...]:
    return (
        (Stratifier.PRACTICE, names.practice_key(row[2])),
        (Stratifier.TIMEBANK, timebank_key(row[3])),
    )


def _active_groups(
    activity: Sequence[ActivityRow],
    partners: Sequence[tuple[str, date, str]],
    names: Names,
    focus: StratumKey | None,
) -> dict[StratumKey, list[Active]]:
    people = [
        (strata, by_month)
        for strata, by_month in active_people(activity, partners, names).values()
        if focus is None or focus in strata
    ]
    groups = bucket((_over(strata, by_month.values()) for strata, by_month in people), _own)
    for strata, by_month in people:
        for month, entry in by_month.items():
            stratum = (Stratifier.MONTH, month_key(month))
            groups.setdefault(stratum, []).append(_over(strata, [entry]))
    return groups


def _own(person: Active) -> tuple[StratumKey, ...]:
    return person.strata


def _over(strata: tuple[StratumKey, ...], months: Iterable[_Month]) -> Active:
    entries = list(months)
    partners: set[str] = set().union(*(m.partners for m in entries))
    return Active(
        strata,
        sum(m.given for m in entries),
        sum(m.received for m in entries),
        len(partners),
    )


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


def _active(figure: Figure, people: Sequence[Active]) -> Value:
    given = sum(p.given for p in people)
    received = sum(p.received for p in people)
    if figure.code == "active-members":
        return float(len(people)), None, None
    if figure.code == "hours-given":
        return given / MINUTES_PER_HOUR, None, None
    if figure.code == "hours-received":
        return received / MINUTES_PER_HOUR, None, None
    if figure.code == "reciprocity":
        return (given / received if received else None), None, None
    found = mean_ci([float(p.reach) for p in people])
    return (None, None, None) if found is None else found


def _giving(figure: Figure, people: Sequence[Enrolled]) -> Value:
    gifts = [p.days_to_first_gift for p in people if p.days_to_first_gift is not None]
    if figure.code == "enrolled":
        return float(len(people)), None, None
    if figure.code == "givers":
        return float(len(gifts)), None, None
    if figure.code == "gave-time":
        return (100 * len(gifts) / len(people) if people else None), None, None
    found = median_iqr([float(days) for days in gifts])
    return (None, None, None) if found is None else found
