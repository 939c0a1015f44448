"""The social value estimate (`SOCIAL_VALUE`): its cells and the assumptions shown beside them.

- Value of hours = (hours given + hours received by the people taking part, exact) × the value
  of an hour (`social_value_per_hour_pence`, on `social_value_per_hour_basis`).
- Value of the wellbeing change = the sum over people of their ONS4 life satisfaction change
  (the mean × the exact number of people) × the WELLBY value (`wellby_value_pence`, HM Treasury
  Green Book supplementary guidance on wellbeing, 2021, in `wellby_price_year` prices), assuming
  the change lasts one year.
- Social value = the two values as published (whole pounds) added; the ratio = social value ÷
  the programme cost the board entered for exactly this period, both as published.

Each part rests on the co-production and wellbeing figures of the same board, period and focus
after disclosure control: a part whose figures are suppressed is itself suppressed (`INPUTS`), and
so is what rests on it; a part with no one behind it, or a cost not entered, leaves its cell
empty. A focused report shows no cost and no ratio: the cost is the whole programme's.
"""

from __future__ import annotations

from collections.abc import Sequence

from fhir_adapters.measures import (
    COPRODUCTION,
    SOCIAL_VALUE,
    WELLBEING,
    Assumption,
    Cell,
    MeasureDefinition,
    Stratifier,
)
from referral_service.config import Settings
from referral_service.outcomes import report_repository as repository
from referral_service.outcomes.disclosure import Raw, disclose, estimate
from referral_service.outcomes.figures import Scope, change_raws, hours_raws

LIFE_SATISFACTION = "ons4-life-satisfaction"
WELLBY_SOURCE = "HM Treasury Green Book supplementary guidance: wellbeing (2021)"
PENCE = 100


def cells(scope: Scope) -> tuple[tuple[Cell, ...], tuple[Assumption, ...]]:
    """The five money cells, in the Measure's order, and the assumptions behind them."""
    settings = scope.settings
    hours = _totals(hours_raws(scope))
    changes = _totals(change_raws(scope, LIFE_SATISFACTION))
    hour_cells = _published(COPRODUCTION, hours)
    change_cells = _published(WELLBEING, changes)
    of_hours = estimate(
        SOCIAL_VALUE.figure("value-of-hours"),
        _value_of_hours(hours, settings),
        [hour_cells["hours-given"], hour_cells["hours-received"]],
    )
    of_wellbeing = estimate(
        SOCIAL_VALUE.figure("value-of-wellbeing"),
        _value_of_wellbeing(changes, settings),
        [change_cells[f"{LIFE_SATISFACTION}-change"]],
    )
    social = estimate(
        SOCIAL_VALUE.figure("social-value"),
        _added(of_hours, of_wellbeing),
        [of_hours, of_wellbeing],
    )
    cost = _cost(scope)
    social_return = estimate(
        SOCIAL_VALUE.figure("social-return"), _ratio(social, cost), [social, cost]
    )
    return (of_hours, of_wellbeing, social, cost, social_return), assumptions(
        settings, focused=scope.focus is not None
    )


def _totals(raws: Sequence[Raw]) -> dict[str, Raw]:
    return {raw.figure: raw for raw in raws if raw.stratifier is Stratifier.TOTAL}


def _published(measure: MeasureDefinition, totals: dict[str, Raw]) -> dict[str, Cell]:
    return {cell.figure: cell for cell in disclose(measure, totals.values())}


def _value_of_hours(hours: dict[str, Raw], settings: Settings) -> float | None:
    given, received = hours["hours-given"].value, hours["hours-received"].value
    if given is None or received is None:
        return None
    return (given + received) * settings.social_value_per_hour_pence / PENCE


def _value_of_wellbeing(changes: dict[str, Raw], settings: Settings) -> float | None:
    mean = changes[f"{LIFE_SATISFACTION}-change"].value
    people = changes[f"{LIFE_SATISFACTION}-pairs"].value
    if mean is None or people is None:
        return None
    return mean * people * settings.wellby_value_pence / PENCE


def _added(*parts: Cell) -> float | None:
    total = 0.0
    for part in parts:
        if part.value is None:
            return None
        total += part.value
    return total


def _cost(scope: Scope) -> Cell:
    pence = None
    if scope.focus is None:
        pence = repository.programme_cost(scope.session, scope.board_id, scope.start, scope.end)
    figure = SOCIAL_VALUE.figure("programme-cost")
    return estimate(figure, None if pence is None else pence / PENCE, [])


def _ratio(social: Cell, cost: Cell) -> float | None:
    if social.value is None or not cost.value:
        return None
    return social.value / cost.value


def pounds(pence: int) -> str:
    """£12.21, £13,000: pence shown only when there are some."""
    whole, part = divmod(pence, PENCE)
    return f"£{whole:,}" if part == 0 else f"£{whole:,}.{part:02d}"


def assumptions(settings: Settings, *, focused: bool = False) -> tuple[Assumption, ...]:
    found: tuple[Assumption, ...] = (
        Assumption(
            "value-per-hour",
            "Value of an hour given or received",
            f"{pounds(settings.social_value_per_hour_pence)} ({settings.social_value_per_hour_basis})",
        ),
        Assumption(
            "hours-counted",
            "Hours counted",
            "Hours given plus hours received by referred members taking part in the period; an "
            "hour exchanged between two referred members counts for both of them",
        ),
        Assumption(
            "wellby-value",
            "Value of one WELLBY (one point of life satisfaction on the 0 to 10 scale, for one "
            "person, for one year)",
            pounds(settings.wellby_value_pence),
        ),
        Assumption(
            "wellby-price-year", "Price year of the WELLBY value", str(settings.wellby_price_year)
        ),
        Assumption("wellby-source", "Source of the WELLBY value", WELLBY_SOURCE),
        Assumption(
            "duration",
            "How long a change in life satisfaction is assumed to last",
            "One year, with no discounting",
        ),
        Assumption(
            "estimate",
            "What these figures are",
            "An estimate built on the assumptions above, not a measurement. Each part is shown "
            "only when the figures it rests on pass disclosure control.",
        ),
    )
    if focused:
        found += (
            Assumption(
                "programme-cost",
                "Programme cost",
                "The cost a board enters is its whole programme's, so a report narrowed to one "
                "practice or time bank shows no cost and no social value per pound",
            ),
        )
    return found
