"""Who may open the analyst's pages, for EVERY route under /analyst (read from the app, so a new
page is covered the day it is added): the analyst of a board opens them; brokers and practice
staff get the 404 page a missing path gets, for reading and for the form; a browser not signed
in is sent to sign in and back. (That an analyst gets the 404 page for every /broker and
/practice page and form is tests/web/test_web_access.py's.)"""

from __future__ import annotations

from urllib.parse import quote

from fastapi.testclient import TestClient

from referral_service.people.models import Role
from tests.fixtures.systems import TestSystem
from tests.web.test_web_access import Browsers, browsers, page_routes, refusals

__all__ = ["browsers"]  # the fixture, shared with test_web_access.py

PREFIX = "/analyst"
CONTRACT_PAGES = {"/analyst", "/analyst/report", "/analyst/report.csv"}
CONTRACT_FORMS = {"/analyst/cost"}
# Each page with the query it is opened with (a report needs its period).
QUERY = {
    "/analyst/report": "?start=2026-07-01&end=2026-09-30",
    "/analyst/report.csv": "?measure=spis-referral-funnel&start=2026-07-01&end=2026-09-30",
}


def pages(browsers: Browsers) -> list[str]:
    return [path + QUERY.get(path, "") for path in page_routes(browsers.app, PREFIX)]


def test_every_page_and_form_of_the_contract_is_a_route_covered_here(browsers: Browsers) -> None:
    assert set(page_routes(browsers.app, PREFIX)) == CONTRACT_PAGES
    assert set(page_routes(browsers.app, PREFIX, "POST")) == CONTRACT_FORMS


def test_the_boards_analyst_opens_every_page(browsers: Browsers, healthboard: TestSystem) -> None:
    analyst = browsers.signed_in(healthboard.org_id, Role.ANALYST, "analyst@board.example")
    answers = {url: analyst.get(url, follow_redirects=False) for url in pages(browsers)}
    assert {url: a.status_code for url, a in answers.items()} == dict.fromkeys(answers, 200)
    assert answers["/analyst/report.csv" + QUERY["/analyst/report.csv"]].text.startswith(
        "\ufeffmeasure,"
    )


def test_brokers_and_practice_staff_get_the_404_page_for_every_analyst_page_and_form(
    browsers: Browsers, practice: TestSystem, timebank: TestSystem
) -> None:
    broker = browsers.signed_in(timebank.org_id, Role.BROKER, "broker@catford.example")
    staff = browsers.signed_in(practice.org_id, Role.PRACTICE, "gp@rusheygreen.example")
    forms = page_routes(browsers.app, PREFIX, "POST")
    wrong = []
    for browser in (broker, staff):
        wrong += refusals(browser, pages(browsers))
        wrong += refusals(browser, forms, "POST")
    assert wrong == []


def test_a_browser_not_signed_in_is_sent_to_sign_in_and_back(
    client: TestClient, browsers: Browsers
) -> None:
    client.cookies.clear()
    wrong = []
    for url in pages(browsers):
        answer = client.get(url, follow_redirects=False)
        expected = f"/signin?next={quote(url, safe='/')}"
        if answer.status_code != 303 or answer.headers.get("location") != expected:
            wrong.append(f"GET {url}: {answer.status_code} {answer.headers.get('location')}")
    assert wrong == []
