"""A referred member's wellbeing scores for the "Wellbeing" section of their time statement: the
score Observations SPIS derived from their questionnaires, read as the broker may read them, as
the first and latest of each score and the change between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import orjson

from fhir_adapters.summaries import ScoreSummary, score_summary
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.context import Context
from referral_service.ledger.models import Member
from referral_service.store import reads
from referral_service.web.ledger_display import day

SURVEY = "survey"  # the category of every score Observation (DESIGN §7)


@dataclass(frozen=True, slots=True)
class ScoreChange:
    """One score (a SWEMWBS metric, an ONS4 question...) over time: the first and the latest
    recorded, and the change between them (None until there are two)."""

    label: str
    first: ScoreSummary
    latest: ScoreSummary
    times: int
    change: float | None

    @property
    def first_on(self) -> str:
        return _day_of(self.first.date)

    @property
    def latest_on(self) -> str:
        return _day_of(self.latest.date)

    @property
    def first_value(self) -> str:
        return _value_text(self.first)

    @property
    def latest_value(self) -> str:
        return _value_text(self.latest)

    @property
    def change_text(self) -> str:
        """Signed ("+3.5", "-1", "0"); a dash until the score was recorded twice."""
        if self.change is None:
            return "–"
        return "0" if self.change == 0 else f"{self.change:+g}"


def wellbeing_of(ctx: Context, member: Member) -> list[ScoreChange]:
    """The referred member's score Observations, read as the broker may read them (searched
    `based-on` their referral, as the GP searches) and audited as that search."""
    if member.service_request_id is None:
        return []
    params = [
        ("based-on", f"ServiceRequest/{member.service_request_id}"),
        ("category", SURVEY),
        ("_sort", "_lastUpdated"),  # oldest first: an ONS4 response's scores in item order
        ("_count", str(ctx.settings.max_page_size)),
    ]
    found = reads.search(ctx, "Observation", params, strict=True)
    page = found.page
    if page is None:
        return []
    audit.record_read(ctx, page.matches, kind=Kind.SEARCH)
    audit.record_unreadable(ctx, page.unreadable, kind=Kind.SEARCH)
    shown = [orjson.loads(reads.present(ctx, row)) for row in page.matches]
    return _changes([score_summary(observation) for observation in shown])


def _changes(scores: Sequence[ScoreSummary]) -> list[ScoreChange]:
    by_label: dict[str, list[ScoreSummary]] = {}
    for score in sorted(scores, key=_when):
        if score.label is not None and score.value is not None:
            by_label.setdefault(score.label, []).append(score)
    changes = []
    for label, series in by_label.items():
        first, latest = series[0], series[-1]
        change = None
        if len(series) > 1 and first.value is not None and latest.value is not None:
            change = round(latest.value - first.value, 2)
        changes.append(ScoreChange(label, first, latest, len(series), change))
    return changes


_NEVER = datetime.min.replace(tzinfo=UTC)


def _when(score: ScoreSummary) -> datetime:
    """When the score was taken, for ordering; an unreadable date sorts first."""
    try:
        found = datetime.fromisoformat(score.date) if score.date else _NEVER
    except ValueError:
        return _NEVER
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _value_text(score: ScoreSummary) -> str:
    """SWEMWBS shows its metric score with the raw sum it came from."""
    value = f"{score.value:g}" if score.value is not None else ""
    return f"{value} (raw {score.raw_value:g})" if score.raw_value is not None else value


def _day_of(value: str | None) -> str:
    try:
        return day(date.fromisoformat(value[:10])) if value else ""
    except ValueError:
        return value or ""
