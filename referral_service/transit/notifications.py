"""The notification inside a verified, opened message (transit/receiver.py): what its
subscription-status-r4 Parameters says, and whether its event number is new, a duplicate or
after a gap (docs/deliveries.md). Plain JSON, no FHIR library: an integrator can copy it as is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

NOTIFICATION_TYPES = frozenset({"handshake", "heartbeat", "event-notification"})


class NotANotification(ValueError):
    """Signed by SPIS but not a notification Bundle this receiver understands. Says which rule
    failed, never what the Bundle held."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What a subscription-status-r4 notification Bundle says (entry 0, a Parameters), and an
    event's focus: its reference (not with `empty` payloads), the resource itself only with
    `full-resource`. SPIS's references are absolute URLs."""

    subscription: str  # "https://<spis>/fhir/Subscription/<id>"
    topic: str | None  # the topic's canonical URL; left out of `empty` payloads (as the IG says)
    type: str  # handshake | heartbeat | event-notification
    status: str  # the subscription's status: requested | active | error | off
    events_since_start: int | None
    event_number: int | None = None
    event_timestamp: str | None = None
    focus: str | None = None
    focus_resource: dict[str, Any] | None = None


def parse_notification(payload: bytes) -> Notification:
    try:
        bundle = json.loads(payload)
    except (ValueError, RecursionError):
        raise NotANotification("The notification is not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise NotANotification("The notification is not a Bundle")
    if bundle.get("type") != "history":
        raise NotANotification("The notification Bundle is not of type history")
    entries = _objects(bundle.get("entry"))
    status = entries[0].get("resource") if entries else None
    if not isinstance(status, dict) or status.get("resourceType") != "Parameters":
        raise NotANotification("The notification Bundle's first entry is not a Parameters")
    return _notification(_parameters(status), entries[1:])


def _parameters(status: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    named: dict[str, list[dict[str, Any]]] = {}
    for parameter in _objects(status.get("parameter")):
        if isinstance(parameter.get("name"), str):
            named.setdefault(parameter["name"], []).append(parameter)
    return named


def _objects(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _notification(
    named: dict[str, list[dict[str, Any]]], rest: list[dict[str, Any]]
) -> Notification:
    kind = _text(named, "type", "valueCode")
    if kind not in NOTIFICATION_TYPES:
        raise NotANotification("The notification type is not handshake, heartbeat or event")
    events = named.get("notification-event", [])
    if kind == "event-notification" and len(events) != 1:
        raise NotANotification("An event notification must carry one notification-event")
    base = Notification(
        subscription=_reference(_single(named, "subscription", "valueReference")),
        topic=_text(named, "topic", "valueCanonical", "valueUri") if "topic" in named else None,
        type=kind,
        status=_text(named, "status", "valueCode"),
        events_since_start=_optional_count(named, "events-since-subscription-start"),
    )
    return _with_event(base, events[0], rest) if kind == "event-notification" else base


def _with_event(
    base: Notification, event: dict[str, Any], rest: list[dict[str, Any]]
) -> Notification:
    parts = _parameters({"parameter": event.get("part")})
    number = _optional_count(parts, "event-number")
    if number is None:
        raise NotANotification("The notification-event has no event-number")
    focus = _reference(_single(parts, "focus", "valueReference")) if "focus" in parts else None
    stamp = _text(parts, "timestamp", "valueInstant") if "timestamp" in parts else None
    return replace(
        base,
        event_number=number,
        event_timestamp=stamp,
        focus=focus,
        focus_resource=_focus_resource(focus, rest),
    )


def _single(named: dict[str, list[dict[str, Any]]], name: str, *value_names: str) -> Any:
    found = named.get(name, [])
    values = [p[v] for p in found for v in value_names if v in p]
    if len(found) != 1 or len(values) != 1 or values[0] in (None, "", {}):
        raise NotANotification(f"The notification needs exactly one '{name}' parameter")
    return values[0]


def _text(named: dict[str, list[dict[str, Any]]], name: str, *value_names: str) -> str:
    value = _single(named, name, *value_names)
    if not isinstance(value, str):
        raise NotANotification(f"The '{name}' parameter is not text")
    return value


def _reference(value: object) -> str:
    reference = value.get("reference") if isinstance(value, dict) else None
    if not isinstance(reference, str) or not reference:
        raise NotANotification("A notification reference has no 'reference'")
    return reference


# The IG's R4 profile says valueString; valueUnsignedInt and valueInteger64 (R5) are met too.
_COUNT_TYPES = ("valueString", "valueUnsignedInt", "valueInteger64", "valueInteger")


def _optional_count(named: dict[str, list[dict[str, Any]]], name: str) -> int | None:
    if name not in named:
        return None
    value = _single(named, name, *_COUNT_TYPES)
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise NotANotification(f"The '{name}' parameter is not a whole number")
    return int(text)


def _focus_resource(focus: str | None, rest: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry holding the focus resource (full-resource payloads); id-only entries hold none."""
    for entry in rest:
        resource, full_url = entry.get("resource"), str(entry.get("fullUrl") or "")
        if not isinstance(resource, dict):
            continue
        if focus is None or full_url == focus or full_url.endswith(f"/{focus}"):
            return resource
    return None


# -- event numbers --------------------------------------------------------------------------------


class EventOutcome(StrEnum):
    NEW = "new"  # the next number, or a late one filling a gap
    DUPLICATE = "duplicate"  # seen already: acknowledge (2xx) and ignore
    GAP = "gap"  # numbers are missing: ask `$status`, then search for what changed


@dataclass(frozen=True, slots=True)
class EventCheck:
    outcome: EventOutcome
    number: int | None  # the event's number, or the count a handshake or heartbeat reported
    missing: tuple[int, int] | None = None  # the first and last missing number, for a gap

    @property
    def expected(self) -> int | None:
        return self.missing[0] if self.missing else None


MAX_GAPS = 1000


class EventTracker:
    """The last event number per subscription, and the numbers still missing. Thread-safe.

    A real receiver keeps `last_seen` in its database (a row per subscription); this one keeps it
    in memory, so the first number it sees for a subscription is where it starts counting."""

    def __init__(self, last_seen: Mapping[str, int] | None = None) -> None:
        self._last: dict[str, int] = dict(last_seen or {})
        self._missing: dict[str, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()

    def check(self, notification: Notification) -> EventCheck:
        number = notification.event_number  # set on every event (parse_notification)
        with self._lock:
            if notification.type == "event-notification" and number is not None:
                return self._event(notification.subscription, number)
            return self._count(notification.subscription, notification.events_since_start)

    def last_seen(self, subscription: str) -> int | None:
        with self._lock:
            return self._last.get(subscription)

    def _event(self, subscription: str, number: int) -> EventCheck:
        last = self._last.get(subscription)
        if last is None or number == last + 1:
            self._last[subscription] = number
            return EventCheck(EventOutcome.NEW, number)
        if number <= last:
            late = self._fill(subscription, number)
            return EventCheck(EventOutcome.NEW if late else EventOutcome.DUPLICATE, number)
        return self._gap(subscription, last, number - 1, number)

    def _count(self, subscription: str, count: int | None) -> EventCheck:
        """A handshake or heartbeat: `count` events so far, so any above the last seen are lost."""
        last = self._last.get(subscription)
        if count is not None and last is not None and count > last:
            return self._gap(subscription, last, count, count)
        if count is not None and last is None:
            self._last[subscription] = count
        return EventCheck(EventOutcome.NEW, count)

    def _gap(self, subscription: str, last: int, last_missing: int, now_at: int) -> EventCheck:
        ranges = self._missing.setdefault(subscription, [])
        ranges.append((last + 1, last_missing))
        del ranges[:-MAX_GAPS]  # the oldest gaps are forgotten: late numbers then count as seen
        self._last[subscription] = now_at
        return EventCheck(EventOutcome.GAP, now_at, (last + 1, last_missing))

    def _fill(self, subscription: str, number: int) -> bool:
        """Was `number` missing? Then it is not any more."""
        ranges = self._missing.get(subscription, [])
        for index, (first, last) in enumerate(ranges):
            if first <= number <= last:
                pieces = [(first, number - 1), (number + 1, last)]
                ranges[index : index + 1] = [(a, b) for a, b in pieces if a <= b]
                return True
        return False
