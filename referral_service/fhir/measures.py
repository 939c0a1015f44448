"""`/fhir/Measure`: the outcome measures (DESIGN §9) and `$evaluate-measure`, which answers a
health board's summary MeasureReport, or the same report as CSV. Thin: parse → `outcomes.service`
→ render with `fhir_adapters.measure_report`.

Included before the generic `/fhir/{rtype}` routes (app.py), which would otherwise answer "not
supported" for Measure. Reading a Measure needs `system/Measure.r` (searching, `.s`); the operation
needs `system/Measure.r` and `system/MeasureReport.r`: only health boards hold them, and a board
gets its own area's figures only (another board's is a 404, from the service).
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fhir_adapters.measure_report import measure_report, measure_resource, report_csv
from fhir_adapters.measures import MEASURES, MeasureDefinition
from fhir_adapters.operations import arguments
from fhir_adapters.parse import validate_resource
from fhir_adapters.rules import split_reference
from referral_service.auth.dependencies import require
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.errors import Invalid, NotFound
from referral_service.fhir.endpoints import ContextDep, fhir_response
from referral_service.fhir.negotiation import check_accept, read_json_body, wants_csv
from referral_service.fhir.search import small_searchset
from referral_service.kit.http import refuse_nul_in_url
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.outcomes import service as outcomes

# Documented with the other /fhir routes, from the CapabilityStatement (fhir/openapi.py).
router = APIRouter(
    prefix="/fhir",
    tags=["FHIR"],
    dependencies=[Depends(refuse_nul_in_url)],
    include_in_schema=False,
)
JsonOnly = [Depends(check_accept)]  # the operation negotiates JSON or CSV itself
Body = Annotated[dict[str, Any], Depends(read_json_body)]

OPERATION = "$evaluate-measure"
PARAMETERS = ("periodStart", "periodEnd", "subject", "reportType")
_DATE = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{2})(?:-(?P<day>\d{2}))?)?$")


@router.get("/Measure", dependencies=JsonOnly)
def search_measures(ctx: ContextDep, request: Request) -> Response:
    """`_id` and `url` (exact; comma-separated alternatives); other parameters are ignored."""
    require(ctx.principal, "Measure", "s")
    found = list(MEASURES.values())
    for name, value in request.query_params.multi_items():
        if name == "_id":
            found = [m for m in found if m.id in value.split(",")]
        elif name == "url":
            found = [m for m in found if m.url in value.split(",")]
    base = ctx.settings.fhir_base_url
    return fhir_response(
        small_searchset([(f"{base}/Measure/{m.id}", _measure(m, ctx.settings)) for m in found])
    )


@router.get("/Measure/{rid}", dependencies=JsonOnly)
def read_measure(rid: str, ctx: ContextDep) -> Response:
    require(ctx.principal, "Measure", "r")
    return fhir_response(orjson.dumps(_measure(_definition(rid), ctx.settings)))


@router.get(f"/Measure/{{rid}}/{OPERATION}")
def evaluate_get(rid: str, ctx: ContextDep, request: Request) -> Response:
    csv = wants_csv(request)
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "_format"]
    return _evaluate(ctx, rid, query, csv=csv)


@router.post(f"/Measure/{{rid}}/{OPERATION}")
def evaluate_post(rid: str, ctx: ContextDep, body: Body, request: Request) -> Response:
    csv = wants_csv(request)
    validate_resource(body, expected_type="Parameters")
    return _evaluate(ctx, rid, arguments(body), csv=csv)


def _evaluate(ctx: Context, rid: str, given: list[tuple[str, str]], *, csv: bool) -> Response:
    require(ctx.principal, "Measure", "r")
    require(ctx.principal, "MeasureReport", "r")
    definition = _definition(rid)
    args = _arguments(given)
    start = _date(args, "periodStart", last=False)
    end = _date(args, "periodEnd", last=True)
    if end < start:
        raise _bad("periodEnd is before periodStart", "periodEnd")
    if args.get("reportType", "population") != "population":
        raise _bad("Only reportType=population (a summary report) is offered", "reportType")
    board_id, focus = _subject(ctx, args.get("subject"))
    report = outcomes.evaluate(ctx, definition.id, start, end, board_id, focus)
    if csv:
        name = f"{definition.id}-{start.isoformat()}-{end.isoformat()}.csv"
        return Response(
            content=report_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return fhir_response(orjson.dumps(measure_report(report, base_url=ctx.settings.fhir_base_url)))


def _definition(rid: str) -> MeasureDefinition:
    if rid not in MEASURES:
        raise NotFound("This Measure is not known (GET /fhir/Measure lists them)")
    return MEASURES[rid]


def _measure(definition: MeasureDefinition, settings: Settings) -> dict[str, Any]:
    return measure_resource(
        definition,
        baseline_days=settings.outcome_baseline_window_days,
        min_weeks=settings.outcome_follow_up_min_weeks,
        max_weeks=settings.outcome_follow_up_max_weeks,
    )


def _arguments(given: list[tuple[str, str]]) -> dict[str, str]:
    """Each known parameter once; an unknown one is refused rather than silently ignored."""
    args: dict[str, str] = {}
    for name, value in given:
        if name not in PARAMETERS:
            shown = name if re.fullmatch(r"[A-Za-z_]{1,40}", name) else "a parameter"
            raise _bad(f"{OPERATION} does not take {shown}: it takes {', '.join(PARAMETERS)}")
        if name in args:
            raise _bad(f"{name} is given more than once", name)
        args[name] = value
    return args


def _date(args: dict[str, str], name: str, *, last: bool) -> date:
    """YYYY-MM-DD, or YYYY-MM / YYYY for a whole month or year: its first day as a start, its
    last day as an end."""
    text = args.get(name)
    if text is None:
        raise _bad(f"{name} is required (a date: YYYY-MM-DD, YYYY-MM or YYYY)", name, "required")
    invalid = _bad(f"{name} must be a date: YYYY-MM-DD, YYYY-MM or YYYY", name)
    match = _DATE.match(text)
    if match is None:
        raise invalid
    year = int(match["year"])
    try:
        if match["month"] is None:
            return date(year, 12, 31) if last else date(year, 1, 1)
        month = int(match["month"])
        if match["day"] is None:
            return date(year, month, calendar.monthrange(year, month)[1] if last else 1)
        return date(year, month, int(match["day"]))
    except ValueError:  # month 13, 30 February; calendar.IllegalMonthError is one too
        raise invalid from None


def _subject(ctx: Context, subject: str | None) -> tuple[str, str | None]:
    """(board, focus): the caller's board by default; a board named by id; or a practice or time
    bank, which narrows the caller's board's report to it (the service checks it is there)."""
    if subject is None or subject == f"Organization/{ctx.principal.org_id}":
        return ctx.principal.org_id, None
    parts = split_reference(subject)
    if parts is None or parts[0] != "Organization":
        raise _bad("subject must be Organization/<id>: the board, or one of its practices or "
                   "time banks", "subject")  # fmt: skip
    org = organisations.get(ctx.session, parts[1])
    if org is None:
        raise NotFound("The subject Organization is not known")
    if org.kind is OrgKind.HEALTHBOARD:
        return org.id, None  # another board's: the service answers "not found"
    if org.board_id != ctx.principal.org_id:
        raise _bad("subject is not in your board's area", "subject")
    return ctx.principal.org_id, f"Organization/{org.id}"


def _bad(message: str, parameter: str | None = None, code: str = "invalid") -> Invalid:
    return Invalid(
        message, status=400, issue_code=code, expression=[parameter] if parameter else None
    )
