"""The analyst's pages through the app, on outcome rows written straight into the outcome tables:
the chooser, the report (every figure the outcomes service gives, written as the page writes it;
masked cells masked), a stratum, the CSV download, the programme cost form."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import MEASURES, Report
from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.kit.clock import utcnow
from referral_service.outcomes import service as outcomes
from referral_service.people.models import Role
from referral_service.principal import Principal
from referral_service.web import analyst_period as periods
from referral_service.web.analyst import pence_of
from referral_service.web.analyst_cells import range_text, value_text
from referral_service.web.analyst_period import Period
from tests.fixtures.measure_reports import expected, from_csv
from tests.fixtures.web import csrf_token, signed_in
from tests.web.analyst_data import Area, add_area, add_outcomes
from tests.web.analyst_reports import page_cells

Q3 = Period(date(2026, 7, 1), date(2026, 9, 30))
REPORT = "/analyst/report?start=2026-07-01&end=2026-09-30"


@pytest.fixture
def area(session_factory: sessionmaker[Session]) -> Area:
    return add_area(session_factory)


@pytest.fixture
def analyst(
    client: TestClient, settings: Settings, session_factory: sessionmaker[Session], area: Area
) -> TestClient:
    signed_in(client, settings, session_factory, area.board.org_id, Role.ANALYST, "a@board.example")
    return client


def evaluated(
    session_factory: sessionmaker[Session],
    settings: Settings,
    board: str,
    focus: str | None = None,
) -> list[Report]:
    with session_factory() as session:
        ctx = Context(session, Principal.spis(), settings)
        return [
            outcomes.evaluate(ctx, measure, Q3.start, Q3.end, board, focus) for measure in MEASURES
        ]


def test_the_start_page_offers_the_periods_and_the_boards_own_practices_and_time_banks(
    analyst: TestClient,
) -> None:
    page = analyst.get("/analyst")
    assert page.status_code == 200
    text = page.text
    assert "outcomes reports" in text
    default = periods.preset_code(periods.last_full_quarter(utcnow().date()))
    assert f'<option value="{default}" selected>' in text
    assert (
        '<form class="form form--wide analyst-chooser" method="get" action="/analyst/report">'
        in text
    )
    for name in ("Rushey Green Group Practice (F84001)", "Torridon Road Surgery (F84002)"):
        assert name in text
    assert "Catford Time Bank" in text
    assert "Lewisham Time Bank" in text
    assert "Northern Practice" not in text  # another board's


def test_a_preset_is_sent_on_as_its_dates_and_own_dates_as_they_are(
    analyst: TestClient, area: Area
) -> None:
    preset = analyst.get(
        "/analyst/report?period=2026-Q3&start=&end=&focus=", follow_redirects=False
    )
    assert (preset.status_code, preset.headers["location"]) == (303, REPORT)
    focus = f"Organization/{area.big}"
    own = analyst.get(
        "/analyst/report",
        params={"period": "custom", "start": "2026-07-03", "end": "2026-08-14", "focus": focus},
        follow_redirects=False,
    )
    assert own.headers["location"] == (
        f"/analyst/report?start=2026-07-03&end=2026-08-14&focus=Organization%2F{area.big}"
    )


def test_wrong_dates_or_a_stratum_of_another_board_come_back_as_form_errors(
    analyst: TestClient, area: Area
) -> None:
    wrong = analyst.get("/analyst/report?period=custom&start=2026-08-14&end=2026-07-03")
    assert wrong.status_code == 400
    assert (
        '<a href="#end">The last day must be the same as or after the first day</a>' in wrong.text
    )
    assert '<option value="custom" selected>' in wrong.text
    assert 'value="2026-08-14"' in wrong.text
    other = analyst.get(f"{REPORT}&focus=Organization/{area.elsewhere}")
    assert other.status_code == 400
    assert "Choose the whole board, or one of its practices or time banks" in other.text
    assert "Northern Practice" not in other.text


def test_the_report_writes_every_figure_the_outcomes_service_gives(
    analyst: TestClient,
    area: Area,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    add_outcomes(session_factory, area, Q3)
    page = analyst.get(REPORT)
    assert page.status_code == 200, page.text
    on_page = page_cells(page.text)
    for report in evaluated(session_factory, settings, area.board.org_id):
        for cell in report.cells:
            figure = report.measure.figure(cell.figure)
            place = (cell.figure, cell.stratifier.value, cell.key)
            assert on_page.get((*place, "value")) == {value_text(cell, figure)}, place
            if (*place, "range") in on_page:
                assert on_page[(*place, "range")] == {range_text(cell, figure)}, place
    # Counted here, not by the service: 30 + 5 eligible people referred by the board's
    # practices; the other board's practice and the opted-out referrals count nowhere.
    assert on_page[("received", "total", "", "value")] == {"35"}
    assert on_page[("received", "practice", "F84002", "value")] == {"masked — small number"}
    assert on_page[("declined", "reason", "outside-catchment", "value")] == {
        "masked — small number"
    }
    assert on_page[("ons4-anxiety-change", "total", "", "value")] == {
        "masked — fewer than 8 people"
    }
    assert "N81001" not in page.text
    # Aggregates only: no person's, referral's or member's id anywhere on the page.
    assert [
        word for word in ("patient-", "task-", "member-", "partner-") if word in page.text
    ] == []
    assert "2026 Q3 (1 July 2026 to 30 September 2026)" in page.text


def test_a_stratum_narrows_the_report_to_one_practice(
    analyst: TestClient,
    area: Area,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    add_outcomes(session_factory, area, Q3)
    page = analyst.get(f"{REPORT}&focus=Organization/{area.big}")
    assert page.status_code == 200, page.text
    assert '<dd id="report-scope">Rushey Green Group Practice (F84001)</dd>' in page.text
    on_page = page_cells(page.text)
    assert on_page[("received", "total", "", "value")] == {"30"}
    assert (
        "report.csv?measure=spis-referral-funnel&amp;start=2026-07-01&amp;end=2026-09-30&amp;focus=Organization%2F"
        in page.text
    )


def test_one_measure_alone_and_an_unknown_one(analyst: TestClient) -> None:
    one = analyst.get(f"{REPORT}&measure=spis-wellbeing-change")
    assert one.status_code == 200
    assert 'id="spis-wellbeing-change"' in one.text
    assert 'id="spis-referral-funnel"' not in one.text
    assert analyst.get(f"{REPORT}&measure=nope").status_code == 404


def test_the_csv_download_is_the_measures_report_with_a_mark_for_excel(
    analyst: TestClient,
    area: Area,
    session_factory: sessionmaker[Session],
    settings: Settings,
) -> None:
    add_outcomes(session_factory, area, Q3)
    answer = analyst.get(
        "/analyst/report.csv?measure=spis-referral-funnel&start=2026-07-01&end=2026-09-30"
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert answer.headers["content-disposition"] == (
        'attachment; filename="spis-referral-funnel_2026-07-01_2026-09-30.csv"'
    )
    assert answer.text.startswith("\ufeffmeasure,figure,")
    cells, _ = from_csv(answer.text.removeprefix("\ufeff"))
    [funnel] = [
        r
        for r in evaluated(session_factory, settings, area.board.org_id)
        if r.measure.id == "spis-referral-funnel"
    ]
    assert cells == expected(funnel)
    assert cells[("received", "practice", "F84002")].absent == "masked: small-count"
    missing = analyst.get("/analyst/report.csv?measure=nope&start=2026-07-01&end=2026-09-30")
    assert missing.status_code == 404


def test_the_programme_cost_is_saved_for_exactly_the_period_and_shown(
    analyst: TestClient,
    area: Area,
    session_factory: sessionmaker[Session],
) -> None:
    page = analyst.get(REPORT)
    form = {"start": "2026-07-01", "end": "2026-09-30", "focus": "", "amount": "£12,500.40"}
    refused = analyst.post("/analyst/cost", data=form, follow_redirects=False)
    assert refused.status_code == 403  # no CSRF token: nothing saved
    wrong = analyst.post(
        "/analyst/cost", data={**form, "amount": "twelve", "csrf_token": csrf_token(page.text)}
    )
    assert wrong.status_code == 400
    assert (
        '<a href="#amount">Enter the programme cost in pounds, like 125000 or 125,000.50</a>'
        in wrong.text
    )
    assert 'value="twelve"' in wrong.text
    with session_factory() as session:
        assert outcomes.programme_cost(session, area.board.org_id, Q3.start, Q3.end) is None
    saved = analyst.post(
        "/analyst/cost", data={**form, "csrf_token": csrf_token(page.text)}, follow_redirects=False
    )
    assert (saved.status_code, saved.headers["location"]) == (
        303,
        f"{REPORT}&notice=programme-cost-saved",
    )
    with session_factory() as session:
        assert outcomes.programme_cost(session, area.board.org_id, Q3.start, Q3.end) == 1_250_040
    after = analyst.get(saved.headers["location"])
    assert "Programme cost saved." in after.text
    assert page_cells(after.text)[("programme-cost", "total", "", "value")] == {"£12,500"}


def test_every_report_the_pages_pull_is_an_audit_event_of_the_analyst(
    analyst: TestClient, area: Area, session_factory: sessionmaker[Session]
) -> None:
    analyst.get(f"{REPORT}&focus=Organization/{area.small}")
    analyst.get("/analyst/report.csv?measure=spis-coproduction&start=2026-07-01&end=2026-09-30")
    with session_factory() as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.kind == "export").order_by(AuditEvent.seq)
        ).all()
        pulled = [
            (e.actor_client_id.split("/")[0], e.tenant_org_id, e.entities, e.detail) for e in events
        ]
    board = f"Organization/{area.board.org_id}"
    page = [
        (
            "person",
            area.board.org_id,
            f"{board} Measure/{m} Organization/{area.small}",
            f"outcome report {m} 2026-07-01..2026-09-30",
        )
        for m in (
            "spis-referral-funnel",
            "spis-coproduction",
            "spis-wellbeing-change",
            "spis-social-value",
        )
    ]
    csv = (
        "person",
        area.board.org_id,
        f"{board} Measure/spis-coproduction",
        "outcome report spis-coproduction 2026-07-01..2026-09-30",
    )
    assert pulled == [*page, csv]


@pytest.mark.parametrize(
    ("typed", "pence"),
    [("12500", 1_250_000), ("£12,500.5", 1_250_050), (" 0.07 ", 7), ("21474836.47", 2**31 - 1)],
)
def test_a_programme_cost_is_read_as_pounds(typed: str, pence: int) -> None:
    assert pence_of(typed) == (pence, None)


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("", "Enter the programme cost in pounds"),
        ("12.505", "Enter the programme cost in pounds, like 125000 or 125,000.50"),
        ("-5", "Enter the programme cost in pounds, like 125000 or 125,000.50"),
        ("0", "Enter an amount more than £0 and at most £21,474,836.47"),
        ("21474836.48", "Enter an amount more than £0 and at most £21,474,836.47"),
    ],
)
def test_a_programme_cost_that_is_not_pounds_says_why(typed: str, error: str) -> None:
    assert pence_of(typed) == (None, error)
