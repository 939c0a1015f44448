"""Events: what happened in SPIS, turned into delivery rows for the subscriptions that should hear
of it, in the transaction that made it happen, just before it commits. The row commits with the
change or not at all; the worker sends it after commit (deliveries/sending.py).

`notify` is a `kit.changes` processor, registered by `deliveries/hooks.py` (loaded by
`kit.registry.load_hooks` the first time a commit has changes, in whatever process). It gets the
changes the store recorded (`store.service` create, update and grant) and still standing (those
made inside a savepoint that rolled back are gone already). The topics (deliveries/topics.py):

- TASK: a Task with `intent` `order` was created (not as a `draft`), or its status changed;
- ROUTED: a child Task (`partOf`) was created, to the time bank it is `owner`;
- SLA_REMINDER: a child Task gained the businessStatus `reminder-due` (routing/sla.py);
- SHARED_BACK: a Procedure or Observation became readable by a practice: created shared with it,
  or granted to it later (a Consent now permitting share-back). Only to that practice.

A subscription hears of an event when its topic matches, it still listens (`requested`, `active`
or `error`, and not past its `end`), its subscriber may read the focus at this moment exactly as a
read would decide (tenancy and grants, so consent: `store.repository.get`), and every filter on
the focus's type matches that version of it (deliveries/matching.py). Each one that does is
locked, its `events_since_start` goes up by one and a `pending` event-notification row takes that
number; then the DELIVER message for the subscription is sent after commit.

Cheap when nobody listens: a commit without a Task, Procedure or Observation change that could be
an event makes no query at all; one that has such changes makes one, for the listening
subscriptions of those topics, and stops there when there are none. Nothing here logs a body,
a reference or a code.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.orm import Session

from fhir_adapters.task import REMINDER_DUE
from referral_service.deliveries import event_repository as repository
from referral_service.deliveries import matching
from referral_service.deliveries.event_repository import Listener
from referral_service.deliveries.models import Subscription
from referral_service.deliveries.topics import (
    ROUTED,
    SHARED_BACK,
    SLA_REMINDER,
    TASK,
    Filter,
    Topic,
    decode_filters,
)
from referral_service.jobs.service import JobName, send_after_commit
from referral_service.kit.changes import Change, What
from referral_service.kit.clock import as_utc, utcnow
from referral_service.principal import Principal
from referral_service.store import repository as store

log = logging.getLogger("spis.deliveries")

SHARED_BACK_TYPES = frozenset(SHARED_BACK.resource_types)


def candidate_topics(change: Change) -> tuple[Topic, ...]:
    """The topics a change may be an event of, from its codes alone (no body, no query)."""
    if change.rtype == "Task":
        if change.what is What.CREATED:
            return (TASK, ROUTED) if change.status != "draft" else (ROUTED,)
        if change.what is What.UPDATED:
            gained = change.business_status - change.previous_business_status
            return (
                *((TASK,) if change.status != change.previous_status else ()),
                *((SLA_REMINDER,) if REMINDER_DUE in gained else ()),
            )
    if change.rtype in SHARED_BACK_TYPES and change.shared_with:
        return (SHARED_BACK,) if change.what in (What.CREATED, What.SHARED) else ()
    return ()


def is_event(topic: Topic, change: Change, focus: dict[str, Any]) -> bool:
    """With the version's content: is this change an event of the topic?"""
    if topic is TASK:
        return focus.get("intent") == "order"
    if topic in (ROUTED, SLA_REMINDER):
        return bool(focus.get("partOf"))
    return topic is SHARED_BACK


def notify(session: Session, changes: Sequence[Change]) -> None:
    candidates = [(change, topic) for change in changes for topic in candidate_topics(change)]
    if not candidates:
        return
    now = utcnow()
    by_topic: dict[str, list[Listener]] = defaultdict(list)
    for listener in repository.listening(session, {t.url for _, t in candidates}, now):
        by_topic[listener.topic].append(listener)
    if not by_topic:
        return
    check = _Check(session)
    due = [
        (subscription.id, change)
        for change, topic in candidates
        if by_topic.get(topic.url) and is_event(topic, change, check.focus(change))
        for subscription in by_topic[topic.url]
        if check.reaches(subscription, topic, change)
    ]
    if due:
        _write(session, due)


@dataclass
class _Check:
    """Whether one subscription hears of one change; what it reads is read once per commit."""

    session: Session
    focuses: dict[Change, dict[str, Any]] = field(default_factory=dict)
    readable: dict[tuple[str, str, str], int | None] = field(default_factory=dict)

    def focus(self, change: Change) -> dict[str, Any]:
        if change not in self.focuses:
            self.focuses[change] = orjson.loads(change.body) if change.body else {}
        return self.focuses[change]

    def reaches(self, subscription: Listener, topic: Topic, change: Change) -> bool:
        org, kind = subscription.org_id, subscription.kind
        if kind not in topic.subscribers:
            return False
        if topic is SHARED_BACK and org not in change.shared_with:
            return False  # shared with another practice, or the subscriber's own record
        focus = self.focus(change)
        if topic is ROUTED and _reference(focus.get("owner")) != f"Organization/{org}":
            return False
        filters = _filters(subscription)
        if filters is None or not matching.matches(filters, change.rtype, change.rid, focus):
            return False
        version = self._readable_version(subscription, change)
        # No version as new as the change: it was rolled back (a savepoint), it is not an event.
        return version is not None and version >= change.version_id

    def _readable_version(self, subscription: Listener, change: Change) -> int | None:
        key = (subscription.org_id, change.rtype, change.rid)
        if key not in self.readable:
            reader = Principal(
                subscription.client_id, subscription.org_id, subscription.kind, frozenset()
            )
            row = store.get(self.session, reader, change.rtype, change.rid)
            self.readable[key] = None if row is None else row.version_id
        return self.readable[key]


def _filters(subscription: Listener) -> list[Filter] | None:
    """None when the stored filters do not decode (the Subscription API checks them): such a
    subscription hears of nothing, rather than failing the transaction of whoever made a change."""
    try:
        return decode_filters(subscription.filters)
    except (ValueError, TypeError):
        log.error("subscription filters unreadable", extra={"subscription_id": subscription.id})
        return None


def _reference(element: object) -> str | None:
    reference = element.get("reference") if isinstance(element, dict) else None
    return reference if isinstance(reference, str) else None


def _write(session: Session, due: list[tuple[str, Change]]) -> None:
    """Lock the subscriptions (id order), number the events in the order the changes were made,
    add their rows, and send each subscription's DELIVER message after commit."""
    now = utcnow()
    locked = {s.id: s for s in repository.lock(session, {sid for sid, _ in due})}
    notified: list[str] = []
    for sid, change in due:
        subscription = locked.get(sid)
        if subscription is None or not _still_listening(subscription, now):
            continue  # deleted, turned off or ended since it was listed
        subscription.events_since_start += 1
        focus = (change.rtype, change.rid)
        repository.add_event(session, subscription, subscription.events_since_start, focus, now)
        if sid not in notified:
            notified.append(sid)
    for sid in notified:
        send_after_commit(session, JobName.DELIVER, sid)
    if notified:
        log.debug("events recorded", extra={"subscriptions": len(notified), "events": len(due)})


def _still_listening(subscription: Subscription, now: datetime) -> bool:
    ends = subscription.end
    return subscription.status in repository.LISTENING and (ends is None or as_utc(ends) > now)
