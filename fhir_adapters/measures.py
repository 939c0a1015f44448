"""The outcome measures SPIS publishes for health boards (DESIGN §9), and the value types a report
is made of. Pure: the domain (`referral_service/outcomes`) computes `Report`s of these types;
`measure_report.py` turns the definitions into `Measure` resources and a `Report` into a
`MeasureReport` or CSV.

Four Measures, one per family of figures; each figure is a group of the Measure (and of its
MeasureReport), and each group is stratified by the practice (ODS code), the time bank (its name)
and the month, some also by reason. Every cell a report carries has passed disclosure control
(`referral_service/outcomes/disclosure.py`): a suppressed cell has no value, only the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Final

from fhir_adapters.codes import SPIS_CODESYSTEM_BASE

MEASURE_BASE: Final = "https://spis.example.org/fhir/Measure"
FIGURE_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/outcome-figure"
STRATIFIER_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/outcome-stratifier"
REJECTED_REASON_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/routing-rejection"

# The smallest count published (1..MIN_COUNT-1 are suppressed), the rounding base, and the fewest
# people a mean, median, share or ratio may rest on.
MIN_COUNT: Final = 8
ROUND_TO: Final = 5
MIN_N: Final = 8


class FigureKind(StrEnum):
    COUNT = "count"  # people (or events, where a figure says so): 1–7 suppressed, rounded to 5
    HOURS = "hours"  # a sum of time, shown when its people count is shown
    MEAN = "mean"  # low/high: the 95% confidence interval (t distribution)
    MEDIAN = "median"  # low/high: the interquartile range
    SHARE = "share"  # percent of the base count
    RATIO = "ratio"
    MONEY = "money"  # pounds sterling


class Stratifier(StrEnum):
    TOTAL = "total"  # the whole report: key ""
    PRACTICE = "practice"  # key: the practice's ODS code
    TIMEBANK = "timebank"  # key: the time bank's organisation id ("none": not placed)
    MONTH = "month"  # key: "YYYY-MM"
    REASON = "reason"  # key: a rejection or decline reason code


class Suppression(StrEnum):
    # A count of 1 to 7, or a count hidden with one so that it cannot be worked out from the
    # totals. Both are published alike: telling them apart would itself narrow a hidden count
    # (to 1–7, or to 8 and more) and, with a total, could give it away.
    SMALL_COUNT = "small-count"
    SMALL_N = "small-n"  # a statistic resting on fewer than 8 people, or on a hidden count
    INPUTS = "inputs-suppressed"  # an estimate built on a figure that is itself suppressed


@dataclass(frozen=True, slots=True)
class Figure:
    code: str  # the group code, unique within SPIS: "received", "swemwbs-change"
    title: str
    kind: FigureKind
    unit: str  # UCUM where one exists: "{people}", "h", "d", "%", "{score}", "1", "[GBP]"
    description: str
    # The strata besides the total; the total is always there.
    stratifiers: tuple[Stratifier, ...]
    # For a statistic: the count figure whose people it rests on (its n).
    base: str | None = None
    # For a share: the count figure it is a share of is `base`; `numerator` counts the people in it.
    numerator: str | None = None
    improvement: str | None = None  # "increase" or "decrease" where a direction is better


@dataclass(frozen=True, slots=True)
class MeasureDefinition:
    id: str
    title: str
    description: str
    # The cohort rules, as published in the Measure; the windows are settings, filled in by
    # `cohort_text` ({baseline_days}, {min_weeks}, {max_weeks}).
    cohort: str
    figures: tuple[Figure, ...]
    improvement: str | None = None  # Measure-level improvementNotation, where one applies

    @property
    def url(self) -> str:
        return f"{MEASURE_BASE}/{self.id}"

    def cohort_text(self, baseline_days: int, min_weeks: int, max_weeks: int) -> str:
        return self.cohort.format(
            baseline_days=baseline_days, min_weeks=min_weeks, max_weeks=max_weeks
        )

    def figure(self, code: str) -> Figure:
        for figure in self.figures:
            if figure.code == code:
                return figure
        raise KeyError(code)


@dataclass(frozen=True, slots=True)
class Cell:
    """One figure in one stratum, after disclosure control. `value` is what is published (a
    rounded count, hours, a mean, a median, a percent, a ratio, pounds); None when suppressed
    (`suppressed` says why) or when there is nothing to report (no one in the stratum, no
    programme cost entered: `suppressed` is None)."""

    figure: str
    stratifier: Stratifier
    key: str
    label: str
    value: float | None
    low: float | None = None
    high: float | None = None
    n: int | None = None  # the published (rounded) number of people behind a statistic
    suppressed: Suppression | None = None


@dataclass(frozen=True, slots=True)
class Assumption:
    """An input to an estimate, shown beside it: `code`, what it is, and its value as text."""

    code: str
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Report:
    measure: MeasureDefinition
    board_id: str
    board_name: str
    period_start: date  # inclusive
    period_end: date  # inclusive
    generated_at: datetime
    cells: tuple[Cell, ...]
    # "Organization/<id>" when the report is narrowed to one practice or time bank of the board.
    focus: str | None = None
    assumptions: tuple[Assumption, ...] = ()

    def cell(self, figure: str, stratifier: Stratifier = Stratifier.TOTAL, key: str = "") -> Cell:
        for cell in self.cells:
            if (cell.figure, cell.stratifier, cell.key) == (figure, stratifier, key):
                return cell
        raise KeyError((figure, stratifier, key))


# --- the catalogue ------------------------------------------------------------------------------

_PTM = (Stratifier.PRACTICE, Stratifier.TIMEBANK, Stratifier.MONTH)
_PTMR = (*_PTM, Stratifier.REASON)

# Wellbeing scales: (code, title, higher is better?)
SCALES: Final[tuple[tuple[str, str, bool], ...]] = (
    ("swemwbs", "SWEMWBS (metric score)", True),
    ("wemwbs", "WEMWBS", True),
    ("ons4-life-satisfaction", "ONS4 life satisfaction", True),
    ("ons4-worthwhile", "ONS4 worthwhile", True),
    ("ons4-happy", "ONS4 happiness", True),
    ("ons4-anxiety", "ONS4 anxiety", False),
    ("ucla3", "UCLA-3 loneliness", False),
)

REJECTED_REASONS: Final[dict[str, str]] = {
    "no-address": "SPIS could not read the patient's home postcode",
    "no-time-bank": "No time bank serving the area could take it",
    "consent-denies": "The patient's Consent did not permit any time bank that could take it",
}

FUNNEL = MeasureDefinition(
    id="spis-referral-funnel",
    title="Social prescribing referrals: from referral to completion",
    description=(
        "How the people a board's practices referred moved through social prescribing to time "
        "banks: received, routed to a time bank, accepted, first exchange of time, completed; "
        "referrals SPIS could not place and time banks' declines, by reason; days from referral "
        "to acceptance and to the first exchange (median and interquartile range)."
    ),
    cohort=(
        "People with a referral received in the period (the referral Task's authoredOn), each "
        "counted once, by their first referral received in the period; stages are as reached by "
        "the time of the report. Declines count time banks' answers: a referral declined by two "
        "time banks counts twice. Only referrals whose patient's Consent permits secondary use "
        "(HOPERAT or PUBHLTH) and who has no national data opt-out."
    ),
    figures=(
        Figure("received", "Referred", FigureKind.COUNT, "{people}", "People referred.", _PTM),
        Figure(
            "routed",
            "Routed to a time bank",
            FigureKind.COUNT,
            "{people}",
            "People whose referral SPIS sent to at least one time bank.",
            _PTM,
        ),
        Figure(
            "accepted",
            "Accepted by a time bank",
            FigureKind.COUNT,
            "{people}",
            "People whose referral a time bank accepted.",
            _PTM,
        ),
        Figure(
            "first-exchange",
            "First exchange of time",
            FigureKind.COUNT,
            "{people}",
            "People who, once enrolled, took part in at least one exchange.",
            _PTM,
        ),
        Figure(
            "completed",
            "Completed",
            FigureKind.COUNT,
            "{people}",
            "People whose referral was completed.",
            _PTM,
        ),
        Figure(
            "rejected",
            "Could not be placed",
            FigureKind.COUNT,
            "{people}",
            "People whose referral no time bank could take (rejected by SPIS), by reason.",
            _PTMR,
        ),
        Figure(
            "declined",
            "Declined by a time bank",
            FigureKind.COUNT,
            "{declines}",
            "Time banks' declines of these referrals, by the broker's reason code.",
            _PTMR,
        ),
        Figure(
            "days-to-acceptance",
            "Days from referral to acceptance",
            FigureKind.MEDIAN,
            "d",
            "Median, with the interquartile range, over the people accepted.",
            _PTM,
            base="accepted",
            improvement="decrease",
        ),
        Figure(
            "days-to-first-exchange",
            "Days from referral to first exchange",
            FigureKind.MEDIAN,
            "d",
            "Median, with the interquartile range, over the people with a first exchange.",
            _PTM,
            base="first-exchange",
            improvement="decrease",
        ),
    ),
)

COPRODUCTION = MeasureDefinition(
    id="spis-coproduction",
    title="Co-production: time given and received by referred people",
    description=(
        "What referred people gave as well as received: hours given and received, reciprocity "
        "(given ÷ received), network reach (distinct exchange partners), the share of newly "
        "enrolled people who gave time at all, and the days from enrolment to their first gift."
    ),
    cohort=(
        "Hours, reciprocity and network reach: referred members with at least one exchange dated "
        "in the period (reversed exchanges left out), by the month of the exchange; a person "
        "counts once per stratum, with all their referrals' hours. Giving: referred members "
        "enrolled in the period, by the month of enrolment, and whether they have given time "
        "since (as of the report). Only referrals whose Consent permits secondary use and whose "
        "patient has no national data opt-out."
    ),
    figures=(
        Figure(
            "active-members",
            "Referred members taking part",
            FigureKind.COUNT,
            "{people}",
            "Referred members with at least one exchange in the period.",
            _PTM,
        ),
        Figure(
            "hours-given",
            "Hours given",
            FigureKind.HOURS,
            "h",
            "Hours referred members gave to others.",
            _PTM,
            base="active-members",
            improvement="increase",
        ),
        Figure(
            "hours-received",
            "Hours received",
            FigureKind.HOURS,
            "h",
            "Hours referred members received from others.",
            _PTM,
            base="active-members",
        ),
        Figure(
            "reciprocity",
            "Reciprocity (given ÷ received)",
            FigureKind.RATIO,
            "1",
            "Hours given divided by hours received; 1 means as much given as received.",
            _PTM,
            base="active-members",
            improvement="increase",
        ),
        Figure(
            "network-reach",
            "Network reach (distinct partners)",
            FigureKind.MEAN,
            "{partners}",
            "Distinct exchange partners per referred member taking part (mean, 95% CI).",
            _PTM,
            base="active-members",
            improvement="increase",
        ),
        Figure(
            "enrolled",
            "Referred members enrolled",
            FigureKind.COUNT,
            "{people}",
            "People enrolled at a time bank from a referral in the period.",
            _PTM,
        ),
        Figure(
            "gave-time",
            "Gave time at all",
            FigureKind.SHARE,
            "%",
            "Share of the people enrolled who have given time since.",
            _PTM,
            base="enrolled",
            numerator="givers",
            improvement="increase",
        ),
        Figure(
            "givers",
            "Enrolled members who gave time",
            FigureKind.COUNT,
            "{people}",
            "People enrolled in the period who have given time since.",
            _PTM,
        ),
        Figure(
            "days-to-first-gift",
            "Days from enrolment to first gift",
            FigureKind.MEDIAN,
            "d",
            "Median, with the interquartile range, over the people who gave time.",
            _PTM,
            base="givers",
            improvement="decrease",
        ),
    ),
)


def _scale_figures(code: str, title: str, higher_is_better: bool) -> tuple[Figure, ...]:
    better = "increase" if higher_is_better else "decrease"
    return (
        Figure(
            f"{code}-pairs",
            f"{title}: people with baseline and follow-up",
            FigureKind.COUNT,
            "{people}",
            "People with a baseline and a follow-up score under the cohort rules.",
            _PTM,
        ),
        Figure(
            f"{code}-change",
            f"{title}: mean change",
            FigureKind.MEAN,
            "{score}",
            "Follow-up minus baseline, per person: the mean with its 95% confidence interval "
            "(t distribution)." + ("" if higher_is_better else " Lower scores are better."),
            _PTM,
            base=f"{code}-pairs",
            improvement=better,
        ),
        Figure(
            f"{code}-improved",
            f"{title}: meaningful improvement",
            FigureKind.SHARE,
            "%",
            "Share of the people whose score improved by at least the meaningful-change threshold.",
            _PTM,
            base=f"{code}-pairs",
            numerator=f"{code}-improved-count",
            improvement="increase",
        ),
        Figure(
            f"{code}-improved-count",
            f"{title}: people with a meaningful improvement",
            FigureKind.COUNT,
            "{people}",
            "People whose score improved by at least the threshold.",
            _PTM,
        ),
        Figure(
            f"{code}-declined",
            f"{title}: meaningful decline",
            FigureKind.SHARE,
            "%",
            "Share of the people whose score worsened by at least the threshold.",
            _PTM,
            base=f"{code}-pairs",
            numerator=f"{code}-declined-count",
            improvement="decrease",
        ),
        Figure(
            f"{code}-declined-count",
            f"{title}: people with a meaningful decline",
            FigureKind.COUNT,
            "{people}",
            "People whose score worsened by at least the threshold.",
            _PTM,
        ),
    )


WELLBEING = MeasureDefinition(
    id="spis-wellbeing-change",
    title="Wellbeing change of referred people",
    description=(
        "Change between a baseline and a follow-up score for SWEMWBS (metric score), WEMWBS, "
        "each ONS4 item and UCLA-3 loneliness: the mean change with a 95% confidence interval, "
        "and the shares with a meaningful improvement and a meaningful decline."
    ),
    cohort=(
        "Baseline: the first score within {baseline_days} days (either side) of enrolment at the "
        "time bank. Follow-up: the last score {min_weeks} to {max_weeks} weeks after the "
        "baseline. A person counts once per "
        "scale, with the first referral that has both; they are in the period whose dates hold "
        "their follow-up, and in the month of it. Only referrals whose Consent permits secondary "
        "use and whose patient has no national data opt-out; a withdrawal removes the person from "
        "every later report. Lower is better for ONS4 anxiety and UCLA-3."
    ),
    figures=tuple(f for scale in SCALES for f in _scale_figures(*scale)),
    improvement="increase",
)

SOCIAL_VALUE = MeasureDefinition(
    id="spis-social-value",
    title="Social value: an estimate",
    description=(
        "An estimate, not a measurement: the hours referred people gave and received valued at "
        "a price per hour, plus the change in ONS4 life satisfaction valued in WELLBYs (HM "
        "Treasury, Green Book supplementary guidance on wellbeing, 2021), beside the programme "
        "cost the board entered. The assumptions are in every report."
    ),
    cohort=(
        "The hours of the co-production measure and the ONS4 life satisfaction change of the "
        "wellbeing measure, for the same board and period; each part is shown only when the "
        "figures it rests on pass disclosure control, and the ratio only when both parts and a "
        "programme cost are there."
    ),
    figures=(
        Figure(
            "value-of-hours",
            "Value of hours exchanged",
            FigureKind.MONEY,
            "[GBP]",
            "(hours given + hours received) × value per hour.",
            (),
        ),
        Figure(
            "value-of-wellbeing",
            "Value of the wellbeing change",
            FigureKind.MONEY,
            "[GBP]",
            "Sum of the people's ONS4 life satisfaction change × the WELLBY value, assuming the "
            "change lasts one year.",
            (),
        ),
        Figure(
            "social-value",
            "Social value (estimate)",
            FigureKind.MONEY,
            "[GBP]",
            "Value of hours plus value of the wellbeing change.",
            (),
        ),
        Figure(
            "programme-cost",
            "Programme cost (entered by the board)",
            FigureKind.MONEY,
            "[GBP]",
            "What the board entered as the programme's cost for exactly this period.",
            (),
        ),
        Figure(
            "social-return",
            "Social value per pound spent",
            FigureKind.RATIO,
            "1",
            "Social value divided by the programme cost.",
            (),
            improvement="increase",
        ),
    ),
)

MEASURES: Final[dict[str, MeasureDefinition]] = {
    m.id: m for m in (FUNNEL, COPRODUCTION, WELLBEING, SOCIAL_VALUE)
}
