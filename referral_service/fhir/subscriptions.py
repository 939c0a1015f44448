"""`/fhir/Subscription` (R5 topic-based subscriptions, backported to R4) and the topics as
`/fhir/Basic?code=SubscriptionTopic`. Thin: parse → `deliveries.service` → render with
`fhir_adapters.subscriptions`.

Included before the generic `/fhir/{rtype}` routes (app.py): a Subscription lives in columns of
its own, not in the resource store. Practices and time banks hold `system/Subscription.cruds`;
each sees only its own organisation's subscriptions (another's is a 404).
"""

from __future__ import annotations

from datetime import UTC
from email.utils import format_datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fhir_adapters.codes import FHIR_TYPES_SYSTEM
from fhir_adapters.subscription_topics import (
    TOPIC_CODE,
    StatusView,
    TopicView,
    status_bundle,
    topic_basic,
)
from fhir_adapters.subscriptions import (
    SubscriptionRequest,
    SubscriptionView,
    subscription_resource,
)
from referral_service.auth.dependencies import require
from referral_service.auth.endpoints import jwks_cache
from referral_service.deliveries import service
from referral_service.deliveries.models import Subscription, SubscriptionStatus
from referral_service.deliveries.topics import TOPICS, Topic, decode_filters
from referral_service.errors import Invalid, NotFound
from referral_service.fhir.endpoints import Body, ContextDep, fhir_response
from referral_service.fhir.negotiation import check_accept
from referral_service.fhir.search import small_searchset
from referral_service.kit.http import refuse_nul_in_url

# Documented with the other /fhir routes, from the CapabilityStatement (fhir/openapi.py).
router = APIRouter(
    prefix="/fhir",
    tags=["FHIR"],
    dependencies=[Depends(check_accept), Depends(refuse_nul_in_url)],
    include_in_schema=False,
)
STATUS = "$status"
_STATUS_CODES = frozenset(s.value for s in SubscriptionStatus)


@router.post("/Subscription")
def create(ctx: ContextDep, body: Body, request: Request) -> Response:
    require(ctx.principal, "Subscription", "c")
    created = service.create(ctx, body, jwks_cache(request))
    location = f"{ctx.settings.fhir_base_url}/Subscription/{created.id}"
    return _response(created, 201, location)


@router.get("/Subscription")
def search(ctx: ContextDep, request: Request) -> Response:
    require(ctx.principal, "Subscription", "s")
    found = service.search(ctx, _criteria(list(request.query_params.multi_items())))
    base = ctx.settings.fhir_base_url
    entries = [(f"{base}/Subscription/{s.id}", subscription_resource(as_view(s))) for s in found]
    return fhir_response(small_searchset(entries))


@router.get(f"/Subscription/{STATUS}")
def status_of_many(ctx: ContextDep, request: Request) -> Response:
    require(ctx.principal, "Subscription", "r")
    values = request.query_params.getlist("id")
    ids = [i.strip() for v in values for i in v.split(",") if i.strip()] if values else None
    return _statuses(ctx.settings.fhir_base_url, service.statuses(ctx, ids))


@router.get("/Subscription/{rid}")
def read(rid: str, ctx: ContextDep) -> Response:
    require(ctx.principal, "Subscription", "r")
    return _response(service.read(ctx, rid))


@router.put("/Subscription/{rid}")
def update(rid: str, ctx: ContextDep, body: Body, request: Request) -> Response:
    require(ctx.principal, "Subscription", "u")
    if body.get("id") != rid:
        raise Invalid(
            "The resource id must match the id in the URL",
            status=400,
            expression=["Subscription.id"],
        )
    if_match = request.headers.get("if-match")
    updated = service.update(ctx, rid, body, if_match, jwks_cache(request))
    return _response(updated)


@router.delete("/Subscription/{rid}")
def delete(rid: str, ctx: ContextDep) -> Response:
    require(ctx.principal, "Subscription", "d")
    service.delete(ctx, rid)
    return Response(status_code=204)


