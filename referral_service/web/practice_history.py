"""A referral's history as the practice reads it: every status change of its referral Task (with
the reason given), and each time bank it was offered to, with a decline's reason in the time
bank's own words. Pure: built from versions and summaries already read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from fhir_adapters.codes import TaskStatus
from fhir_adapters.summaries import TaskSummary, task_summary
from referral_service.store.service import Version
from referral_service.web.practice_status import display_date, instant_of, status_label


@dataclass(frozen=True, slots=True)
class Event:
    when: datetime
    date: str
    text: str
    reason: str | None


def history(
    versions: Sequence[Version], children: Sequence[TaskSummary], names: dict[str, str]
) -> list[Event]:
    """Oldest first. `versions` are the referral Task's (any order), `children` its time bank
    Tasks, `names` the time banks' names by `Organization/<id>`."""
    events = _status_changes(versions)
    for child in children:
        events += _child_events(child, names.get(child.owner or "", "a time bank"))
    return sorted(events, key=lambda e: e.when)


def _status_changes(versions: Sequence[Version]) -> list[Event]:
    events: list[Event] = []
    previous: str | None = None
    for version in sorted(versions, key=lambda v: v.version_id):
        task = task_summary(orjson.loads(version.body))
        if task.status == previous:
            continue
        text = (
            "Referral sent"
            if previous is None
            else f"Status changed to {status_label(task.status)}"
        )
        events.append(_event(version.last_updated, text, task.status_reason))
        previous = task.status
    return events


def _child_events(child: TaskSummary, timebank: str) -> list[Event]:
    events = []
    offered = instant_of(child.authored_on)
    if offered is not None:
        events.append(_event(offered, f"Offered to {timebank}", None))
    ended = instant_of(child.last_modified)
    if ended is not None and child.status == TaskStatus.REJECTED:
        events.append(_event(ended, f"Declined by {timebank}", child.status_reason))
    elif ended is not None and child.status == TaskStatus.CANCELLED:
        events.append(_event(ended, f"No longer with {timebank}", child.status_reason))
    return events


def _event(when: datetime, text: str, reason: str | None) -> Event:
    return Event(when, display_date(when), text, reason)
