"""Wellbeing change (`WELLBEING`) before disclosure control, per scale: the people with a
baseline and a follow-up, their mean change with its 95% CI, and the shares with a meaningful
improvement and a meaningful decline.

Cohort: the baseline and follow-up pairs (chosen by the refresh, see models.OutcomeScore) whose
follow-up falls in [start, end]; per person and scale the first referral (by baseline time, then
referral id) with such a pair. Change = follow-up − baseline. Improved: the change is at least the
scale's meaningful-change threshold in the better direction (higher for SWEMWBS, WEMWBS and ONS4
life satisfaction, worthwhile and happiness; lower for ONS4 anxiety and UCLA-3), compared as
`round(abs(change), 6) >= threshold` like fhir_adapters.wellbeing; declined: the same the other
way. Strata: the referral's practice and time bank, and the month of the follow-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from fhir_adapters.measures import SCALES, WELLBEING, Figure, Stratifier
from referral_service.kit.clock import as_utc
from referral_service.outcomes.disclosure import Raw, StratumKey
from referral_service.outcomes.report_repository import ScoreRow
from referral_service.outcomes.statistics import mean_ci
from referral_service.outcomes.strata import (
    Names,
    Value,
    bucket,
    first_per_person,
    month_key,
    tabulate,
    timebank_key,
)

HIGHER_IS_BETTER = {code: better for code, _, better in SCALES}
SCALE_CODES = tuple(HIGHER_IS_BETTER)


@dataclass(frozen=True, slots=True)
class Pair:
    strata: tuple[StratumKey, ...]
    change: float
    improved: bool
    declined: bool


def pairs(rows: Sequence[ScoreRow], scale: str, threshold: float, names: Names) -> list[Pair]:
    """One pair per person for `scale` (rows of other scales are left out)."""
    better = 1 if HIGHER_IS_BETTER[scale] else -1
    candidates: list[tuple[datetime, str, str, Pair]] = []
    for referral, patient, practice, timebank, of, baseline, baseline_at, after, when in rows:
        if of != scale or after is None or when is None:
            continue
        change = after - baseline
        meaningful = round(abs(change), 6) >= threshold
        strata = (
            (Stratifier.PRACTICE, names.practice_key(practice)),
            (Stratifier.TIMEBANK, timebank_key(timebank)),
            (Stratifier.MONTH, month_key(as_utc(when).date())),
        )
        pair = Pair(
            strata, change, meaningful and change * better > 0, meaningful and change * better < 0
        )
        candidates.append((as_utc(baseline_at), referral, patient, pair))
    chosen = first_per_person(candidates, lambda c: c[2], lambda c: (c[0], c[1]))
    return [pair for *_, pair in chosen]


def raws(
    rows: Sequence[ScoreRow],
    thresholds: Mapping[str, float],
    names: Names,
    focus: StratumKey | None,
    scales: Sequence[str] = SCALE_CODES,
) -> list[Raw]:
    """Every figure of `scales` in every stratum, exact; each scale has the strata of all."""
    groups: dict[str, dict[StratumKey, list[Pair]]] = {}
    for scale in scales:
        found = [
            p
            for p in pairs(rows, scale, thresholds[scale], names)
            if focus is None or focus in p.strata
        ]
        groups[scale] = bucket(found, lambda p: p.strata)
    strata = list(dict.fromkeys(s for by_stratum in groups.values() for s in by_stratum))
    return [
        raw
        for scale in scales
        for raw in tabulate(_figures(scale), groups[scale], strata, _compute, names)
    ]


def _figures(scale: str) -> list[Figure]:
    return [f for f in WELLBEING.figures if f.code.startswith(f"{scale}-")]


def _compute(figure: Figure, people: Sequence[Pair]) -> Value:
    suffix = figure.code.rpartition("-")[2]
    improved = sum(1 for p in people if p.improved)
    declined = sum(1 for p in people if p.declined)
    if figure.code.endswith("-pairs"):
        return float(len(people)), None, None
    if figure.code.endswith("-improved-count"):
        return float(improved), None, None
    if figure.code.endswith("-declined-count"):
        return float(declined), None, None
    if suffix in ("improved", "declined"):
        share = improved if suffix == "improved" else declined
        return (100 * share / len(people) if people else None), None, None
    found = mean_ci([p.change for p in people])
    return (None, None, None) if found is None else found
