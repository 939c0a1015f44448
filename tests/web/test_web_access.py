"""Who may open which page, for EVERY page under /broker and /practice: the routes are read from
the app, so a new page is covered the day it is added (and a new kind of path parameter fails
here until it is given a real id below).

- the person it is for opens it (200): the ids below are real, the checks are not vacuous;
- an analyst (health board: aggregates only) and a person of the other role get the 404 page, the
  same page as a path that does not exist, for reading and for every form;
- a browser that is not signed in is sent to sign in, and comes back afterwards;
- a broker of another time bank gets the 404 page for every record of time bank A (referral,
  member, statement, questionnaire) and sees none of A's people in their lists; another practice
  likewise for the practice's referral.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.people.models import Role
from tests.fixtures.referrals import make_referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem, bearer
from tests.fixtures.web import csrf_token, signed_in

PREFIXES = ("/broker", "/practice")
# The pages the contract (issue 9) names: each must exist, and so be covered here.
CONTRACT_PAGES = {
    "/broker",
    "/broker/referrals/{task_id}",
    "/broker/members",
    "/broker/members.csv",
    "/broker/members/{member_id}",
    "/broker/members/{member_id}/questionnaires/{questionnaire_id}",
    "/broker/exchanges",
    "/broker/exchanges.csv",
    "/practice",
    "/practice/referrals/new",
    "/practice/referrals/{task_id}",
}
# What a person-level page may show, and must never show to anyone else.
PERSON_WORDS = ("Grace", "Okafor")
# The broker's moves on a referral (POST /broker/referrals/{task_id}/{action}).
BROKER_MOVES = ("accept", "decline", "hold", "start", "complete", "fail", "enrol")
Ids = dict[str, str | tuple[str, ...]]  # a path parameter's real value, or each of its values
_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


@dataclass(frozen=True)
class Scene:
    """A referral from the practice, routed to time bank A, accepted, the person enrolled, one
    exchange recorded; the ids each kind of path parameter is filled with, per prefix."""

    ids: dict[str, Ids]  # per prefix
    practice: TestSystem
    timebank_a: TestSystem
    timebank_b: TestSystem
    child_task_id: str
    member_id: str
    child_version: str  # after the scene was set: no refused form may move it on


@pytest.fixture
def scene(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> Scene:
    # Both cover the patient's district (SE6); A has more room, so ranks first.
    timebank_a = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 6)
    timebank_b = add_timebank(session_factory, "Lewisham Time Bank", ["SE6"], ["befriending"], 2)
    referral = make_referral(client, practice_headers, practice.org_id)
    child_id = route_now(session_factory, settings, referral.task_id)
    assert child_id is not None
    headers = bearer(client, timebank_a)
    child = client.get(f"/fhir/Task/{child_id}", headers=headers).json()
    assert child["owner"]["reference"] == f"Organization/{timebank_a.org_id}"
    accepted = client.put(
        f"/fhir/Task/{child_id}",
        json={**child, "status": "accepted"},
        headers={**headers, "If-Match": f'W/"{child["meta"]["versionId"]}"'},
    )
    assert accepted.status_code == 200, accepted.text
    ledger = f"/api/timebanks/{timebank_a.org_id}"
    enrolled = client.post(
        f"{ledger}/enrolments",
        json={"child_task_id": child_id, "alias": "Grace O"},
        headers=headers,
    )
    assert enrolled.status_code == 201, enrolled.text
    member_id = enrolled.json()["member"]["id"]
    other = client.post(f"{ledger}/members", json={"alias": "Dev"}, headers=headers).json()["id"]
    exchange = client.post(
        f"{ledger}/exchanges",
        json={
            "giver_id": other,
            "receiver_id": member_id,
            "minutes": 60,
            "date": "2026-01-05",
            "category": "befriending",
        },
        headers=headers,
    )
    assert exchange.status_code == 201, exchange.text
    broker_ids: Ids = {
        "task_id": child_id,
        "action": BROKER_MOVES,
        "member_id": member_id,
        "questionnaire_id": "swemwbs",
        "exchange_id": exchange.json()["id"],
    }
    practice_ids: Ids = {"task_id": referral.task_id}
    version = client.get(f"/fhir/Task/{child_id}", headers=headers).json()["meta"]["versionId"]
    return Scene(
        {"/broker": broker_ids, "/practice": practice_ids},
        practice,
        timebank_a,
        timebank_b,
        child_id,
        member_id,
        version,
    )


# -- the routes ----------------------------------------------------------------------------------


def page_routes(app: FastAPI, prefix: str, method: str = "GET") -> list[str]:
    """Every route path under `prefix` answering `method`, as declared (with its {params}).
    FastAPI 0.13x+ wraps included routers: their routes are unwrapped as openapi.py does."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    routes: list[Any] = list(contexts(app.routes) if contexts else app.routes)
    return sorted(
        {
            route.path
            for route in routes
            if isinstance(getattr(route, "original_route", route), APIRoute)
            and method in (route.methods or ())
            and (route.path == prefix or route.path.startswith(f"{prefix}/"))
        }
    )


