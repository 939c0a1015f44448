"""The topics a Subscription may name (its `criteria`, the backport's topic canonical), who may
subscribe to each, and the filters each accepts (the backport filter-criteria extension).

A notification only ever reaches a subscriber that could read its focus itself at that moment:
tenancy and consent decide, as for a read (deliveries/events.py, deliveries/sending.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import NamedTuple

from fhir_adapters.codes import (
    ROUTED_TOPIC,
    SDOH_TASK_TOPIC,
    SHARED_BACK_TOPIC,
    SLA_REMINDER_TOPIC,
)
from referral_service.organisations.models import OrgKind


@dataclass(frozen=True, slots=True)
class Topic:
    url: str
    name: str  # short, for the CLI, logs and docs
    title: str
    description: str
    resource_types: tuple[str, ...]
    subscribers: frozenset[OrgKind]
    # Search parameters a filter may use, per resource type: the same meaning as in a search.
    can_filter_by: frozenset[str]


TASK = Topic(
    SDOH_TASK_TOPIC,
    "task",
    "Referral Task status",
    "A Task this organisation may read was created or changed status: a practice's referral "
    "Tasks, a time bank's routed Tasks (the SDOH Clinical Care IG Task topic).",
    ("Task",),
    frozenset({OrgKind.PRACTICE, OrgKind.TIMEBANK}),
    frozenset({"_id", "code", "owner", "requester", "status"}),
)
SHARED_BACK = Topic(
    SHARED_BACK_TOPIC,
    "shared-back",
    "Shared back",
    "A time bank shared a Procedure (an activity) or an Observation (a wellbeing score, "
    "enrolment) for one of this practice's referrals, as the patient's consent allows.",
    ("Procedure", "Observation"),
    frozenset({OrgKind.PRACTICE}),
    frozenset({"based-on", "category", "code"}),
)
ROUTED = Topic(
    ROUTED_TOPIC,
    "routed",
    "Routed to a time bank",
    "A referral was routed to this time bank: a new child Task in its inbox.",
    ("Task",),
    frozenset({OrgKind.TIMEBANK}),
    frozenset({"owner"}),
)
SLA_REMINDER = Topic(
    SLA_REMINDER_TOPIC,
    "sla-reminder",
    "Time bank answer overdue",
    "A routed Task went unanswered past the time bank's SLA: a reminder is due (to the time "
    "bank), and the referral will move on after the grace period (to the practice).",
    ("Task",),
    frozenset({OrgKind.TIMEBANK, OrgKind.PRACTICE}),
    frozenset({"owner", "requester"}),
)

TOPICS: dict[str, Topic] = {t.url: t for t in (TASK, SHARED_BACK, ROUTED, SLA_REMINDER)}


class Filter(NamedTuple):
    """One backport filter criterion, `Task?owner=Organization/x` as ("Task", "owner", value)."""

    resource_type: str
    name: str
    value: str


def encode_filters(filters: list[Filter]) -> str:
    return json.dumps([list(f) for f in filters])


def decode_filters(stored: str) -> list[Filter]:
    return [Filter(*item) for item in json.loads(stored or "[]")]
