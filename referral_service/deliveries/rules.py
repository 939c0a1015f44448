"""What SPIS allows in a Subscription, beyond the backport profile (fhir_adapters/subscriptions.py):
the topic and who may subscribe to it, its filters, the server's limits, and the status moves a
subscriber may make. Pure: no session, no I/O.
"""

from __future__ import annotations

from datetime import datetime

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.subscriptions import SubscriptionRequest
from referral_service.config import Settings
from referral_service.deliveries.models import SubscriptionStatus
from referral_service.deliveries.topics import TOPICS, Filter, Topic
from referral_service.errors import Invalid
from referral_service.organisations.models import OrgKind

MAX_REASON = 1000  # the column's length
MAX_TIMEOUT_S = 300
TOPIC_LIST = "GET /fhir/Basic?code=SubscriptionTopic lists the topics"
_KIND_WORDS = {
    OrgKind.PRACTICE: "GP practice",
    OrgKind.TIMEBANK: "time bank",
    OrgKind.HEALTHBOARD: "health board",
    OrgKind.PLATFORM: "SPIS",
}


def _bad(where: str, message: str, code: str = "invalid") -> Invalid:
    return Invalid(f"{where}: {message}", issue_code=code, expression=[where])


def checked(
    request: SubscriptionRequest, kind: OrgKind, settings: Settings, now: datetime
) -> tuple[Topic, list[Filter]]:
    """The topic and filters of an acceptable request; raises Invalid (422) naming the element."""
    topic = _topic(request.topic, kind)
    filters = [_filter(topic, i, item) for i, item in enumerate(request.filters)]
    if request.heartbeat_s is not None and request.heartbeat_s < settings.delivery_min_heartbeat_s:
        raise _bad(
            "Subscription.channel.extension",
            f"the heartbeat period is at least {settings.delivery_min_heartbeat_s} seconds",
            "value",
        )
    if request.timeout_s is not None and not 1 <= request.timeout_s <= MAX_TIMEOUT_S:
        raise _bad(
            "Subscription.channel.extension", f"the timeout is 1 to {MAX_TIMEOUT_S} s", "value"
        )
    if request.content_type == FHIR_JSON and settings.environment == "production":
        raise _bad(
            "Subscription.channel.payload",
            "plain application/fhir+json is for development and tests only; use "
            "application/jose (signed, then encrypted to your registered key)",
            "not-supported",
        )
    if len(request.reason) > MAX_REASON:
        raise _bad("Subscription.reason", f"at most {MAX_REASON} characters", "too-long")
    if request.end is not None and request.end <= now and request.status != "off":
        raise _bad("Subscription.end", "is in the past", "value")
    return topic, filters


def _topic(url: str, kind: OrgKind) -> Topic:
    topic = TOPICS.get(url)
    if topic is None:
        raise _bad(
            "Subscription.criteria", f"not a topic SPIS publishes ({TOPIC_LIST})", "not-supported"
        )
    if kind not in topic.subscribers:
        allowed = " and ".join(sorted(_KIND_WORDS[k] for k in topic.subscribers))
        raise _bad(
            "Subscription.criteria",
            f"the {topic.name} topic is for {allowed} systems, not a {_KIND_WORDS[kind]}'s",
            "business-rule",
        )
    return topic


def _filter(topic: Topic, index: int, item: tuple[str, str, str]) -> Filter:
    rtype, name, value = item
    where = f"Subscription.criteria.extension[{index}]"
    if rtype not in topic.resource_types:
        types = ", ".join(topic.resource_types)
        raise _bad(where, f"the {topic.name} topic's filters are on {types}", "not-supported")
    if name not in topic.can_filter_by:
        names = ", ".join(sorted(topic.can_filter_by))
        raise _bad(where, f"the {topic.name} topic filters by {names} only", "not-supported")
    return Filter(rtype, name, value)


def next_status(current: SubscriptionStatus, asked: str) -> SubscriptionStatus:
    """A subscriber may turn a subscription off, or ask for it again (`requested`, a new
    handshake) once it is off or in error. `active` and `error` are SPIS's to set; asking for
    `requested` while it is already active changes nothing."""
    if asked == current.value:
        return current
    if asked == SubscriptionStatus.OFF:
        return SubscriptionStatus.OFF
    if asked == SubscriptionStatus.REQUESTED:
        return current if current is SubscriptionStatus.ACTIVE else SubscriptionStatus.REQUESTED
    raise _bad(
        "Subscription.status",
        "a subscriber may set off, or requested (after off or error); SPIS sets active once "
        "the handshake is delivered, and error when deliveries fail",
        "business-rule",
    )
