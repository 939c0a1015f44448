"""`/fhir/Measure` and `$evaluate-measure` over HTTP: the Measures, a board's MeasureReport and CSV
equal to the service's Report cell for cell, masked cells, who may ask, and that no answer names a
person. Outcome rows are inserted directly, as the workers would keep them."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.measurereport import MeasureReport
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measure_report import CSV_HEADER, measure_resource
from fhir_adapters.measures import FUNNEL, MEASURES, WELLBEING, Report
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import set_board
from referral_service.outcomes import service as outcomes
from referral_service.outcomes.models import OutcomeDecline, OutcomeScore, ReferralOutcome
from referral_service.principal import Principal
from tests.fixtures.measure_reports import expected, from_csv, from_measure_report
from tests.fixtures.systems import TestSystem, bearer, register_system

JULY = datetime(2026, 7, 6, 10, 0, tzinfo=UTC)
QUARTER = "periodStart=2026-07&periodEnd=2026-09"
EVALUATE = "/fhir/Measure/{}/$evaluate-measure"


@dataclass
class Area:
    board: TestSystem
    headers: dict[str, str]
    practice: TestSystem
    small_practice: TestSystem
    timebank: TestSystem
    people: list[str]  # every id inserted that stands for a person or a referral


@pytest.fixture
def area(
    client: TestClient,
    session_factory: sessionmaker[Session],
    healthboard: TestSystem,
    practice: TestSystem,
    practice_b: TestSystem,
    timebank: TestSystem,
) -> Area:
    """20 people referred by one practice (accepted, with SWEMWBS pairs), 3 and 4 by two others:
    small counts, each hiding the other (a practice's count could otherwise be worked out from
    the total)."""
    practice_c = register_system(session_factory, OrgKind.PRACTICE, name="Third", ods="F84003")
    people: list[str] = []
    with session_factory() as session, session.begin():
        for org in (practice, practice_b, practice_c, timebank):
            set_board(session, org.org_id, healthboard.org_id)
        for i in range(20):
            people += _referral(session, f"a{i}", practice.org_id, timebank.org_id, i, scored=True)
        for i in range(3):
            people += _referral(session, f"b{i}", practice_b.org_id, timebank.org_id, i)
        for i in range(4):
            people += _referral(session, f"c{i}", practice_c.org_id, timebank.org_id, i)
    return Area(healthboard, bearer(client, healthboard), practice, practice_b, timebank, people)


def _referral(
    session: Session, name: str, practice_id: str, timebank_id: str, i: int, *, scored: bool = False
) -> list[str]:
    referral_id, patient_id, member_id = f"task-{name}", f"patient-{name}", f"member-{name}"
    received = JULY + timedelta(days=2 * i)
    accepted = received + timedelta(days=1 + i % 5) if scored else None
    session.add(
        ReferralOutcome(
            referral_id=referral_id,
            practice_id=practice_id,
            patient_id=patient_id,
            timebank_id=timebank_id,
            status="accepted" if scored else "requested",
            received_at=received,
            routed_at=received + timedelta(hours=1),
            accepted_at=accepted,
            member_id=member_id if scored else None,
            enrolled_at=accepted,
            eligible=True,
        )
    )
    session.flush()
    if scored:
        baseline_at = received + timedelta(days=3)
        session.add(
            OutcomeScore(
                referral_id=referral_id,
                scale="swemwbs",
                baseline=19.25 + i % 4,
                baseline_at=baseline_at,
                follow_up=21.54 + (i % 7) * 0.8,
                follow_up_at=datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=i),
            )
        )
    elif i == 0:
        declined = received + timedelta(days=1)
        session.add(
            OutcomeDecline(
                referral_id=referral_id,
                task_id=f"tb-{name}",
                timebank_id=timebank_id,
                reason="no-capacity",
                declined_at=declined,
            )
        )
    return [referral_id, patient_id, member_id]


def service_report(
    session_factory: sessionmaker[Session],
    settings: Settings,
    measure_id: str,
    board_id: str,
    focus: str | None = None,
) -> Report:
    """What the service computes for the quarter, asked as SPIS."""
    with session_factory() as session:
        ctx = Context(session, Principal.spis(), settings)
        report = outcomes.evaluate(
            ctx, measure_id, date(2026, 7, 1), date(2026, 9, 30), board_id, focus
        )
        session.rollback()
    return report


def _issue(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = body["issue"][0]
    return issue


# --- Measure ----------------------------------------------------------------------------------


def test_the_measures_are_read_and_searched(
    client: TestClient, area: Area, settings: Settings
) -> None:
    found = client.get("/fhir/Measure", headers=area.headers).json()
    assert found["type"] == "searchset"
    assert [e["resource"]["id"] for e in found["entry"]] == list(MEASURES)
    assert found["entry"][0]["fullUrl"] == f"{settings.fhir_base_url}/Measure/{FUNNEL.id}"
    by_url = client.get("/fhir/Measure", params={"url": WELLBEING.url}, headers=area.headers)
    assert [e["resource"]["url"] for e in by_url.json()["entry"]] == [WELLBEING.url]
    by_id = client.get("/fhir/Measure", params={"_id": FUNNEL.id}, headers=area.headers)
    assert by_id.json()["total"] == 1
    read = client.get(f"/fhir/Measure/{WELLBEING.id}", headers=area.headers)
    assert read.headers["content-type"].startswith("application/fhir+json")
    assert read.json() == measure_resource(
        WELLBEING,
        baseline_days=settings.outcome_baseline_window_days,
        min_weeks=settings.outcome_follow_up_min_weeks,
        max_weeks=settings.outcome_follow_up_max_weeks,
    )
    issue = _issue(client.get("/fhir/Measure/spis-nothing", headers=area.headers), 404)
    assert issue["code"] == "not-found"


def test_the_capability_statement_lists_measure_and_its_operation_only(
    client: TestClient,
) -> None:
    resources = {r["type"]: r for r in client.get("/fhir/metadata").json()["rest"][0]["resource"]}
    measure = resources["Measure"]
    assert [i["code"] for i in measure["interaction"]] == ["read", "search-type"]
    assert [p["name"] for p in measure["searchParam"]] == ["_id", "url"]
    [operation] = measure["operation"]
    assert operation["name"] == "evaluate-measure"
    assert operation["definition"].endswith("/OperationDefinition/Measure-evaluate-measure")
    assert "MeasureReport" not in resources  # only the operation's answer: not stored, not read


# --- $evaluate-measure ------------------------------------------------------------------------


def test_get_answers_a_valid_measure_report_equal_to_the_service_report(
    client: TestClient, area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    for definition in (FUNNEL, WELLBEING):
        url = f"{EVALUATE.format(definition.id)}?{QUARTER}&subject=Organization/{area.board.org_id}"
        response = client.get(url, headers=area.headers)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/fhir+json")
        published = response.json()
        MeasureReport.model_validate(published)
        assert (published["status"], published["type"]) == ("complete", "summary")
        assert published["period"] == {"start": "2026-07-01", "end": "2026-09-30"}
        assert published["reporter"]["reference"] == f"Organization/{area.board.org_id}"
        report = service_report(session_factory, settings, definition.id, area.board.org_id)
        assert from_measure_report(published) == expected(report)
    received = from_measure_report(_funnel(client, area))
    assert received[("received", "practice", "F84001")].value == 20
    assert received[("received", "total", "")].value == 25  # 27 people, rounded to 5
    assert received[("received", "practice", "F84003")].absent == "masked: small-count"


def _funnel(client: TestClient, area: Area, query: str = QUARTER) -> dict[str, Any]:
    response = client.get(f"{EVALUATE.format(FUNNEL.id)}?{query}", headers=area.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_post_with_parameters_answers_the_same_report(client: TestClient, area: Area) -> None:
    parameters = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "periodStart", "valueDate": "2026-07-01"},
            {"name": "periodEnd", "valueDate": "2026-09-30"},
            {"name": "subject", "valueString": f"Organization/{area.board.org_id}"},
        ],
    }
    response = client.post(EVALUATE.format(FUNNEL.id), json=parameters, headers=area.headers)
    assert response.status_code == 200, response.text
    MeasureReport.model_validate(response.json())
    assert from_measure_report(response.json()) == from_measure_report(_funnel(client, area))


def test_small_counts_are_masked_in_fhir_and_csv(client: TestClient, area: Area) -> None:
    published = from_measure_report(_funnel(client, area))
    assert published[("received", "practice", "F84002")].absent == "masked: small-count"
    text = client.get(
        f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}&_format=csv", headers=area.headers
    ).text
    rows = {
        (r["figure"], r["stratifier"], r["stratum"]): r for r in csv.DictReader(io.StringIO(text))
    }
    small = rows[("received", "practice", "F84002")]
    assert (small["value"], small["suppressed"]) == ("", "masked: small-count")


def test_csv_rows_equal_the_report_cells(
    client: TestClient, area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = service_report(session_factory, settings, WELLBEING.id, area.board.org_id)
    url = f"{EVALUATE.format(WELLBEING.id)}?{QUARTER}"
    for response in (
        client.get(f"{url}&_format=csv", headers=area.headers),
        client.get(url, headers={**area.headers, "Accept": "text/csv"}),
    ):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == (
            'attachment; filename="spis-wellbeing-change-2026-07-01-2026-09-30.csv"'
        )
        assert response.text.splitlines()[0] == ",".join(CSV_HEADER)
        cells, _ = from_csv(response.text)
        assert cells == expected(report)
    change = cells[("swemwbs-change", "total", "")]
    assert change.n == 20
    assert change.low is not None
    assert change.high is not None


def test_a_practice_of_the_board_narrows_the_report(
    client: TestClient, area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    focus = f"Organization/{area.practice.org_id}"
    published = _funnel(client, area, f"{QUARTER}&subject={focus}")
    assert published["subject"] == {"reference": focus}
    report = service_report(session_factory, settings, FUNNEL.id, area.board.org_id, focus)
    assert from_measure_report(published) == expected(report)
    assert from_measure_report(published)[("received", "total", "")].value == 20


def test_months_and_years_stand_for_their_first_and_last_days(
    client: TestClient, area: Area
) -> None:
    assert _funnel(client, area, "periodStart=2026&periodEnd=2026")["period"] == {
        "start": "2026-01-01",
        "end": "2026-12-31",
    }
    assert _funnel(client, area, "periodStart=2026-02&periodEnd=2026-02")["period"] == {
        "start": "2026-02-01",
        "end": "2026-02-28",
    }
    outside = from_measure_report(_funnel(client, area, "periodStart=2026-01&periodEnd=2026-06"))
    assert outside[("received", "total", "")].value == 0


# --- refusals ---------------------------------------------------------------------------------


def test_practices_and_time_banks_may_not_ask(
    client: TestClient,
    area: Area,
    practice_headers: dict[str, str],
    timebank_headers: dict[str, str],
) -> None:
    url = f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}"
    for headers in (practice_headers, timebank_headers):
        assert _issue(client.get(url, headers=headers), 403)["code"] == "forbidden"
        assert _issue(client.get("/fhir/Measure", headers=headers), 403)["code"] == "forbidden"
    assert client.get(url).status_code == 401


def test_a_board_without_the_measure_scopes_is_refused(
    client: TestClient, area: Area, session_factory: sessionmaker[Session]
) -> None:
    older = register_system(
        session_factory, OrgKind.HEALTHBOARD, name="Older client", scopes="system/MeasureReport.rs"
    )
    issue = _issue(
        client.get(f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}", headers=bearer(client, older)), 403
    )
    assert "Measure" in issue["diagnostics"]


def test_another_boards_area_is_not_found(
    client: TestClient, area: Area, session_factory: sessionmaker[Session]
) -> None:
    other = register_system(session_factory, OrgKind.HEALTHBOARD, name="North ICB", ods="QMJ")
    ours = f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}&subject=Organization/{area.board.org_id}"
    assert _issue(client.get(ours, headers=bearer(client, other)), 404)["code"] == "not-found"
    theirs = f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}&subject=Organization/{other.org_id}"
    assert _issue(client.get(theirs, headers=area.headers), 404)["code"] == "not-found"
    unknown = f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}&subject=Organization/no-such-org"
    assert _issue(client.get(unknown, headers=area.headers), 404)["code"] == "not-found"


def test_a_practice_outside_the_area_is_not_a_subject(
    client: TestClient, area: Area, session_factory: sessionmaker[Session]
) -> None:
    elsewhere = register_system(session_factory, OrgKind.PRACTICE, name="Far away", ods="Y99999")
    url = f"{EVALUATE.format(FUNNEL.id)}?{QUARTER}&subject=Organization/{elsewhere.org_id}"
    issue = _issue(client.get(url, headers=area.headers), 400)
    assert (issue["expression"], issue["diagnostics"]) == (
        ["subject"],
        "subject is not in your board's area",
    )


@pytest.mark.parametrize(
    ("query", "parameter", "code"),
    [
        ("periodEnd=2026-09-30", "periodStart", "required"),
        ("periodStart=2026-07-01", "periodEnd", "required"),
        ("periodStart=2026-13&periodEnd=2026-12", "periodStart", "invalid"),
        ("periodStart=2026-07-01&periodEnd=2026-02-30", "periodEnd", "invalid"),
        ("periodStart=1 July&periodEnd=2026-09-30", "periodStart", "invalid"),
        ("periodStart=2026-09-01&periodEnd=2026-07-31", "periodEnd", "invalid"),
        (f"{QUARTER}&periodEnd=2026-10", "periodEnd", "invalid"),
        (f"{QUARTER}&subject=Patient/p1", "subject", "invalid"),
        (f"{QUARTER}&reportType=subject", "reportType", "invalid"),
    ],
)
def test_a_malformed_or_missing_parameter_is_400_naming_it(
    client: TestClient, area: Area, query: str, parameter: str, code: str
) -> None:
    issue = _issue(client.get(f"{EVALUATE.format(FUNNEL.id)}?{query}", headers=area.headers), 400)
    assert (issue["code"], issue["expression"]) == (code, [parameter])
    assert parameter in issue["diagnostics"]


def test_other_refusals_are_operation_outcomes(client: TestClient, area: Area) -> None:
    url = EVALUATE.format(FUNNEL.id)
    unknown = _issue(client.get(f"{url}?{QUARTER}&measure=x", headers=area.headers), 400)
    assert "does not take measure" in unknown["diagnostics"]
    not_parameters = client.post(url, json={"resourceType": "Patient"}, headers=area.headers)
    assert _issue(not_parameters, 400)["expression"] == ["resourceType"]
    with_parts = {"resourceType": "Parameters", "parameter": [{"name": "periodStart", "part": [
        {"name": "x", "valueString": "y"}]}]}  # fmt: skip
    assert _issue(client.post(url, json=with_parts, headers=area.headers), 400)["expression"] == [
        "Parameters.parameter[0]"
    ]
    html = client.get(f"{url}?{QUARTER}", headers={**area.headers, "Accept": "text/html"})
    assert _issue(html, 406)["code"] == "not-supported"
    assert _issue(client.get(f"/fhir/Measure/spis-nothing/$evaluate-measure?{QUARTER}",
                             headers=area.headers), 404)["code"] == "not-found"  # fmt: skip
    # Only this operation answers CSV: a Measure read does not.
    read_csv = client.get(f"/fhir/Measure/{FUNNEL.id}?_format=csv", headers=area.headers)
    assert _issue(read_csv, 406)["code"] == "not-supported"


def test_no_answer_to_a_board_names_a_person(client: TestClient, area: Area) -> None:
    answers = []
    for definition in MEASURES.values():
        url = f"{EVALUATE.format(definition.id)}?{QUARTER}"
        answers.append(client.get(url, headers=area.headers))
        answers.append(client.get(f"{url}&_format=csv", headers=area.headers))
    for response in answers:
        assert response.status_code == 200, response.text
        text = response.text
        assert "subjectResults" not in text
        assert "Patient" not in text
        assert not [person for person in area.people if person in text]
    reports = [
        json.loads(r.text) for r in answers if r.headers["content-type"].startswith("application")
    ]
    assert len(reports) == len(MEASURES)
