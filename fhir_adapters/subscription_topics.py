"""The topics as R4 resources, and a subscription's status as the backport's R4 Parameters.

R4 has no SubscriptionTopic. The backport IG publishes a topic on R4 as a `Basic` whose code is
`SubscriptionTopic`, carrying the R5 elements as cross-version extensions
(`http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.<element>`); the
CapabilityStatement lists the canonicals (referral_service/fhir/capability.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir_adapters.codes import BACKPORT_STATUS_PROFILE, FHIR_TYPES_SYSTEM, R5_TOPIC_EXTENSION

TOPIC_CODE = "SubscriptionTopic"


@dataclass(frozen=True, slots=True)
class TopicView:
    url: str
    name: str  # the Basic's id
    title: str
    description: str
    resource_types: tuple[str, ...]
    can_filter_by: tuple[str, ...]  # search parameters, on each of the resource types


def topic_basic(view: TopicView) -> dict[str, Any]:
    extensions: list[dict[str, Any]] = [
        _element("url", valueUri=view.url),
        _element("title", valueString=view.title),
        _element("description", valueMarkdown=view.description),
    ]
    extensions += [_trigger(rtype, view.description) for rtype in view.resource_types]
    extensions += [
        _element(
            "canFilterBy",
            extension=[
                {"url": "resource", "valueUri": rtype},
                {"url": "filterParameter", "valueString": name},
            ],
        )
        for rtype in view.resource_types
        for name in view.can_filter_by
    ]
    return {
        "resourceType": "Basic",
        "id": view.name,
        "extension": extensions,
        # R5's status is a modifier element; the IG carries it as a modifier extension.
        "modifierExtension": [_element("status", valueCode="active")],
        "code": {"coding": [{"system": FHIR_TYPES_SYSTEM, "code": TOPIC_CODE}]},
    }


def _element(name: str, **value: Any) -> dict[str, Any]:
    return {"url": f"{R5_TOPIC_EXTENSION}.{name}", **value}


def _trigger(rtype: str, description: str) -> dict[str, Any]:
    return _element(
        "resourceTrigger",
        extension=[
            {"url": "description", "valueMarkdown": description},
            {"url": "resource", "valueUri": f"http://hl7.org/fhir/StructureDefinition/{rtype}"},
            {"url": "supportedInteraction", "valueCode": "create"},
            {"url": "supportedInteraction", "valueCode": "update"},
        ],
    )


# --- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusView:
    subscription_url: str  # the Subscription's full URL
    topic: str
    status: str
    events_since_start: int
    error: str | None


def status_parameters(view: StatusView, notification_type: str) -> dict[str, Any]:
    """The backport's `subscription-status-r4` Parameters: `query-status` for `$status` (and the
    first entry of every notification, with the type of that notification)."""
    parameters: list[dict[str, Any]] = [
        {"name": "subscription", "valueReference": {"reference": view.subscription_url}},
        {"name": "topic", "valueCanonical": view.topic},
        {"name": "status", "valueCode": view.status},
        {"name": "type", "valueCode": notification_type},
        {"name": "events-since-subscription-start", "valueString": str(view.events_since_start)},
    ]
    if view.error is not None:
        parameters.append({"name": "error", "valueCodeableConcept": {"text": view.error}})
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [BACKPORT_STATUS_PROFILE]},
        "parameter": parameters,
    }


def status_bundle(views: Sequence[StatusView]) -> dict[str, Any]:
    """`$status`'s answer: a searchset of status Parameters, one per subscription."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(views),
        "entry": [
            {"resource": status_parameters(view, "query-status"), "search": {"mode": "match"}}
            for view in views
        ],
    }
