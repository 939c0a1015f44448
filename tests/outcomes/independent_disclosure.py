"""An independent calculation of the health board figures, for tests only: disclosure control as
a reader of the published rules would apply it (../outcomes-contract.md, "Disclosure control").

- counts: 1–7 hidden (small-count), 0 shown, others rounded to the nearest 5;
- secondary suppression per count figure and stratifier row: a row with a hidden stratum has at
  least two, whose true values sum to more than their number; the smallest shown non-zero strata
  are added until that holds (ties: any of the equal ones — the test compares true values);
- statistics take their base count's pattern: hidden (small-n) when the base is hidden or its
  true n < 8; a share also needs its numerator shown and the complement not 1–7;
- the social value: each part hidden (inputs-suppressed) when a figure it rests on is hidden.

Values here are exact (unrounded); `PRECISION` is how many decimals each kind is published with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import pandas as pd
from scipy import stats

from fhir_adapters.measures import (
    COPRODUCTION,
    FUNNEL,
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    SOCIAL_VALUE,
    WELLBEING,
    FigureKind,
    MeasureDefinition,
    Stratifier,
    Suppression,
)
from referral_service.config import Settings
from tests.outcomes import independent_figures as figures
from tests.outcomes.independent import Raw
from tests.outcomes.independent_figures import Exact, Figures, Key
from tests.outcomes.independent_rows import Derived, derive

K = FigureKind
PRECISION = {K.HOURS: 1, K.MEAN: 2, K.MEDIAN: 1, K.SHARE: 0, K.RATIO: 2, K.MONEY: 0}


@dataclass(frozen=True)
class Published:
    value: float | None  # exact: a rounded count, or the unrounded statistic
    low: float | None = None
    high: float | None = None
    n: int | None = None  # the base count as published
    suppressed: Suppression | None = None
    exact: float | None = None  # the true count behind a count cell
    # Hidden to protect a small count: published as SMALL_COUNT like a small one, so only this
    # calculation knows which is which.
    protecting: bool = False


def small(count: int) -> bool:
    return 0 < count < MIN_COUNT


def rounded(count: int) -> int:
    return ROUND_TO * round(count / ROUND_TO)


def publish(definition: MeasureDefinition, found: Figures) -> dict[Key, Published]:
    out: dict[Key, Published] = {}
    for figure in definition.figures:
        if figure.kind is K.COUNT:
            out |= _counts(figure.code, {k: v for k, v in found.items() if k[0] == figure.code})
    for figure in definition.figures:
        if figure.kind in (K.COUNT, K.MONEY):
            continue
        for key, exact in found.items():
            if key[0] == figure.code:
                base = out[(str(figure.base), key[1], key[2])]
                numerator = out.get((str(figure.numerator), key[1], key[2]))
                out[key] = _statistic(figure.kind, exact, base, numerator, key)
    return out


def _counts(code: str, cells: dict[Key, Exact]) -> dict[Key, Published]:
    out = {
        key: Published(
            None if small(e.count) else rounded(e.count),
            suppressed=Suppression.SMALL_COUNT if small(e.count) else None,
            exact=e.count,
        )
        for key, e in cells.items()
    }
    for stratifier in {key[1] for key in cells} - {Stratifier.TOTAL}:
        row = {key: e.count for key, e in cells.items() if key[1] == stratifier and e.count > 0}
        hidden = [key for key in row if small(row[key])]
        if not hidden:
            continue
        shown = sorted((c, key[2], key) for key, c in row.items() if key not in hidden)
        while not (len(hidden) >= 2 and sum(row[k] for k in hidden) > len(hidden)) and shown:
            _, _, key = shown.pop(0)
            hidden.append(key)
            out[key] = Published(
                None, suppressed=Suppression.SMALL_COUNT, exact=row[key], protecting=True
            )
    return out


def _statistic(
    kind: FigureKind, exact: Exact, base: Published, numerator: Published | None, key: Key
) -> Published:
    n = exact.count
    if n == 0:  # no one: nothing to report, n as its base count publishes it (0)
        return Published(None, n=base.value)
    hidden = base.suppressed is not None or n < MIN_N
    if kind is K.SHARE:
        assert numerator is not None, key
        assert numerator.exact is not None, key
        hidden = hidden or numerator.suppressed is not None or small(n - numerator.exact)
    if hidden:
        return Published(None, n=base.value, suppressed=Suppression.SMALL_N)
    if kind is K.SHARE:
        assert numerator is not None
        assert numerator.exact is not None
        return Published(100 * numerator.exact / n, n=base.value)
    if kind is K.HOURS:
        minutes = exact.given if key[0].endswith("given") else exact.received
        return Published(minutes / 60, n=base.value)
    if kind is K.RATIO:
        value = exact.given / exact.received if exact.received else None
        return Published(value, n=base.value)
    series = pd.Series(exact.values, dtype=float)
    if kind is K.MEDIAN:
        q1, median, q3 = series.quantile([0.25, 0.5, 0.75]).tolist()
        return Published(median, q1, q3, n=base.value)
    mean, sd = float(series.mean()), float(series.std(ddof=1))
    if sd == 0:
        return Published(mean, mean, mean, n=base.value)
    low, high = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
    return Published(mean, float(low), float(high), n=base.value)


def social_value(
    coproduction: dict[Key, Published],
    coproduction_exact: Figures,
    wellbeing: dict[Key, Published],
    wellbeing_exact: Figures,
    per_hour_pence: int,
    wellby_pence: int,
    cost_pence: int | None,
) -> dict[str, Published]:
    """The estimate's parts in pounds, exact: hidden (inputs-suppressed) when a figure a part
    rests on is hidden; nothing to report when there is nothing it rests on (no one took part,
    no one has a life satisfaction pair), and then no total either; the ratio only with a cost."""
    total = (Stratifier.TOTAL, "")
    hours_cells = [coproduction[(code, *total)] for code in ("hours-given", "hours-received")]
    change_cell = wellbeing[("ons4-life-satisfaction-change", *total)]
    minutes = coproduction_exact[("hours-given", *total)]
    change = wellbeing_exact[("ons4-life-satisfaction-change", *total)]
    hours = _part(hours_cells, (minutes.given + minutes.received) / 60 * per_hour_pence / 100)
    lifted = _part([change_cell], sum(change.values) * wellby_pence / 100)
    value = _sum(hours, lifted)
    cost = Published(None if cost_pence is None else cost_pence / 100)
    if value.suppressed is not None:
        ratio = Published(None, suppressed=Suppression.INPUTS)
    else:
        ratio = Published(
            None if value.value is None or not cost.value else value.value / cost.value
        )
    return {
        "value-of-hours": hours,
        "value-of-wellbeing": lifted,
        "social-value": value,
        "programme-cost": cost,
        "social-return": ratio,
    }


def _part(cells: list[Published], pounds: float) -> Published:
    if any(c.suppressed is not None for c in cells):
        return Published(None, suppressed=Suppression.INPUTS)
    return Published(None if any(c.value is None for c in cells) else pounds)


def _sum(*parts: Published) -> Published:
    if any(p.suppressed is not None for p in parts):
        return Published(None, suppressed=Suppression.INPUTS)
    values = [p.value for p in parts]
    return Published(None if None in values else sum(v for v in values if v is not None))


def calculate(
    raw: Raw,
    settings: Settings,
    measure: MeasureDefinition,
    board_id: str,
    start: date,
    end: date,
    focus: str | None = None,
) -> tuple[Figures, dict[Key, Published]]:
    """One Measure's exact figures and what the rules publish, from the raw data; `focus`
    ("Organization/<id>" of a practice or time bank) narrows it to that stratum. The social
    value has no exact figures of its own: its parts rest on the other two measures'."""
    derived = _derived(raw, settings)
    refs = figures.board_referrals(raw, derived, board_id)
    narrow = _focus(raw, focus)
    if measure.id == SOCIAL_VALUE.id:
        hours = figures.coproduction(refs, derived, start, end, narrow)
        change = figures.wellbeing(refs, derived, start, end, settings, narrow)
        costs = raw.costs[
            (raw.costs["board_id"] == board_id)
            & (raw.costs["period_start"] == start)
            & (raw.costs["period_end"] == end)
        ]
        parts = social_value(
            publish(COPRODUCTION, hours),
            hours,
            publish(WELLBEING, change),
            change,
            settings.social_value_per_hour_pence,
            settings.wellby_value_pence,
            None if costs.empty or narrow else int(costs["amount_pence"].iloc[0]),
        )
        return {}, {(code, Stratifier.TOTAL, ""): cell for code, cell in parts.items()}
    family = {
        FUNNEL.id: lambda: figures.funnel(refs, derived, start, end, narrow),
        COPRODUCTION.id: lambda: figures.coproduction(refs, derived, start, end, narrow),
        WELLBEING.id: lambda: figures.wellbeing(refs, derived, start, end, settings, narrow),
    }
    found = family[measure.id]()
    return found, publish(measure, found)


_DERIVED: dict[int, tuple[Raw, Settings, Derived]] = {}


def _derived(raw: Raw, settings: Settings) -> Derived:
    """`derive`, once per raw data set and settings (a test module asks many reports of one)."""
    kept = _DERIVED.get(id(raw))
    if kept is None or kept[0] is not raw or kept[1] is not settings:
        kept = (raw, settings, derive(raw, settings))
        _DERIVED.clear()
        _DERIVED[id(raw)] = kept
    return kept[2]


def _focus(raw: Raw, focus: str | None) -> figures.Focus:
    if focus is None:
        return None
    org = raw.organisations.set_index("id").loc[focus.removeprefix("Organization/")]
    if org["kind"] == "practice":
        return ("practice", str(org["ods_code"]))
    return ("timebank", focus.removeprefix("Organization/"))
