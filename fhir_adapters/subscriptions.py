"""An R4 Subscription as the backport IG's `backport-subscription` profile: what a subscriber
sends, read into plain values, and a subscription shown back as FHIR JSON.

Only what the profile and R4 say is checked here. Which topics exist, who may subscribe to them,
which filters each takes and what the server allows (heartbeat, plain JSON) are the domain's rules
(referral_service/deliveries/rules.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir_adapters._dates import period_of
from fhir_adapters.codes import (
    BACKPORT_FILTER_CRITERIA,
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    BACKPORT_SUBSCRIPTION_PROFILE,
    BACKPORT_TIMEOUT,
    FHIR_JSON,
    JOSE,
)
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource

STATUSES = ("requested", "active", "error", "off")
PAYLOAD_CONTENTS = ("empty", "id-only", "full-resource")
CONTENT_TYPES = (JOSE, FHIR_JSON)
# What SPIS sends when `channel.payload` names no MIME type: signed, then encrypted.
DEFAULT_CONTENT_TYPE = JOSE
MAX_FILTERS = 20
# `Type?parameter=value`: one search parameter per extension, as the backport's examples.
_FILTER = re.compile(
    r"(?P<type>[A-Z][A-Za-z]{0,63})\?(?P<name>[A-Za-z0-9_\-:.]{1,64})=(?P<value>[^&\s]{1,255})"
)
MAX_ENDPOINT = 2048

Filter = tuple[str, str, str]  # (resource type, search parameter, value)


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """What a subscriber asked for, as sent (after the profile's rules)."""

    status: str
    topic: str
    filters: tuple[Filter, ...]
    endpoint: str
    content_type: str
    payload: str
    heartbeat_s: int | None
    timeout_s: int | None
    end: datetime | None
    reason: str


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A stored subscription, as the subscriber is shown it: what it holds (in the shape it was
    asked for, so showing and parsing round-trip), with the server's id, version and error."""

    id: str
    version_id: int
    last_updated: datetime
    error: str | None
    held: SubscriptionRequest


def parse_subscription(body: dict[str, Any]) -> SubscriptionRequest:
    """Validate a Subscription (R4, then the backport profile) into a request. A missing `status`
    is `requested`. Raises FhirError: 400 for R4 structure, 422 for the profile's rules."""
    data = body if "status" in body else {**body, "status": "requested"}
    validate_resource(data, expected_type="Subscription")
    channel: dict[str, Any] = data["channel"]
    _check_channel(channel)
    return SubscriptionRequest(
        status=_status(data["status"]),
        topic=_topic(data["criteria"]),
        filters=_filters(data.get("_criteria")),
        endpoint=channel["endpoint"],
        content_type=_content_type(channel),
        payload=_payload_content(channel.get("_payload")),
        heartbeat_s=_unsigned(channel, BACKPORT_HEARTBEAT_PERIOD),
        timeout_s=_unsigned(channel, BACKPORT_TIMEOUT),
        end=_end(data.get("end")),
        reason=data["reason"],
    )


def _bad(code: str, where: str, message: str) -> FhirError:
    return FhirError(422, code, f"{where}: {message}", [where])


def _status(status: str) -> str:
    if status not in STATUSES:
        raise _bad("code-invalid", "Subscription.status", f"must be one of {', '.join(STATUSES)}")
    return status


def _topic(criteria: str) -> str:
    if "?" in criteria or not criteria.startswith(("https://", "http://")):
        raise _bad(
            "not-supported",
            "Subscription.criteria",
            "must be a topic's canonical URL (topic-based subscriptions, the R5 backport); "
            "R4 query criteria are not supported. GET /fhir/Basic?code=SubscriptionTopic lists "
            "the topics",
        )
    return criteria


def _filters(criteria_element: dict[str, Any] | None) -> tuple[Filter, ...]:
    extensions = (criteria_element or {}).get("extension", [])
    found: list[Filter] = []
    for i, extension in enumerate(extensions):
        if extension.get("url") != BACKPORT_FILTER_CRITERIA:
            continue
        where = f"Subscription.criteria.extension[{i}]"
        match = _FILTER.fullmatch(extension.get("valueString") or "")
        if match is None:  # the value may name a patient: never echoed
            raise _bad("invalid", where, "a filter is `Type?parameter=value`, one parameter each")
        found.append((match["type"], match["name"], match["value"]))
    if len(found) > MAX_FILTERS:
        raise _bad("too-costly", "Subscription.criteria", f"at most {MAX_FILTERS} filters")
    return tuple(found)


def _check_channel(channel: dict[str, Any]) -> None:
    if channel.get("type") != "rest-hook" or "_type" in channel:
        raise _bad(
            "not-supported",
            "Subscription.channel.type",
            "only rest-hook is supported (SPIS POSTs each notification to your endpoint); "
            "email, sms, websocket, message and custom channel types are not",
        )
    if not channel.get("endpoint"):
        raise _bad("required", "Subscription.channel.endpoint", "a rest-hook needs an endpoint")
    if len(channel["endpoint"]) > MAX_ENDPOINT:
        raise _bad(
            "too-long", "Subscription.channel.endpoint", f"at most {MAX_ENDPOINT} characters"
        )
    if "header" in channel or "_header" in channel:
        raise _bad(
            "not-supported",
            "Subscription.channel.header",
            "headers are not supported: SPIS signs every notification (and encrypts it to your "
            "registered key), so a receiver verifies the signature instead of a shared secret, "
            "and SPIS stores no secrets for you",
        )


def _content_type(channel: dict[str, Any]) -> str:
    mime = channel.get("payload", DEFAULT_CONTENT_TYPE)
    if mime not in CONTENT_TYPES:
        raise _bad(
            "not-supported",
            "Subscription.channel.payload",
            f"must be {JOSE} (signed, then encrypted to your registered key) or, outside "
            f"production, {FHIR_JSON}",
        )
    return str(mime)


def _payload_content(payload_element: dict[str, Any] | None) -> str:
    where = "Subscription.channel.payload"
    codes = [
        e.get("valueCode")
        for e in (payload_element or {}).get("extension", [])
        if e.get("url") == BACKPORT_PAYLOAD_CONTENT
    ]
    if len(codes) != 1:
        raise _bad(
            "required",
            where,
            f"needs one {BACKPORT_PAYLOAD_CONTENT} extension: {', '.join(PAYLOAD_CONTENTS)}",
        )
    if codes[0] not in PAYLOAD_CONTENTS:
        raise _bad("code-invalid", where, f"payload content must be {', '.join(PAYLOAD_CONTENTS)}")
    return str(codes[0])


def _unsigned(channel: dict[str, Any], url: str) -> int | None:
    values = [e for e in channel.get("extension", []) if e.get("url") == url]
    if not values:
        return None
    name = url.rsplit("/", 1)[1]
    value = values[0].get("valueUnsignedInt")
    if len(values) > 1 or not isinstance(value, int):
        raise _bad("invalid", "Subscription.channel.extension", f"{name}: one valueUnsignedInt")
    return value


def _end(text: str | None) -> datetime | None:
    if text is None:
        return None
    period = period_of(text)
    if period is None:  # R4 checked the format; a value no calendar has is still possible
        raise _bad("invalid", "Subscription.end", "is not a valid instant")
    return period[0]


# --- shown back -----------------------------------------------------------------------------------


def subscription_resource(view: SubscriptionView) -> dict[str, Any]:
    held = view.held
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": held.endpoint}
    extensions = [
        {"url": url, "valueUnsignedInt": value}
        for url, value in (
            (BACKPORT_HEARTBEAT_PERIOD, held.heartbeat_s),
            (BACKPORT_TIMEOUT, held.timeout_s),
        )
        if value is not None
    ]
    if extensions:
        channel["extension"] = extensions
    channel["payload"] = held.content_type
    channel["_payload"] = {
        "extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": held.payload}]
    }
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "id": view.id,
        "meta": {
            "versionId": str(view.version_id),
            "lastUpdated": instant(view.last_updated),
            "profile": [BACKPORT_SUBSCRIPTION_PROFILE],
        },
        "status": held.status,
    }
    if held.end is not None:
        resource["end"] = instant(held.end)
    resource["reason"] = held.reason
    resource["criteria"] = held.topic
    if held.filters:
        resource["_criteria"] = {"extension": [_filter_extension(f) for f in held.filters]}
    if view.error is not None:
        resource["error"] = view.error
    resource["channel"] = channel
    return resource


def _filter_extension(item: Filter) -> dict[str, Any]:
    rtype, name, value = item
    return {"url": BACKPORT_FILTER_CRITERIA, "valueString": f"{rtype}?{name}={value}"}


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