@router.get(f"/Subscription/{{rid}}/{STATUS}")
def status_of_one(rid: str, ctx: ContextDep) -> Response:
    require(ctx.principal, "Subscription", "r")
    found = service.statuses(ctx, [rid])
    if not found:
        raise NotFound("This Subscription is not known")
    return _statuses(ctx.settings.fhir_base_url, found)


# --- the topics: public definitions, no token ------------------------------------------------------


@router.get("/Basic")
def search_topics(request: Request) -> Response:
    """`code` (`SubscriptionTopic`, with or without the fhir-types system) and `_id`."""
    found = list(TOPICS.values())
    for name, value in request.query_params.multi_items():
        if name == "code":
            codes = {c.removeprefix(f"{FHIR_TYPES_SYSTEM}|") for c in value.split(",")}
            found = found if TOPIC_CODE in codes else []
        elif name == "_id":
            found = [t for t in found if t.name in value.split(",")]
    base = request.app.state.settings.fhir_base_url
    return fhir_response(small_searchset([(f"{base}/Basic/{t.name}", _basic(t)) for t in found]))


@router.get("/Basic/{rid}")
def read_topic(rid: str) -> Response:
    topic = next((t for t in TOPICS.values() if t.name == rid), None)
    if topic is None:
        raise NotFound("This Basic is not known: SPIS serves only its SubscriptionTopics here")
    return fhir_response(orjson.dumps(_basic(topic)))


def _basic(topic: Topic) -> dict[str, Any]:
    return topic_basic(
        TopicView(
            url=topic.url,
            name=topic.name,
            title=topic.title,
            description=topic.description,
            resource_types=topic.resource_types,
            can_filter_by=tuple(sorted(topic.can_filter_by)),
        )
    )


# --- rendering -------------------------------------------------------------------------------------


def as_view(row: Subscription) -> SubscriptionView:
    held = SubscriptionRequest(
        status=row.status.value,
        topic=row.topic,
        filters=tuple(decode_filters(row.filters)),
        endpoint=row.endpoint,
        content_type=row.content_type,
        payload=row.payload.value,
        heartbeat_s=row.heartbeat_period_s,
        timeout_s=row.timeout_s,
        end=row.end,
        reason=row.reason,
    )
    error = row.error if row.status is SubscriptionStatus.ERROR else None
    return SubscriptionView(row.id, row.version_id, row.last_updated, error, held)


def _response(row: Subscription, status: int = 200, location: str | None = None) -> Response:
    headers = {
        "ETag": f'W/"{row.version_id}"',
        "Last-Modified": format_datetime(row.last_updated.astimezone(UTC), usegmt=True),
    }
    if location:
        headers["Location"] = location
    body = orjson.dumps(subscription_resource(as_view(row)))
    return fhir_response(body, status, headers)


def _statuses(base: str, rows: list[Subscription]) -> Response:
    views = [
        StatusView(
            subscription_url=f"{base}/Subscription/{row.id}",
            topic=row.topic,
            status=row.status.value,
            events_since_start=row.events_since_start,
            error=row.error if row.status is SubscriptionStatus.ERROR else None,
        )
        for row in rows
    ]
    return fhir_response(orjson.dumps(status_bundle(views)))


def _criteria(params: list[tuple[str, str]]) -> service.Search:
    """`_id`, `status` and `criteria` (the topic's canonical URL, exactly); a comma means OR and
    a repeated parameter AND. Other parameters are ignored."""
    chosen: dict[str, set[str]] = {}
    for name, value in params:
        if name in ("_id", "status", "criteria"):
            values = {v.rsplit("|", 1)[-1] if name == "status" else v for v in value.split(",")}
            chosen[name] = chosen[name] & values if name in chosen else values
    statuses = chosen.get("status")
    return service.Search(
        ids=sorted(chosen["_id"]) if "_id" in chosen else None,
        statuses=None
        if statuses is None
        else [SubscriptionStatus(s) for s in sorted(statuses) if s in _STATUS_CODES],
        topics=sorted(chosen["criteria"]) if "criteria" in chosen else None,
    )
