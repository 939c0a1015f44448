"""What came back to the practice for a referral: the activities the person took part in (with
the hours given and received) and their wellbeing scores, first to latest.

Shown only when the consent domain says the person permits share-back to this practice; then
read as the practice through the store, whose grants hold exactly what share-back allows. A
reversed exchange (its Procedure and hours recorded in error) is listed as withdrawn and left
out of the totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_adapters.ledger import Direction
from fhir_adapters.summaries import (
    activity_summary,
    hours_part_of,
    in_error,
    score_summary,
)
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.store import reads
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.web.ledger_display import hours_text
from referral_service.web.practice_status import display_date


@dataclass(frozen=True, slots=True)
class Activity:
    date: str
    activity: str
    direction: str  # "Given" or "Received"
    time: str  # "1 hour 30 minutes"
    withdrawn: bool


@dataclass(frozen=True, slots=True)
class Score:
    label: str
    first: str
    first_date: str
    latest: str
    latest_date: str
    change: str | None  # None while there is only one score


@dataclass(frozen=True, slots=True)
class CameBack:
    shared: bool
    activities: list[Activity] = field(default_factory=list)
    given: str = ""
    received: str = ""
    scores: list[Score] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.activities or self.scores)


def came_back(
    ctx: Context, tenant: str, patient_ref: str, request_ref: str
) -> tuple[CameBack, list[StoredResource]]:
    """What to show, and the rows shown (for the audit trail)."""
    recipient = f"Organization/{tenant}"
    if not decide(ctx, tenant, patient_ref, Purpose.SHARE_BACK, recipient).permitted:
        return CameBack(shared=False), []
    procedures = _based_on(ctx, "Procedure", request_ref)
    observations = _based_on(ctx, "Observation", request_ref)
    hours = {ref: row for row in observations if (ref := hours_part_of(_json(row)))}
    scores = [row for row in observations if _is_score(row)]
    activities, given, received = _activities(procedures, hours)
    shown = [*procedures, *hours.values(), *scores]
    back = CameBack(True, activities, hours_text(given), hours_text(received), _scores(scores))
    return back, shown


def _based_on(ctx: Context, rtype: str, request_ref: str) -> list[StoredResource]:
    params = [("based-on", request_ref), ("_count", str(ctx.settings.max_page_size))]
    page = reads.search(ctx, rtype, params, strict=True).page
    return page.matches if page is not None else []


def _json(row: StoredResource) -> dict[str, Any]:
    return resources.as_dict(row)


def _is_score(row: StoredResource) -> bool:
    data = _json(row)
    return not in_error(data) and score_summary(data).instrument is not None


def _activities(
    procedures: Sequence[StoredResource], hours: dict[str, StoredResource]
) -> tuple[list[Activity], int, int]:
    activities: list[tuple[str, Activity]] = []
    totals = {Direction.GIVEN.value: 0, Direction.RECEIVED.value: 0}
    for row in procedures:
        procedure, hours_row = _json(row), hours.get(f"Procedure/{row.id}")
        time = _json(hours_row) if hours_row is not None else None
        summary = activity_summary(procedure, time)
        withdrawn = in_error(procedure) or (time is not None and in_error(time))
        if not withdrawn and summary.direction in totals:
            totals[summary.direction] += summary.minutes or 0
        activity = Activity(
            date=display_date(summary.date),
            activity=summary.activity_label or summary.activity or "Activity",
            direction=(summary.direction or "").capitalize(),
            time=hours_text(summary.minutes) if summary.minutes is not None else "",
            withdrawn=withdrawn,
        )
        activities.append((summary.date or "", activity))
    ordered = [a for _, a in sorted(activities, key=lambda pair: pair[0])]
    return ordered, totals[Direction.GIVEN.value], totals[Direction.RECEIVED.value]


def _scores(rows: Sequence[StoredResource]) -> list[Score]:
    """One line per score (a SWEMWBS total, each ONS4 question...): first, latest, change."""
    grouped: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for row in rows:
        score = score_summary(_json(row))
        if score.value is not None:
            key = (score.instrument or "", score.label or score.instrument or "Score")
            grouped.setdefault(key, []).append((score.date or "", score.value))
    return [_score(label, found) for (_, label), found in sorted(grouped.items())]


def _score(label: str, scores: list[tuple[str, float]]) -> Score:
    ordered = sorted(scores, key=lambda s: s[0])
    (first_date, first), (latest_date, latest) = ordered[0], ordered[-1]
    return Score(
        label=label,
        first=_number(first),
        first_date=display_date(first_date),
        latest=_number(latest),
        latest_date=display_date(latest_date),
        change=_number(latest - first, signed=True) if len(ordered) > 1 else None,
    )


def _number(value: float, *, signed: bool = False) -> str:
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    text = text.rstrip("0").rstrip(".")
    return "0" if text in ("+0", "-0") else text
