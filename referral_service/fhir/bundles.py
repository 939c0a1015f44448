"""Bundles at the edge: transaction/batch requests → intake entries; the Bundles we answer."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson

from fhir_adapters.outcome import FhirError, operation_outcome
from referral_service.errors import Invalid, ServiceError
from referral_service.referrals.service import Entry, Outcome
from referral_service.store.service import Version

STATUS_TEXT = {200: "200 OK", 201: "201 Created"}


def entries_of(bundle: dict[str, Any]) -> list[Entry]:
    return [_entry(index, raw) for index, raw in enumerate(bundle.get("entry") or [])]


def _entry(index: int, raw: dict[str, Any]) -> Entry:
    where = f"Bundle.entry[{index}]"
    request = _request_of(raw, where)
    method, url = request.get("method"), (request.get("url") or "").strip("/")
    resource = raw.get("resource")
    if method not in ("POST", "PUT"):
        raise Invalid(
            f"{where}.request.method {method} is not supported (POST and PUT are)",
            status=400,
            issue_code="not-supported",
            expression=[f"{where}.request.method"],
        )
    if not isinstance(resource, dict):
        raise Invalid(
            f"{where} needs a resource",
            status=400,
            issue_code="required",
            expression=[f"{where}.resource"],
        )
    rtype = resource["resourceType"]
    path = url.split("?")[0].split("/")
    if method == "POST" and path != [rtype]:
        raise Invalid(
            f"{where}.request.url must be {rtype} for a create",
            status=400,
            expression=[f"{where}.request.url"],
        )
    if method == "PUT" and (len(path) != 2 or path[0] != rtype or resource.get("id") != path[1]):
        raise Invalid(
            f"{where}.request.url must be {rtype}/<id> matching resource.id",
            status=400,
            expression=[f"{where}.request.url"],
        )
    return Entry(
        method=method,
        rtype=rtype,
        resource=resource,
        full_url=raw.get("fullUrl"),
        rid=path[1] if method == "PUT" else None,
        if_none_exist=request.get("ifNoneExist"),
        if_match=request.get("ifMatch"),
    )


def _request_of(raw: dict[str, Any], where: str) -> dict[str, Any]:
    request = raw.get("request")
    if not isinstance(request, dict):
        # R4 bdl-3: every entry of a transaction or batch says what to do with it.
        raise Invalid(
            f"{where}.request is required in a transaction or batch (method and url)",
            status=400,
            issue_code="required",
            expression=[f"{where}.request"],
        )
    return request


def response_entry(outcome: Outcome, base: str, with_resource: bool) -> dict[str, Any]:
    version = outcome.version
    response: dict[str, Any] = {
        "status": STATUS_TEXT[201 if outcome.created else 200],
        "location": version.location,
        "etag": version.etag,
        "lastModified": version.last_updated.isoformat().replace("+00:00", "Z"),
    }
    if outcome.note:
        response["outcome"] = operation_outcome(
            "informational", outcome.note, severity="information"
        )
    entry: dict[str, Any] = {"fullUrl": f"{base}/{version.type}/{version.id}", "response": response}
    if with_resource:
        entry["resource"] = orjson.Fragment(version.body)
    return entry


def error_entry(exc: ServiceError | FhirError) -> dict[str, Any]:
    if isinstance(exc, FhirError):
        outcome = exc.to_outcome()
    else:
        outcome = operation_outcome(exc.issue_code, exc.message, expression=exc.expression)
    return {"response": {"status": str(exc.status), "outcome": outcome}}


def response_bundle(kind: str, entries: Sequence[dict[str, Any]]) -> bytes:
    return orjson.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)})


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(version: Version) -> str:
    """`Last-Modified`: RFC 9110's IMF-fixdate (`email.utils.format_datetime(..., usegmt=True)`,
    which cost 4% of a read), of a UTC time (`Version.of` makes it one)."""
    t = version.last_updated
    if t.utcoffset() != timedelta(0):
        raise ValueError("an HTTP date is written from a UTC time")
    return (
        f"{_DAYS[t.weekday()]}, {t.day:02d} {_MONTHS[t.month - 1]} {t.year:04d} "
        f"{t.hour:02d}:{t.minute:02d}:{t.second:02d} GMT"
    )
