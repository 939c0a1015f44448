"""The backport Subscription profile read into plain values, and SPIS's Subscription, topic and
status resources valid R4 (fhir_adapters/subscriptions.py, subscription_topics.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_adapters._shape import resource_class
from fhir_adapters.codes import (
    BACKPORT_FILTER_CRITERIA,
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_PAYLOAD_CONTENT,
    BACKPORT_TIMEOUT,
    SDOH_TASK_TOPIC,
)
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.subscription_topics import (
    StatusView,
    TopicView,
    status_parameters,
    topic_basic,
)
from fhir_adapters.subscriptions import (
    SubscriptionRequest,
    SubscriptionView,
    parse_subscription,
    subscription_resource,
)


def body(**overrides: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "reason": "Referral updates",
        "criteria": SDOH_TASK_TOPIC,
        "_criteria": {
            "extension": [
                {"url": BACKPORT_FILTER_CRITERIA, "valueString": "Task?owner=Organization/x"},
                {"url": "https://example.org/other", "valueString": "ignored"},
            ]
        },
        "channel": {
            "type": "rest-hook",
            "endpoint": "https://gp.example/hook",
            "extension": [
                {"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 600},
                {"url": BACKPORT_TIMEOUT, "valueUnsignedInt": 30},
            ],
            "_payload": {"extension": [{"url": BACKPORT_PAYLOAD_CONTENT, "valueCode": "empty"}]},
        },
        "end": "2027-01-31T12:00:00Z",
    }
    resource.update(overrides)
    return resource


def test_a_backport_subscription_reads_into_plain_values() -> None:
    assert parse_subscription(body()) == SubscriptionRequest(
        status="requested",
        topic=SDOH_TASK_TOPIC,
        filters=(("Task", "owner", "Organization/x"),),
        endpoint="https://gp.example/hook",
        content_type="application/jose",
        payload="empty",
        heartbeat_s=600,
        timeout_s=30,
        end=datetime(2027, 1, 31, 12, tzinfo=UTC),
        reason="Referral updates",
    )


def channel(**changes: Any) -> dict[str, Any]:
    return {**body()["channel"], **changes}


@pytest.mark.parametrize(
    ("resource", "status", "where"),
    [
        (body(channel=channel(type="websocket")), 422, "Subscription.channel.type"),
        (body(channel=channel(_type={"extension": []})), 422, "Subscription.channel.type"),
        (body(channel=channel(header=["X-Key: 1"])), 422, "Subscription.channel.header"),
        (body(channel=channel(payload="text/plain")), 422, "Subscription.channel.payload"),
        (body(channel=channel(_payload=None)), 422, "Subscription.channel.payload"),
        (body(channel=channel(endpoint=None)), 422, "Subscription.channel.endpoint"),
        (body(criteria="Observation?code=1"), 422, "Subscription.criteria"),
        (body(status="paused"), 422, "Subscription.status"),
        (
            body(
                _criteria={
                    "extension": [{"url": BACKPORT_FILTER_CRITERIA, "valueString": "owner=x"}]
                }
            ),
            422,
            "Subscription.criteria.extension[0]",
        ),
        (
            body(
                _criteria={
                    "extension": [
                        {"url": BACKPORT_FILTER_CRITERIA, "valueString": "Task?status=failed\n"}
                    ]
                }
            ),
            422,
            "Subscription.criteria.extension[0]",
        ),
        (
            body(channel=channel(endpoint="https://gp.example/" + "a" * 2048)),
            422,
            "Subscription.channel.endpoint",
        ),
        (body(reason=None), 400, "Subscription.reason"),
    ],
)
def test_what_the_profile_refuses(resource: dict[str, Any], status: int, where: str) -> None:
    resource = {k: v for k, v in resource.items() if v is not None}
    resource["channel"] = {k: v for k, v in resource["channel"].items() if v is not None}

    with pytest.raises(FhirError) as raised:
        parse_subscription(resource)

    assert raised.value.status == status
    assert raised.value.expression == [where]


def test_a_refused_filter_is_not_echoed() -> None:
    secret = "Task?patient=Patient/9434765919&x=1"
    resource = body(
        _criteria={"extension": [{"url": BACKPORT_FILTER_CRITERIA, "valueString": secret}]}
    )

    with pytest.raises(FhirError) as raised:
        parse_subscription(resource)

    assert "9434765919" not in raised.value.diagnostics


def test_a_shown_subscription_is_valid_r4_and_reads_back_the_same() -> None:
    held = SubscriptionRequest(
        status="error",
        topic=SDOH_TASK_TOPIC,
        filters=(("Task", "status", "completed"),),
        endpoint="https://gp.example/hook",
        content_type="application/fhir+json",
        payload="full-resource",
        heartbeat_s=None,
        timeout_s=20,
        end=None,
        reason="Referral updates",
    )
    view = SubscriptionView(
        id="s-1",
        version_id=3,
        last_updated=datetime(2026, 11, 29, 9, 30, tzinfo=UTC),
        error="no answer (HTTP 503)",
        held=held,
    )

    shown = subscription_resource(view)

    assert validate_resource(shown, expected_type="Subscription") == "Subscription"
    assert (shown["meta"]["versionId"], shown["meta"]["lastUpdated"]) == (
        "3",
        "2026-11-29T09:30:00.000Z",
    )
    assert shown["error"] == "no answer (HTTP 503)"
    again = parse_subscription(shown)
    assert (again.status, again.filters, again.payload, again.timeout_s) == (
        "error",
        held.filters,
        "full-resource",
        20,
    )


def test_a_topic_is_a_valid_r4_basic_with_the_cross_version_extensions() -> None:
    view = TopicView(
        url="https://spis.example.org/fhir/SubscriptionTopic/routed",
        name="routed",
        title="Routed to a time bank",
        description="A new child Task in the inbox.",
        resource_types=("Task",),
        can_filter_by=("owner",),
    )

    basic = topic_basic(view)

    model = resource_class("Basic")
    assert model is not None
    model.model_validate(basic)
    assert basic["code"]["coding"][0]["code"] == "SubscriptionTopic"
    assert basic["extension"][0]["valueUri"] == view.url


def test_status_parameters_are_valid_r4_and_carry_an_error_only_when_there_is_one() -> None:
    view = StatusView(
        "https://spis.example/fhir/Subscription/s-1", SDOH_TASK_TOPIC, "active", 4, None
    )

    parameters = status_parameters(view, "query-status")

    assert validate_resource(parameters, expected_type="Parameters") == "Parameters"
    assert [p["name"] for p in parameters["parameter"]] == [
        "subscription",
        "topic",
        "status",
        "type",
        "events-since-subscription-start",
    ]
