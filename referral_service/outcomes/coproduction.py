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
from typing import NamedTuple

from fhir_adapters.measures import COPRODUCTION
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
    Keys,
    Names,
    Value,
    bucket,
    first_per_person,
    tabulate,
)

MINUTES_PER_HOUR = 60
_HOURS = {"active-members", "hours-given", "hours-received", "reciprocity"}
_ACTIVE = {*_HOURS, "network-reach"}


class Active(NamedTuple):
    """A person taking part, over the period (or over one month, in a month stratum)."""

    given: int  # minutes
    received: int
    reach: int  # distinct partners


@dataclass(frozen=True, slots=True)
class Enrolled:
    strata: tuple[StratumKey, ...]
    days_to_first_gift: int | None  # None: has not given time


@dataclass(slots=True)
class _Month:
    """A person's month: minutes, and each of their referrals' partners (PARTNER_SEPARATOR-joined,
    as the activity rows carry them)."""

    given: int = 0
    received: int = 0
    met: list[str] = field(default_factory=list)


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
    active = _active_groups(activity, names, focus)
    enrolled = [e for e in _enrolled(enrolments, names) if focus is None or focus in e.strata]
    giving = bucket(enrolled, lambda e: e.strata)
    strata = [*active, *(s for s in giving if s not in active)]
    figures = COPRODUCTION.figures
    return [
        *tabulate([f for f in figures if f.code in _ACTIVE], active, strata, _taking_part, names),
        *tabulate([f for f in figures if f.code not in _ACTIVE], giving, strata, _giving, names),
    ]


def hours_total(
    activity: Sequence[ActivityRow], names: Names, focus: StratumKey | None
) -> list[Raw]:
    """The people taking part and their hours, in the total only (what the social value needs):
    the same cells as `raws` there."""
    places = _places(activity, Keys(names))
    found = [
        _over(by_month.values())
        for patient, by_month in _months(activity).items()
        if focus is None or focus in places[patient]
    ]
    figures = [f for f in COPRODUCTION.figures if f.code in _HOURS]
    return tabulate(figures, {TOTAL: found}, [TOTAL], _hours, names)


def _active_groups(
    activity: Sequence[ActivityRow], names: Names, focus: StratumKey | None
) -> dict[StratumKey, list[Active]]:
    """The people in the total and their practice and time bank strata; person-months in the
    month strata."""
    keys = Keys(names)
    places = _places(activity, keys)
    groups: dict[StratumKey, list[Active]] = {TOTAL: []}
    for patient, by_month in _months(activity).items():
        strata = places[patient]
        if focus is not None and focus not in strata:
            continue
        whole = _over(by_month.values())
        for stratum in (TOTAL, *strata):
            groups.setdefault(stratum, []).append(whole)
        for month, entry in by_month.items():
            groups.setdefault(keys.month(month), []).append(_over((entry,)))
    return groups


def _months(activity: Sequence[ActivityRow]) -> dict[str, dict[date, _Month]]:
    """Each person's activity month by month."""
    months: dict[str, dict[date, _Month]] = {}
    for _, patient, _, _, _, month, given, got, met in activity:
        by_month = months.get(patient)
        if by_month is None:
            by_month = months[patient] = {}
        entry = by_month.get(month)
        if entry is None:
            entry = by_month[month] = _Month()
        entry.given += given
        entry.received += got
        if met:
            entry.met.append(met)
    return months


def _places(
    activity: Sequence[ActivityRow], keys: Keys
) -> dict[str, tuple[StratumKey, StratumKey]]:
    """Each person's practice and time bank strata: their earliest referral with activity (by
    received time, then id)."""
    first: dict[str, tuple[datetime, str, str, str | None]] = {}
    for referral, patient, practice, timebank, received, _, _, _, _ in activity:
        known = first.get(patient)
        if known is None or (received, referral) < known[:2]:
            first[patient] = (received, referral, practice, timebank)
    return {patient: keys.place(*row[2:]) for patient, row in first.items()}


def _over(months: Iterable[_Month]) -> Active:
    given = received = 0
    met: list[str] = []
    for month in months:
        given += month.given
        received += month.received
        met += month.met
    partners = set(PARTNER_SEPARATOR.join(met).split(PARTNER_SEPARATOR)) if met else set()
    return Active(given, received, len(partners))


def _enrolled(rows: Sequence[EnrolmentRow], names: Names) -> list[Enrolled]:
    dated = [(as_utc(row[4]), row) for row in rows if row[4] is not None]
    chosen = first_per_person(dated, lambda d: d[1][1], lambda d: (d[0], d[1][0]))
    keys, people = Keys(names), []
    for enrolled_at, (_, _, practice, timebank, _, first_gift) in chosen:
        day = enrolled_at.date()
        strata = (*keys.place(practice, timebank), keys.month(day))
        people.append(Enrolled(strata, None if first_gift is None else (first_gift - day).days))
    return people


def _taking_part(people: Sequence[Active]) -> dict[str, Value]:
    return {
        **_hours(people),
        "network-reach": mean_ci([float(p.reach) for p in people]) or NO_VALUE,
    }


def _hours(people: Sequence[Active]) -> dict[str, Value]:
    given = sum(p.given for p in people)
    received = sum(p.received for p in people)
    return {
        "active-members": (float(len(people)), None, None),
        "hours-given": (given / MINUTES_PER_HOUR, None, None),
        "hours-received": (received / MINUTES_PER_HOUR, None, None),
        "reciprocity": (given / received if received else None, None, None),
    }


def _giving(people: Sequence[Enrolled]) -> dict[str, Value]:
    gifts = [float(p.days_to_first_gift) for p in people if p.days_to_first_gift is not None]
    return {
        "enrolled": (float(len(people)), None, None),
        "givers": (float(len(gifts)), None, None),
        "gave-time": (100 * len(gifts) / len(people) if people else None, None, None),
        "days-to-first-gift": median_iqr(gifts) or NO_VALUE,
    }
