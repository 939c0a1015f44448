"""A property-based test of disclosure control: random stratified tables (people spread over one
to three stratifiers, so every stratifier row is a partition of the total, with many small
counts) go through `disclose`, and an attacker then tries to recover each suppressed count.

The attacker is written here, independently of the product: they know the rules, and see every
published count exactly (conservatively: the protection rounding to 5 gives is ignored, as if
each shown cell and the total were published unrounded). For each row they know that the
suppressed strata are whole numbers of at least 1 summing to the total minus the shown strata;
a suppressed cell is recovered when that leaves it a single possible value."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from fhir_adapters.measures import (
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    Cell,
    Figure,
    FigureKind,
    MeasureDefinition,
    Stratifier,
    Suppression,
)
from referral_service.outcomes.disclosure import Raw, disclose

STRATIFIERS = (Stratifier.PRACTICE, Stratifier.TIMEBANK, Stratifier.MONTH)


@dataclass(frozen=True)
class Person:
    keys: tuple[int, ...]  # one stratum per stratifier in play
    yes: bool  # in the share's numerator
    score: float


SMALL = st.sampled_from([1, 1, 1, 2, 2, 3, 4, 5, 6, 7])
COUNT = SMALL | st.just(0) | st.integers(8, 12) | st.integers(8, 60)


@st.composite
def tables(draw: st.DrawFn) -> tuple[tuple[Stratifier, ...], list[Person]]:
    """People spread over 1 to 3 stratifiers: the first row's counts are drawn directly, each
    further row is another partition of the same people with several small strata."""
    used = draw(st.integers(1, 3))
    first = draw(st.lists(COUNT, min_size=1, max_size=6))
    total = sum(first)
    rows = [[key for key, size in enumerate(first) for _ in range(size)]]
    for _ in range(used - 1):
        parts: list[int] = []
        for part in draw(st.lists(SMALL | st.integers(8, 20), max_size=5)):
            if sum(parts) + part <= total:
                parts.append(part)
        parts.append(total - sum(parts))
        keys = [key for key, size in enumerate(parts) for _ in range(size)]
        rows.append(draw(st.permutations(keys)))
    yes = draw(st.lists(st.booleans() | st.just(True), min_size=total, max_size=total))
    scores = draw(st.lists(st.floats(-10, 10), min_size=total, max_size=total))
    people = [Person(tuple(row[i] for row in rows), yes[i], scores[i]) for i in range(total)]
    return STRATIFIERS[:used], people


def measure(stratifiers: tuple[Stratifier, ...]) -> MeasureDefinition:
    return MeasureDefinition(
        id="property",
        title="",
        description="",
        cohort="",
        figures=(
            Figure("people", "", FigureKind.COUNT, "{people}", "", stratifiers),
            Figure("mean", "", FigureKind.MEAN, "{score}", "", stratifiers, base="people"),
            Figure("yes", "", FigureKind.COUNT, "{people}", "", stratifiers),
            Figure(
                "share", "", FigureKind.SHARE, "%", "", stratifiers, base="people", numerator="yes"
            ),
        ),
    )


def raw_table(stratifiers: tuple[Stratifier, ...], people: list[Person]) -> list[Raw]:
    groups: dict[tuple[Stratifier, str], list[Person]] = {(Stratifier.TOTAL, ""): list(people)}
    for person in people:
        for stratifier, key in zip(stratifiers, person.keys, strict=True):
            groups.setdefault((stratifier, str(key)), []).append(person)
    found = []
    for (stratifier, key), group in groups.items():
        n, yes = len(group), sum(p.yes for p in group)
        mean = sum(p.score for p in group) / n if n else None
        found += [
            Raw("people", stratifier, key, key, n),
            Raw("yes", stratifier, key, key, yes),
            Raw("mean", stratifier, key, key, mean, None, None),
            Raw("share", stratifier, key, key, 100 * yes / n if n else None),
        ]
    return found


def recovered(cells: list[Cell], exact: dict[tuple[Stratifier, str], int]) -> list[str]:
    """The attacker: suppressed strata whose value the published row pins down."""
    total = next(c for c in cells if c.stratifier is Stratifier.TOTAL)
    if total.suppressed is not None:
        return []  # no exact sum to difference against
    found = []
    for stratifier in {c.stratifier for c in cells} - {Stratifier.TOTAL}:
        row = [c for c in cells if c.stratifier is stratifier]
        hidden = [c for c in row if c.suppressed is not None]
        if not hidden:
            continue
        known = sum(exact[(c.stratifier, c.key)] for c in row if c.suppressed is None)
        remainder = exact[(Stratifier.TOTAL, "")] - known  # what the hidden cells add up to
        for cell in hidden:
            others = len(hidden) - 1
            lowest = remainder if others == 0 else 1  # the others can absorb any excess
            highest = remainder - others  # the others at least 1 each
            actual = exact[(cell.stratifier, cell.key)]
            assert lowest <= actual <= highest  # the attacker's reasoning is sound
            if lowest == highest:
                found.append(f"{stratifier.value}={cell.key}")
    return found


@settings(max_examples=600, deadline=None)
@given(tables())
def test_no_suppressed_count_can_be_recovered_from_the_totals(
    table: tuple[tuple[Stratifier, ...], list[Person]],
) -> None:
    stratifiers, people = table
    raws = raw_table(stratifiers, people)
    cells = list(disclose(measure(stratifiers), raws))
    for figure in ("people", "yes"):
        exact = {(r.stratifier, r.key): int(r.value or 0) for r in raws if r.figure == figure}
        published = [c for c in cells if c.figure == figure]
        assert recovered(published, exact) == []


@settings(max_examples=300, deadline=None)
@given(tables())
def test_counts_are_rounded_small_ones_hidden_and_zeros_shown(
    table: tuple[tuple[Stratifier, ...], list[Person]],
) -> None:
    stratifiers, people = table
    raws = raw_table(stratifiers, people)
    exact = {(r.figure, r.stratifier, r.key): r.value for r in raws}
    for cell in disclose(measure(stratifiers), raws):
        if cell.figure not in ("people", "yes"):
            continue
        value = exact[(cell.figure, cell.stratifier, cell.key)]
        assert value is not None
        if 0 < value < MIN_COUNT:
            assert cell.suppressed is Suppression.SMALL_COUNT
        elif cell.suppressed is not None:
            assert cell.suppressed is Suppression.SECONDARY
            assert cell.stratifier is not Stratifier.TOTAL
            assert value >= MIN_COUNT  # only shown, non-zero strata are added
        else:
            assert cell.value is not None
            assert cell.value % ROUND_TO == 0
            assert abs(cell.value - value) <= ROUND_TO // 2
            assert (cell.value == 0) == (value == 0)


@settings(max_examples=300, deadline=None)
@given(tables())
def test_statistics_never_show_on_fewer_than_eight_people_or_a_hidden_count(
    table: tuple[tuple[Stratifier, ...], list[Person]],
) -> None:
    stratifiers, people = table
    raws = raw_table(stratifiers, people)
    cells = {(c.figure, c.stratifier, c.key): c for c in disclose(measure(stratifiers), raws)}
    exact = {(r.figure, r.stratifier, r.key): r.value or 0 for r in raws}
    for (figure, stratifier, key), cell in cells.items():
        if figure not in ("mean", "share"):
            continue
        n = exact[("people", stratifier, key)]
        base = cells[("people", stratifier, key)]
        if cell.value is None:
            assert cell.suppressed is Suppression.SMALL_N or n == 0
            continue
        assert n >= MIN_N
        assert base.suppressed is None
        assert cell.n == base.value
        if figure == "share":
            yes = exact[("yes", stratifier, key)]
            assert cells[("yes", stratifier, key)].suppressed is None
            assert not 0 < n - yes < MIN_COUNT
