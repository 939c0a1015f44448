"""`/fhir/AuditEvent`: a practice reads the audit trail of its own patients. Thin: parse → service
→ respond.

The router must be included before the generic `/fhir/{rtype}` routes, which would otherwise
answer "not supported" for AuditEvent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fhir_adapters.audit import AuditView, audit_event
from fhir_adapters.rules import split_reference
from referral_service.audit import chain, practice
from referral_service.auth.dependencies import require
from referral_service.errors import Invalid
from referral_service.fhir.endpoints import ContextDep, fhir_response
from referral_service.fhir.negotiation import check_accept
from referral_service.fhir.search import Paging, paged_searchset
from referral_service.kit.http import refuse_nul_in_url
from referral_service.kit.numbers import MAX_SQL_INT, whole_number

# Documented with the other /fhir routes, from the CapabilityStatement (fhir/openapi.py).
router = APIRouter(
    prefix="/fhir",
    tags=["FHIR"],
    dependencies=[Depends(check_accept), Depends(refuse_nul_in_url)],
    include_in_schema=False,
)
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@router.get("/AuditEvent")
def search_audit_events(ctx: ContextDep, request: Request) -> Response:
    require(ctx.principal, "AuditEvent", "s")
    params = request.query_params
    patient_id = _patient_id(params.get("patient"))
    count = _int_param(params.get("_count"), ctx.settings.default_page_size, "_count")
    count = min(max(count, 1), ctx.settings.max_page_size)
    offset = _int_param(params.get("_offset"), 0, "_offset")
    until = params.get("_until")
    found = practice.patient_events(ctx, patient_id, count=count, offset=offset, until=until)
    if until is None and found:
        until = found[0].event.id
    page = _Page(patient_id, count, offset, until)
    return fhir_response(_searchset(ctx.settings.fhir_base_url, page, found))


@router.get("/AuditEvent/{rid}")
def read_audit_event(rid: str, ctx: ContextDep) -> Response:
    require(ctx.principal, "AuditEvent", "r")
    return fhir_response(orjson.dumps(audit_event(as_view(practice.patient_event(ctx, rid)))))


def _patient_id(value: str | None) -> str:
    """`Patient/<id>`, an absolute Patient URL, or the bare id."""
    if not value:
        raise Invalid("AuditEvent search needs patient=Patient/<id>", status=400)
    if _ID.match(value):
        return value
    parts = split_reference(value)
    if parts is None or parts[0] != "Patient":
        raise Invalid("The patient parameter must name a Patient", status=400)
    return parts[1]


def _int_param(value: str | None, default: int, name: str) -> int:
    if value is None:
        return default
    number = whole_number(value)
    if number is None:
        raise Invalid(f"{name} must be a whole number from 0 to {MAX_SQL_INT}", status=400)
    return number


@dataclass(frozen=True, slots=True)
class _Page:
    patient_id: str
    count: int
    offset: int
    until: str | None

    def url(self, base: str, offset: int) -> str:
        query = {"patient": f"Patient/{self.patient_id}", "_count": self.count, "_offset": offset}
        if self.until is not None:
            query["_until"] = self.until
        return f"{base}/AuditEvent?{urlencode(query)}"


def _searchset(base: str, page: _Page, found: list[chain.Recorded]) -> bytes:
    shown = found[: page.count]
    paging = Paging(page.count, page.offset, has_next=len(found) > page.count)
    entries = [
        {
            "fullUrl": f"{base}/AuditEvent/{recorded.event.id}",
            "resource": audit_event(as_view(recorded)),
            "search": {"mode": "match"},
        }
        for recorded in shown
    ]
    total = len(shown) if paging.complete else None
    return paged_searchset(paging, lambda offset: page.url(base, offset), entries, total)


def as_view(recorded: chain.Recorded) -> AuditView:
    event = recorded.event
    return AuditView(
        id=event.id,
        recorded=event.recorded,
        action=event.action,
        kind=event.kind,
        actor_client_id=event.actor_client_id,
        actor_org_id=event.actor_org_id,
        patient_id=event.patient_id,
        entities=event.entities,
        purpose=event.purpose,
        outcome=event.outcome,
        detail=event.detail,
    )