def filled(path: str, ids: Ids) -> list[str]:
    """The path with each parameter replaced by a real id of the scene; a parameter with several
    values (a form's action) gives one path for each."""
    names = _PARAM.findall(path)
    missing = [name for name in names if name not in ids]
    if missing:
        pytest.fail(
            f"{path}: no real id for the path parameter(s) {missing}: add them to the scene in "
            "tests/web/test_web_access.py, so that this page's access is tested"
        )
    choices = [_values(ids[name]) for name in names]
    return [_substituted(path, chosen) for chosen in itertools.product(*choices)]


def _values(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else value


def _substituted(path: str, values: tuple[str, ...]) -> str:
    each = iter(values)
    return _PARAM.sub(lambda _: quote(next(each), safe=""), path)


def urls(app: FastAPI, scene: Scene, prefix: str, method: str = "GET") -> list[str]:
    return [
        url for path in page_routes(app, prefix, method) for url in filled(path, scene.ids[prefix])
    ]


# -- people -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Browsers:
    app: FastAPI
    settings: Settings
    session_factory: sessionmaker[Session]

    def signed_in(self, org_id: str, role: Role, email: str) -> TestClient:
        browser = TestClient(self.app)
        signed_in(browser, self.settings, self.session_factory, org_id, role, email)
        return browser


@pytest.fixture
def browsers(
    app: FastAPI, settings: Settings, session_factory: sessionmaker[Session], client: TestClient
) -> Browsers:
    return Browsers(app, settings, session_factory)  # `client` has started the app


def not_found_page(browser: TestClient) -> str:
    missing = browser.get("/no-such-page")
    assert missing.status_code == 404
    return missing.text


def refusals(browser: TestClient, paths: list[str], method: str = "GET") -> list[str]:
    """Each path that did NOT answer the very page a missing path gets (a 404 naming no one),
    with what it answered instead."""
    expected = not_found_page(browser)
    token = csrf_token(browser.get("/").text) if method == "POST" else ""
    wrong = []
    for path in paths:
        if method == "POST":
            answer = browser.post(path, data={"csrf_token": token}, follow_redirects=False)
        else:
            answer = browser.get(path, follow_redirects=False)
        if answer.status_code != 404 or answer.text != expected:
            wrong.append(f"{method} {path}: {answer.status_code} {answer.text[:200]!r}")
        elif leaked := [word for word in PERSON_WORDS if word in answer.text]:
            wrong.append(f"{method} {path}: the 404 page shows {leaked}")
    return wrong


# -- the tests --------------------------------------------------------------------------------


def test_every_page_of_the_contract_is_a_route_covered_here(app: FastAPI) -> None:
    found = {path for prefix in PREFIXES for path in page_routes(app, prefix)}
    assert found >= CONTRACT_PAGES, f"missing pages: {sorted(CONTRACT_PAGES - found)}"


def test_the_person_each_page_is_for_opens_it(browsers: Browsers, scene: Scene) -> None:
    broker = browsers.signed_in(scene.timebank_a.org_id, Role.BROKER, "broker@catford.example")
    staff = browsers.signed_in(scene.practice.org_id, Role.PRACTICE, "gp@rusheygreen.example")
    failed = [
        f"GET {url}: {answer.status_code}"
        for browser, prefix in ((broker, "/broker"), (staff, "/practice"))
        for url in urls(browsers.app, scene, prefix)
        if (answer := browser.get(url, follow_redirects=False)).status_code != 200
    ]
    assert failed == []
    detail = broker.get(f"/broker/referrals/{scene.child_task_id}").text
    assert "Grace" in detail  # the scene's referral is on its page: the ids are the real ones


def test_an_analyst_gets_the_404_page_for_every_person_level_page_and_form(
    browsers: Browsers, scene: Scene, healthboard: TestSystem
) -> None:
    analyst = browsers.signed_in(healthboard.org_id, Role.ANALYST, "analyst@board.example")
    wrong = []
    for prefix in PREFIXES:
        wrong += refusals(analyst, urls(browsers.app, scene, prefix))
        wrong += refusals(analyst, urls(browsers.app, scene, prefix, "POST"), "POST")
    assert wrong == []
    assert_unchanged(browsers, scene)


def test_a_person_of_the_other_role_gets_the_404_page(browsers: Browsers, scene: Scene) -> None:
    broker = browsers.signed_in(scene.timebank_a.org_id, Role.BROKER, "broker@catford.example")
    staff = browsers.signed_in(scene.practice.org_id, Role.PRACTICE, "gp@rusheygreen.example")
    wrong = refusals(broker, urls(browsers.app, scene, "/practice"))
    wrong += refusals(broker, urls(browsers.app, scene, "/practice", "POST"), "POST")
    wrong += refusals(staff, urls(browsers.app, scene, "/broker"))
    wrong += refusals(staff, urls(browsers.app, scene, "/broker", "POST"), "POST")
    assert wrong == []
    assert_unchanged(browsers, scene)


def test_a_browser_not_signed_in_is_sent_to_sign_in_and_back(
    client: TestClient, app: FastAPI, scene: Scene
) -> None:
    client.cookies.clear()
    wrong = []
    for prefix in PREFIXES:
        for url in urls(app, scene, prefix):
            answer = client.get(url, follow_redirects=False)
            expected = f"/signin?next={quote(url, safe='/')}"
            if answer.status_code != 303 or answer.headers.get("location") != expected:
                wrong.append(f"GET {url}: {answer.status_code} {answer.headers.get('location')}")
            elif leaked := [word for word in PERSON_WORDS if word in answer.text]:
                wrong.append(f"GET {url}: the redirect shows {leaked}")
    assert wrong == []


def test_a_broker_of_another_time_bank_gets_the_404_page_for_time_bank_as_records(
    browsers: Browsers, scene: Scene
) -> None:
    other = browsers.signed_in(scene.timebank_b.org_id, Role.BROKER, "broker@lewisham.example")
    routes = page_routes(browsers.app, "/broker")
    records = [url for path in routes if "{" in path for url in filled(path, scene.ids["/broker"])]
    assert f"/broker/referrals/{scene.child_task_id}" in records
    wrong = refusals(other, records)
    theirs = (scene.child_task_id, scene.member_id)
    forms = [
        url for url in urls(browsers.app, scene, "/broker", "POST") if any(i in url for i in theirs)
    ]
    wrong += refusals(other, forms, "POST")
    assert wrong == []
    for path in (p for p in routes if "{" not in p):  # their own lists: none of A's people
        listed = other.get(path)
        assert listed.status_code == 200, path
        assert [word for word in PERSON_WORDS if word in listed.text] == [], path
    assert_unchanged(browsers, scene)


def test_another_practice_gets_the_404_page_for_the_practices_referral(
    browsers: Browsers, scene: Scene, practice_b: TestSystem
) -> None:
    other = browsers.signed_in(practice_b.org_id, Role.PRACTICE, "gp@other.example")
    routes = page_routes(browsers.app, "/practice")
    records = [
        url for path in routes if "{" in path for url in filled(path, scene.ids["/practice"])
    ]
    assert refusals(other, records) == []
    listed = other.get("/practice")
    assert [word for word in PERSON_WORDS if word in listed.text] == []


def assert_unchanged(browsers: Browsers, scene: Scene) -> None:
    """No refused form moved the referral: the time bank's Task is as the scene left it."""
    with TestClient(browsers.app) as api:
        task = api.get(
            f"/fhir/Task/{scene.child_task_id}", headers=bearer(api, scene.timebank_a)
        ).json()
    assert (task["status"], task["meta"]["versionId"]) == ("accepted", scene.child_version)
