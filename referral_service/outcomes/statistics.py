"""The statistics a report publishes, and the precision each is published at. Pure.

- Mean with a 95% confidence interval: the t distribution with n − 1 degrees of freedom and the
  sample standard deviation (ddof = 1, two-pass, `math.fsum`), as `scipy.stats.t.interval(0.95, n - 1, loc=mean,
  scale=sd / sqrt(n))` computes it. The standard interval is cached per degrees of freedom and
  scaled the way scipy scales it (`a * scale + loc`), so the bounds are scipy's to the last bit.
  It comes from the function `scipy.stats.t` uses (`scipy.special.stdtrit`, at the tail
  probabilities `t.interval` computes), imported when first needed: importing scipy.stats would
  hold about 85 MB in every API worker, most of which never publishes a mean.
- Median and interquartile range: `statistics.quantiles(values, n=4, method="inclusive")` (the
  quartiles of the values themselves, as a spreadsheet's QUARTILE.INC gives them).
- Published precision (`PLACES`): hours 1 decimal, means and CIs 2, medians and IQRs 1, shares
  whole percent, ratios 2, money whole pounds. Rounding is half away from zero (a spreadsheet's
  ROUND), on the decimal value of the float as Python prints it: 2.25 → 2.3, −2.25 → −2.3.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Final

from fhir_adapters.measures import FigureKind

CONFIDENCE: Final = 0.95

PLACES: Final[dict[FigureKind, int]] = {
    FigureKind.COUNT: 0,
    FigureKind.HOURS: 1,
    FigureKind.MEAN: 2,
    FigureKind.MEDIAN: 1,
    FigureKind.SHARE: 0,
    FigureKind.RATIO: 2,
    FigureKind.MONEY: 0,
}


def published(value: float, kind: FigureKind) -> float:
    """`value` at the precision its kind is published at, rounded half away from zero."""
    exponent = Decimal(1).scaleb(-PLACES[kind])
    return float(Decimal(repr(value)).quantize(exponent, rounding=ROUND_HALF_UP))


@lru_cache(maxsize=512)
def _standard_interval(df: int) -> tuple[float, float]:
    """`scipy.stats.t.interval(CONFIDENCE, df)`, as it computes it."""
    from scipy.special import stdtrit

    low_tail, high_tail = (1.0 - CONFIDENCE) / 2, (1.0 + CONFIDENCE) / 2
    return float(stdtrit(df, low_tail)), float(stdtrit(df, high_tail))


def mean_ci(values: Sequence[float]) -> tuple[float, float | None, float | None] | None:
    """(mean, low, high) with the 95% t interval; the bounds are None for a single value, and
    equal the mean when every value is the same. None for no values."""
    n = len(values)
    if n == 0:
        return None
    mean = math.fsum(values) / n
    if n == 1:
        return mean, None, None
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in values) / (n - 1))
    if sd == 0:
        return mean, mean, mean
    a, b = _standard_interval(n - 1)
    scale = sd / math.sqrt(n)
    return mean, a * scale + mean, b * scale + mean


def median_iqr(values: Sequence[float]) -> tuple[float, float, float] | None:
    """(median, lower quartile, upper quartile), inclusive method; None for fewer than two."""
    if len(values) < 2:
        return None
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q1, q3
