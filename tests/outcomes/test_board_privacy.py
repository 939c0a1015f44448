"""A health board can never read a row about a person, through any route (issue 10, "Tests").

The scene: a board's area with people referred, routed, declined, accepted, enrolled, exchanging
time, answering questionnaires, completed (so every kind of person-level resource and ledger row
exists). Then every GET route of the app (read from the app, so a route added later is covered the
day it is added) is tried with every real id of the scene, as the board's SMART client (with the
scopes a board is registered with, and asking for more) and as the board's analyst in a browser:

- person-level routes (FHIR Patient, Task, ServiceRequest, Observation, Procedure, Consent,
  QuestionnaireResponse, Condition, AuditEvent: read, search, _include, _history, vread, POST
  _search; the ledger's JSON API; the broker's and the practice's pages) refuse: a 403/401
  OperationOutcome, or the very 404 page a missing path gets;
- no answer of any route carries a marker of a person: a person-level resource id, a member or
  exchange id, an NHS number, a name, an address, a phone number, a birth date, a member's alias.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import MEASURES
from referral_service.auth.scopes import registrable
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.errors import Invalid
from referral_service.organisations.models import OrgKind
from referral_service.people.models import Role
from referral_service.principal import Principal
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.systems import bearer, token_response
from tests.fixtures.web import signed_in
from tests.outcomes import independent_scenario as sc
from tests.outcomes.independent import every, read_raw

# What a board may read: the Measures, its reports, organisations; nothing about a person.
AGGREGATES = {"Measure", "MeasureReport", "Organization"}
PERSON_TYPES = (
    "Patient",
    "Task",
    "ServiceRequest",
    "Observation",
    "Procedure",
    "Consent",
    "QuestionnaireResponse",
    "Condition",
)
# What the scene's people are called, where they live, how they are reached (tests/data).
PERSON_WORDS = (
    "Okafor",
    "Grace",
    "Brownhill",
    "SE6 4RU",
    "020 7946 0123",
    "1948-03-12",
    sc.ALIAS,
    sc.PARTNER_ALIAS,
)
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass
class Scene:
    area: sc.Area
    ids: dict[str, list[str]]  # resource type -> every id of that type in the scene
    members: list[str]
    exchanges: list[str]
    numbers: list[str]  # NHS numbers

    def markers(self) -> set[str]:
        found = {i for ids in self.ids.values() for i in ids}
        return (
            found | set(self.members) | set(self.exchanges) | set(self.numbers) | set(PERSON_WORDS)
        )


@pytest.fixture
def scene(client: TestClient, session_factory: sessionmaker[Session], settings: Settings) -> Scene:
    area = sc.board_area(client, session_factory)
    numbers = []
    for i in range(4):
        person = sc.refer(client, area, area.practices[i % 2], opted_out=i == 3)
        numbers.append(person.nhs_number)
        sc.route(client, session_factory, settings, area, person)
        if i == 1:
            sc.decline(client, area, person, "no-capacity")
            continue
        sc.answer(client, area, person, "accepted")
        sc.enrol(client, area, person)
        sc.exchange(client, area, person, date(2026, 11, 2), 60, gives=True)
        sc.exchange(client, area, person, date(2026, 11, 3), 45, gives=False)
        sc.score(client, area, person, [2, 2, 3, 2, 2, 3, 2], "2026-11-20T10:00:00Z")
        if i == 0:
            sc.answer(client, area, person, "in-progress")
            sc.answer(client, area, person, "completed")
    with unit_of_work(session_factory) as session:
        ctx = Context(session, Principal.spis(), settings)
        ids = {rtype: [rid for rid, _, _ in every(ctx, rtype)] for rtype in PERSON_TYPES}
        raw = read_raw(session, settings)
    assert all(ids[t] for t in PERSON_TYPES if t != "Condition"), ids  # the scene has them all
    return Scene(area, ids, list(raw.members["id"]), list(raw.exchanges["id"]), numbers)


def get_routes(app: FastAPI) -> list[str]:
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(contexts(app.routes) if contexts else app.routes)
    return sorted(
        {r.path for r in routes if "GET" in (getattr(r, "methods", None) or ())}
        - {"/docs/oauth2-redirect"}
    )


def urls(path: str, scene: Scene) -> Iterator[str]:
    """The route filled with real ids of the scene (each value of each parameter)."""
    names = _PARAM.findall(path)
    if path.startswith("/fhir/{rtype}"):
        for rtype in (*PERSON_TYPES, "AuditEvent"):
            yield from urls(path.replace("{rtype}", rtype, 1), scene)
        return
    rtype = path.split("/")[2] if path.startswith("/fhir/") else ""
    if path.startswith("/fhir/Measure/{rid}"):
        yield from _measure_urls(path)
        return
    if path.startswith("/analyst") and not names:  # the dashboard: each measure, with a period
        yield path
        for measure in MEASURES:
            yield f"{path}?measure={measure}&start=2026-11-01&end=2026-11-30"
        return
    values = {
        "rid": scene.ids.get(rtype, ["1"])[:3],
        "vid": ["1"],
        "timebank_id": [t.org_id for t in scene.area.timebanks] + [scene.area.board.org_id],
        "member_id": scene.members,
        "exchange_id": scene.exchanges,
        "task_id": scene.ids["Task"],
        "questionnaire_id": ["swemwbs"],
        "token": ["not-a-token"],
    }
    unknown = [n for n in names if n not in values]
    assert not unknown, f"{path}: give the parameter(s) {unknown} real values in this test"
    filled = [path]
    for name in names:
        filled = [
            f.replace(f"{{{name}}}", quote(v, safe=""), 1) for f in filled for v in values[name]
        ]
    for url in filled:
        yield url
        if path == f"/fhir/{rtype}" and rtype in PERSON_TYPES:
            yield from _searches(rtype, scene)


def _measure_urls(path: str) -> Iterator[str]:
    for measure in MEASURES:
        url = path.replace("{rid}", measure)
        if not url.endswith("$evaluate-measure"):
            yield url
            continue
        for when in ("periodStart=2026-11-01&periodEnd=2026-11-30", "periodStart=2026"):
            yield f"{url}?{when}"
            yield f"{url}?{when}&_format=csv"


def _searches(rtype: str, scene: Scene) -> Iterator[str]:
    patient = scene.ids["Patient"][0]
    yield f"/fhir/{rtype}?_id={scene.ids[rtype][0] if scene.ids[rtype] else 'x'}"
    yield f"/fhir/{rtype}?patient=Patient/{patient}"
    yield f"/fhir/{rtype}?_count=0"
    if rtype == "Task":
        yield "/fhir/Task?_include=Task:patient&_include=Task:focus"


def leaks(text: str, url: str, scene: Scene) -> list[str]:
    """Markers of a person in an answer (an id the caller itself put in the URL aside)."""
    return sorted(m for m in scene.markers() if m in text and m not in url)


def test_a_board_is_registered_and_granted_only_aggregate_scopes(
    client: TestClient, session_factory: sessionmaker[Session], scene: Scene
) -> None:
    board = scene.area.board
    assert {scope.split("/")[1].split(".")[0] for scope in board.scopes.split()} <= AGGREGATES
    for wanted in ("system/Patient.rs", "system/Task.cruds system/AuditEvent.rs"):
        with pytest.raises(Invalid, match="beyond what a healthboard may hold"):
            registrable(OrgKind.HEALTHBOARD, wanted)
    assert registrable(OrgKind.HEALTHBOARD, "system/*.cruds") == board.scopes
    asked = " ".join(f"system/{t}.cruds" for t in PERSON_TYPES) + " system/*.cruds"
    granted = token_response(client, board, asked)
    assert granted.status_code == 200, granted.text
    assert granted.json()["scope"] == board.scopes
    refused = token_response(client, board, "system/Patient.rs system/Observation.rs")
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_scope"


def test_the_boards_client_reads_nothing_about_a_person_on_any_route(
    app: FastAPI, client: TestClient, scene: Scene
) -> None:
    board = scene.area.board
    headers = bearer(
        client,
        board,
        " ".join(f"system/{t}.rs" for t in PERSON_TYPES) + " " + board.scopes,
    )
    tried, wrong = 0, []
    for path in get_routes(app):
        for url in urls(path, scene):
            answer = client.get(url, headers=headers, follow_redirects=False)
            tried += 1
            if found := leaks(answer.text, url, scene):
                wrong.append(f"GET {url}: {answer.status_code} shows {found}")
            if _person_level(url) and not _refused(answer.status_code, answer.text, (403,)):
                wrong.append(f"GET {url}: {answer.status_code} {answer.text[:160]!r}")
    for rtype in PERSON_TYPES:
        answer = client.post(f"/fhir/{rtype}/_search", data={"_count": "50"}, headers=headers)
        tried += 1
        if not _refused(answer.status_code, answer.text, (403,)) or leaks(answer.text, "", scene):
            wrong.append(f"POST /fhir/{rtype}/_search: {answer.status_code} {answer.text[:160]}")
    assert wrong == []
    assert tried > 150  # every route, every id: the test cannot pass by trying nothing


def test_the_boards_analyst_reads_nothing_about_a_person_on_any_page(
    app: FastAPI,
    settings: Settings,
    session_factory: sessionmaker[Session],
    client: TestClient,
    scene: Scene,
) -> None:
    browser = TestClient(app)
    signed_in(
        browser,
        settings,
        session_factory,
        scene.area.board.org_id,
        Role.ANALYST,
        "analyst@board.example",
    )
    missing = browser.get("/no-such-page")
    assert missing.status_code == 404
    start = browser.get("/analyst")
    assert start.status_code == 200
    assert not leaks(start.text, "", scene)
    tried, wrong = 0, []
    for path in get_routes(app):
        for url in urls(path, scene):
            answer = browser.get(url, follow_redirects=False)
            tried += 1
            if found := leaks(answer.text, url, scene):
                wrong.append(f"GET {url}: {answer.status_code} shows {found}")
            if url.startswith(("/broker", "/practice")) and (
                answer.status_code != 404 or answer.text != missing.text
            ):
                wrong.append(f"GET {url}: {answer.status_code}, not the 404 page")
            elif _person_level(url) and not _refused(answer.status_code, answer.text, (401,)):
                wrong.append(f"GET {url}: {answer.status_code} {answer.text[:160]!r}")
    assert wrong == []
    assert tried > 150


def _person_level(url: str) -> bool:
    if url.startswith("/api/timebanks"):
        return True
    parts = url.split("?")[0].split("/")
    return len(parts) > 2 and parts[1] == "fhir" and parts[2] in (*PERSON_TYPES, "AuditEvent")


def _refused(status: int, text: str, statuses: tuple[int, ...]) -> bool:
    """A refusal as an OperationOutcome (403 for a token without the scope; 401 for no token;
    404 where SPIS says "not known"), naming no one."""
    return status in (*statuses, 404) and '"resourceType":"OperationOutcome"' in text.replace(
        " ", ""
    )


REFERENCE = re.compile(r"\b(Patient|Task|ServiceRequest|Observation|Procedure|Consent|"
                       r"QuestionnaireResponse|Condition|Practitioner|RelatedPerson)/")  # fmt: skip
NHS_LIKE = re.compile(r"\b\d{10}\b")


def test_the_measure_reports_hold_aggregates_only(client: TestClient, scene: Scene) -> None:
    """Every Measure's report for the board and for each of its practices and time banks, over
    GET and POST, as JSON and as CSV: no subjectResults, no reference to a person-level
    resource, nothing that looks like an NHS number, no id, name or alias of anyone."""
    headers = bearer(client, scene.area.board)
    subjects = [None] + [f"Organization/{o.org_id}"
                         for o in (*scene.area.practices, *scene.area.timebanks)]  # fmt: skip
    answers = []
    for measure in MEASURES:
        url = f"/fhir/Measure/{measure}/$evaluate-measure"
        for subject in subjects:
            params = {"periodStart": "2026-11-01", "periodEnd": "2026-11-30"}
            params |= {"subject": subject} if subject else {}
            for fmt in ({}, {"_format": "csv"}):
                answers.append(client.get(url, params=params | fmt, headers=headers))
            body = {"resourceType": "Parameters", "parameter": [
                {"name": name, "valueString" if name == "subject" else "valueDate": value}
                for name, value in params.items()]}  # fmt: skip
            answers.append(client.post(url, json=body, headers={**headers, **FHIR_JSON}))
    assert len(answers) == len(MEASURES) * len(subjects) * 3
    for answer in answers:
        assert answer.status_code == 200, answer.text
        text = answer.text
        assert "subjectResults" not in text
        assert REFERENCE.findall(text) == []
        assert NHS_LIKE.findall(text) == []
        assert leaks(text, "", scene) == []
        if answer.headers["content-type"].startswith("application/fhir+json"):
            report = answer.json()
            assert report["resourceType"] == "MeasureReport"
            assert report["type"] == "summary"
            assert "contained" not in report
            assert report["subject"]["reference"].startswith("Organization/")
        else:
            assert text.startswith("measure,figure,figure_title,stratifier,stratum")
