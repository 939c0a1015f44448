"""Subscription notifications as the R5 Subscriptions Backport puts them on R4: a Bundle of type
`history` whose first entry is a `Parameters` (backport-subscription-status-r4), requested as
`GET <base>/Subscription/<id>/$status`, then the focus when the payload carries one.

Pure builders on plain values: the domain decides what the subscriber may see (deliveries/
sending.py), this module only shapes it. Shapes follow the IG's R4 examples
(Bundle-r4-notification-handshake, -empty, -id-only, -full-resource).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fhir_adapters.codes import BACKPORT_BASE

STATUS_PROFILE: Final = f"{BACKPORT_BASE}/backport-subscription-status-r4"
NOTIFICATION_PROFILE: Final = f"{BACKPORT_BASE}/backport-subscription-notification-r4"
EMPTY: Final = "empty"
FULL_RESOURCE: Final = "full-resource"


@dataclass(frozen=True, slots=True)
class Focus:
    """What an event is about. `resource` is the JSON the subscriber may see (full-resource),
    None for id-only."""

    type: str
    id: str
    version_id: int
    resource: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    fhir_base: str  # absolute, without a trailing slash
    subscription_id: str
    topic: str
    status: str  # the subscription's status as it is sent
    type: str  # handshake | heartbeat | event-notification
    payload: str  # empty | id-only | full-resource
    events_since_start: int
    status_id: str  # a UUID: the Parameters' id and urn:uuid fullUrl
    timestamp: str  # FHIR instant: when the Bundle was made
    event_number: int | None = None  # events only
    occurred: str | None = None  # FHIR instant of the event
    focus: Focus | None = None  # events with an id-only or full-resource payload


def notification_bundle(note: Notification) -> dict[str, Any]:
    entries = [_status_entry(note)]
    if note.focus is not None and note.payload != EMPTY:
        entries.append(_focus_entry(note.fhir_base, note.focus))
    return {
        "resourceType": "Bundle",
        "meta": {"profile": [NOTIFICATION_PROFILE]},
        "type": "history",
        "timestamp": note.timestamp,
        "entry": entries,
    }


def _status_entry(note: Notification) -> dict[str, Any]:
    subscription_url = f"{note.fhir_base}/Subscription/{note.subscription_id}"
    return {
        "fullUrl": f"urn:uuid:{note.status_id}",
        "resource": {
            "resourceType": "Parameters",
            "id": note.status_id,
            "meta": {"profile": [STATUS_PROFILE]},
            "parameter": _status_parameters(note, subscription_url),
        },
        "request": {"method": "GET", "url": f"{subscription_url}/$status"},
        "response": {"status": "200"},
    }


def _status_parameters(note: Notification, subscription_url: str) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": subscription_url}}
    ]
    # The IG: the topic SHOULD NOT be present with `empty` payloads.
    if note.payload != EMPTY:
        parameters.append({"name": "topic", "valueCanonical": note.topic})
    parameters += [
        {"name": "status", "valueCode": note.status},
        {"name": "type", "valueCode": note.type},
        {"name": "events-since-subscription-start", "valueString": str(note.events_since_start)},
    ]
    if note.event_number is not None:
        parameters.append({"name": "notification-event", "part": _event_parts(note)})
    return parameters


def _event_parts(note: Notification) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"name": "event-number", "valueString": str(note.event_number)}]
    if note.occurred is not None:
        parts.append({"name": "timestamp", "valueInstant": note.occurred})
    if note.focus is not None and note.payload != EMPTY:
        reference = f"{note.fhir_base}/{note.focus.type}/{note.focus.id}"
        parts.append({"name": "focus", "valueReference": {"reference": reference}})
    return parts


def _focus_entry(fhir_base: str, focus: Focus) -> dict[str, Any]:
    """As a history entry: created (POST, 201) at version 1, updated (PUT, 200) after."""
    created = focus.version_id <= 1
    entry: dict[str, Any] = {"fullUrl": f"{fhir_base}/{focus.type}/{focus.id}"}
    if focus.resource is not None:
        entry["resource"] = focus.resource
    entry["request"] = (
        {"method": "POST", "url": focus.type}
        if created
        else {"method": "PUT", "url": f"{focus.type}/{focus.id}"}
    )
    entry["response"] = {"status": "201" if created else "200"}
    return entry
