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
from datetime import datetime
from functools import partial
from typing import NamedTuple

from fhir_adapters.measures import SCALES, WELLBEING, Figure
from referral_service.kit.clock import as_utc
from referral_service.outcomes.disclosure import TOTAL, Raw, StratumKey
from referral_service.outcomes.report_repository import ScoreRow
from referral_service.outcomes.statistics import mean_ci
from referral_service.outcomes.strata import NO_VALUE, Keys, Names, Value, bucket, tabulate

HIGHER_IS_BETTER = {code: better for code, _, better in SCALES}
SCALE_CODES = tuple(HIGHER_IS_BETTER)


class Pair(NamedTuple):
    strata: tuple[StratumKey, ...]
    change: float
    improved: bool
    declined: bool


def pairs(
    rows: Sequence[ScoreRow], thresholds: Mapping[str, float], names: Names
) -> dict[str, list[Pair]]:
    """One pair per person and scale, by scale: the person's first by baseline time (then
    referral id)."""
    first: dict[tuple[str, str], tuple[tuple[datetime, str], Pair]] = {}
    keys = Keys(names)
    for referral, patient, practice, timebank, scale, baseline, baseline_at, after, when in rows:
        if after is None or when is None:
            continue
        rank = (baseline_at, referral)
        known = first.get((scale, patient))
        if known is not None and known[0] <= rank:
            continue
        strata = (*keys.place(practice, timebank), keys.month(as_utc(when)))
        change = after - baseline
        better = change if HIGHER_IS_BETTER[scale] else -change
        meaningful = round(abs(change), 6) >= thresholds[scale]
        pair = Pair(strata, change, meaningful and better > 0, meaningful and better < 0)
        first[(scale, patient)] = (rank, pair)
    by_scale: dict[str, list[Pair]] = {}
    for (scale, _), (_, pair) in first.items():
        by_scale.setdefault(scale, []).append(pair)
    return by_scale


def raws(
    rows: Sequence[ScoreRow],
    thresholds: Mapping[str, float],
    names: Names,
    focus: StratumKey | None,
    scales: Sequence[str] = SCALE_CODES,
) -> list[Raw]:
    """Every figure of `scales` in every stratum, exact; each scale has the strata of all."""
    by_scale = pairs(rows, thresholds, names)
    groups: dict[str, dict[StratumKey, list[Pair]]] = {}
    for scale in scales:
        found = [p for p in by_scale.get(scale, ()) if focus is None or focus in p.strata]
        groups[scale] = bucket(found, lambda p: p.strata)
    strata = list(dict.fromkeys(s for by_stratum in groups.values() for s in by_stratum))
    return [
        raw
        for scale in scales
        for raw in tabulate(
            _figures(scale), groups[scale], strata, partial(_summarise, scale), names
        )
    ]


def total(
    rows: Sequence[ScoreRow],
    thresholds: Mapping[str, float],
    names: Names,
    focus: StratumKey | None,
    scale: str,
) -> list[Raw]:
    """The figures of `scale` in the total only (what the social value needs): the same cells as
    `raws` there."""
    found = [
        p
        for p in pairs(rows, thresholds, names).get(scale, ())
        if focus is None or focus in p.strata
    ]
    return tabulate(_figures(scale), {TOTAL: found}, [TOTAL], partial(_summarise, scale), names)


def _figures(scale: str) -> list[Figure]:
    return [f for f in WELLBEING.figures if f.code.startswith(f"{scale}-")]


def _summarise(scale: str, people: Sequence[Pair]) -> dict[str, Value]:
    n = len(people)
    improved = sum(1 for p in people if p.improved)
    declined = sum(1 for p in people if p.declined)
    return {
        f"{scale}-pairs": (float(n), None, None),
        f"{scale}-change": mean_ci([p.change for p in people]) or NO_VALUE,
        f"{scale}-improved": (100 * improved / n if n else None, None, None),
        f"{scale}-improved-count": (float(improved), None, None),
        f"{scale}-declined": (100 * declined / n if n else None, None, None),
        f"{scale}-declined-count": (float(declined), None, None),
    }
