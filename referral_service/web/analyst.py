"""The health board analyst's pages: choose a period and a stratum, read the board's outcome
figures as charts and tables, download each measure as CSV, enter the programme cost.

- `GET /analyst`: the chooser (a GET form, so a report's address can be shared and bookmarked);
- `GET /analyst/report?start=&end=&focus=&measure=`: the report (all four measures, or the one
  `measure` names); a preset chosen in the form comes back as its dates (303);
- `GET /analyst/report.csv?measure=&start=&end=&focus=`: one measure's cells as CSV;
- `POST /analyst/cost`: the programme cost for exactly the period shown (CSRF-checked like every
  web form), then back to the report.

Every figure comes from `outcomes.service.evaluate` (the function the FHIR API calls, which
audits each report pulled), as the board itself: the analyst's Context carries the board as its
Principal. An analyst sees aggregates only: nothing here names or links to a person or a referral.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import Response

from fhir_adapters.measure_report import report_csv
from fhir_adapters.measures import MEASURES
from referral_service.errors import Invalid, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.numbers import MAX_SQL_INT
from referral_service.outcomes import service as outcomes
from referral_service.web import analyst_period as periods
from referral_service.web.analyst_page import Choice, ReportPage, chooser, report_page, report_url
from referral_service.web.ledger import EXCEL_BOM
from referral_service.web.render import render, see_other
from referral_service.web.security import Analyst, FormText

router = APIRouter(prefix="/analyst")
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
OptionalText = Annotated[str, Form()]


@router.get("")
def start(request: Request, viewer: Analyst) -> Response:
    today = utcnow().date()
    choice = Choice(periods.last_full_quarter(today), "")
    return render(request, "analyst/start.html", {"chooser": chooser(viewer, choice, today)})


@router.get("/report")
def report(
    request: Request,
    viewer: Analyst,
    period: str = "",
    start: str = "",
    end: str = "",
    focus: str = "",
    measure: str = "",
) -> Response:
    """The report; a period chosen from the form's presets is sent on as its dates."""
    if period and period != periods.CUSTOM:
        chosen = periods.preset(period)
        if chosen is None:
            return _choose_again(request, viewer, start, end, focus, {"period": "Choose a period"})
        return see_other(report_url(chosen, focus, measure))
    found, errors = periods.parse(start, end)
    if found is None:
        return _choose_again(request, viewer, start, end, focus, errors)
    if period == periods.CUSTOM:
        return see_other(report_url(found, focus, measure))
    return _report(request, viewer, Choice(found, focus, measure))


@router.get("/report.csv")
def report_download(
    viewer: Analyst, measure: str = "", start: str = "", end: str = "", focus: str = ""
) -> Response:
    """One measure's report as CSV, one row per cell (suppressed cells marked, never zero), with
    the byte order mark the pages' downloads carry for Excel (web/ledger.py)."""
    found, _ = periods.parse(start, end)
    if found is None or measure not in MEASURES:
        raise NotFound("Not found")
    board = viewer.organisation.id
    pulled = outcomes.evaluate(
        viewer.context, measure, found.start, found.end, board, focus or None
    )
    name = f"{measure}_{found.start:%Y-%m-%d}_{found.end:%Y-%m-%d}.csv"
    return Response(
        EXCEL_BOM + report_csv(pulled),
        media_type=CSV_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.post("/cost")
def programme_cost(
    request: Request,
    viewer: Analyst,
    start: FormText,
    end: FormText,
    amount: OptionalText = "",
    focus: OptionalText = "",
) -> Response:
    """The board's programme cost for exactly this period; the report shows it beside the
    social value estimate."""
    found, _ = periods.parse(start, end)
    if found is None:
        raise NotFound("Not found")  # the form always sends the report's own dates
    pence, error = pence_of(amount)
    if pence is not None:
        try:
            outcomes.set_programme_cost(
                viewer.context,
                viewer.organisation.id,
                found.start,
                found.end,
                pence,
                f"Person/{viewer.person.id}",
            )
        except Invalid as exc:
            error = str(exc)
        else:
            return see_other(report_url(found, focus), notice="programme-cost-saved")
    choice = Choice(found, focus, amount=amount)
    return _report(request, viewer, choice, errors={"amount": error or ""}, status=400)


# -- the parts -----------------------------------------------------------------------------------


def pence_of(text: str) -> tuple[int | None, str | None]:
    """Pounds as typed ("12,500", "£12500.50") in pence, or why not."""
    cleaned = text.strip().removeprefix("£").replace(",", "").strip()
    if not cleaned:
        return None, "Enter the programme cost in pounds"
    whole, _, pennies = cleaned.partition(".")
    if not whole.isdigit() or (pennies and not (pennies.isdigit() and len(pennies) <= 2)):
        return None, "Enter the programme cost in pounds, like 125000 or 125,000.50"
    pence = int(whole) * 100 + int(pennies.ljust(2, "0") or "0")
    if not 0 < pence <= MAX_SQL_INT:  # what the column holds
        return None, f"Enter an amount more than £0 and at most £{MAX_SQL_INT / 100:,.2f}"
    return pence, None


def _report(
    request: Request,
    viewer: Analyst,
    choice: Choice,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    today = utcnow().date()
    try:
        page: ReportPage = report_page(viewer, choice, today)
    except Invalid as exc:
        return _choose_again(
            request,
            viewer,
            choice.period.start.isoformat(),
            choice.period.end.isoformat(),
            choice.focus,
            {"focus": str(exc)},
        )
    context = {"page": page, "chooser": page.chooser, "errors": errors or {}}
    return render(request, "analyst/report.html", context, status=status)


def _choose_again(
    request: Request, viewer: Analyst, start: str, end: str, focus: str, errors: dict[str, str]
) -> Response:
    """The chooser again, with what was wrong beside the fields."""
    today = utcnow().date()
    shown = chooser(viewer, Choice(periods.last_full_quarter(today), focus), today)
    shown = shown.with_dates(start, end)
    context = {"chooser": shown, "errors": errors}
    return render(request, "analyst/start.html", context, status=400)
