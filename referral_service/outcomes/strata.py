"""Strata and raw cells, shared by the measure families (funnel.py, coproduction.py,
wellbeing_change.py): the keys and labels of each stratum, and `tabulate`, which computes every
figure of a family in every stratum the measure has people in. Pure.

Keys and labels: practice = its ODS code, "Name (ODS)"; time bank = its organisation id, its
name ("none": "Not placed with a time bank"); month = "YYYY-MM", "July 2026"; reason = the
rejection or decline code, its wording.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

from fhir_adapters.codes import DECLINE_REASONS
from fhir_adapters.measures import REJECTED_REASONS, Figure, Stratifier
from referral_service.outcomes.disclosure import TOTAL, TOTAL_LABEL, Raw, StratumKey

NOT_PLACED = "none"
NOT_PLACED_LABEL = "Not placed with a time bank"
UNKNOWN_REASON_LABEL = "Reason not recorded"

U = TypeVar("U")
# A figure's exact value in one stratum: (value, low, high); value None when there is nothing to
# compute it from.
Value = tuple[float | None, float | None, float | None]
NO_VALUE: Value = (None, None, None)
# All of a family's figures over the units of one stratum, by figure code (one pass each).
Summarise = Callable[[Sequence[U]], Mapping[str, Value]]


@dataclass(frozen=True, slots=True)
class Names:
    """What strata are called: practices by organisation id → (ODS code, name), time banks by
    organisation id → name."""

    practices: Mapping[str, tuple[str, str]]
    timebanks: Mapping[str, str]

    def practice_key(self, practice_id: str) -> str:
        found = self.practices.get(practice_id)
        return found[0] if found else practice_id

    def label(self, stratum: StratumKey) -> str:
        stratifier, key = stratum
        if stratifier is Stratifier.TOTAL:
            return TOTAL_LABEL
        if stratifier is Stratifier.PRACTICE:
            return self._practice_label(key)
        if stratifier is Stratifier.TIMEBANK:
            return NOT_PLACED_LABEL if key == NOT_PLACED else self.timebanks.get(key, key)
        if stratifier is Stratifier.MONTH:
            return month_label(key)
        return REJECTED_REASONS.get(key) or DECLINE_REASONS.get(key) or UNKNOWN_REASON_LABEL

    def _practice_label(self, ods: str) -> str:
        for code, name in self.practices.values():
            if code == ods:
                return f"{name} ({code})"
        return ods


class Keys:
    """The practice, time bank and month strata of rows, each built once (a report asks for them
    row by row)."""

    def __init__(self, names: Names) -> None:
        self._names = names
        self._places: dict[tuple[str, str | None], tuple[StratumKey, StratumKey]] = {}
        self._months: dict[tuple[int, int], StratumKey] = {}

    def place(self, practice_id: str, timebank_id: str | None) -> tuple[StratumKey, StratumKey]:
        found = self._places.get((practice_id, timebank_id))
        if found is None:
            found = self._places[(practice_id, timebank_id)] = (
                (Stratifier.PRACTICE, self._names.practice_key(practice_id)),
                (Stratifier.TIMEBANK, timebank_key(timebank_id)),
            )
        return found

    def month(self, day: date) -> StratumKey:
        """The stratum of the month `day` (a date or a UTC datetime) is in."""
        found = self._months.get((day.year, day.month))
        if found is None:
            found = self._months[(day.year, day.month)] = (Stratifier.MONTH, month_key(day))
        return found


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_label(key: str) -> str:
    return f"{date.fromisoformat(f'{key}-01'):%B %Y}"


def timebank_key(timebank_id: str | None) -> str:
    return timebank_id or NOT_PLACED


def bucket(
    units: Iterable[U], strata_of: Callable[[U], Iterable[StratumKey]]
) -> dict[StratumKey, list[U]]:
    """Units by stratum: every unit in the total and in each stratum `strata_of` names."""
    groups: dict[StratumKey, list[U]] = {TOTAL: []}
    for unit in units:
        groups[TOTAL].append(unit)
        for stratum in strata_of(unit):
            groups.setdefault(stratum, []).append(unit)
    return groups


def tabulate(
    figures: Sequence[Figure],
    groups: Mapping[StratumKey, Sequence[U]],
    strata: Iterable[StratumKey],
    summarise: Summarise[U],
    names: Names,
) -> list[Raw]:
    """Each figure in each of `strata` its stratifiers include (the total always), from the
    units `groups` holds there (none: the figures over no one). A family's reason strata are its
    own groups' (a rejection reason is no stratum of the declines)."""
    shared = [TOTAL, *(s for s in strata if s[0] is not Stratifier.REASON and s != TOTAL)]
    reasons = [s for s in groups if s[0] is Stratifier.REASON]
    raws: list[Raw] = []
    for stratum in (*shared, *reasons):
        stratifier, key = stratum
        wanted = [
            f for f in figures if stratifier is Stratifier.TOTAL or stratifier in f.stratifiers
        ]
        if not wanted:
            continue
        values, label = summarise(groups.get(stratum, ())), names.label(stratum)
        for figure in wanted:
            raws.append(Raw(figure.code, stratifier, key, label, *values[figure.code]))
    return raws


T = TypeVar("T")


def first_per_person(
    rows: Iterable[T], person: Callable[[T], str], order: Callable[[T], tuple[datetime, str]]
) -> list[T]:
    """Each person's first row by `order` (a time, then the referral id: a person counts once
    per measure)."""
    first: dict[str, tuple[tuple[datetime, str], T]] = {}
    for row in rows:
        who, rank = person(row), order(row)
        if who not in first or rank < first[who][0]:
            first[who] = (rank, row)
    return [row for _, row in first.values()]
