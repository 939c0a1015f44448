"""A health board analyst's dashboard in Chromium, on a live stack (server and worker):

the board's practices and time banks have outcome rows (written straight into the outcome tables:
35 eligible people across a big and a small practice, a practice of another board, opted-out
referrals); an analyst of the board sets up their account and signs in again, opens the
dashboard for the last full quarter and reads every figure in its tables. The board's own SMART
client pulls the same four reports over FHIR (`$evaluate-measure`): every figure on the page
equals the API's, suppressed cells are masked on both, and every cell the API has is on the page.
The CSV download is the same report again. The programme cost entered on the page shows in the
social value estimate, as the API then says too.

Every page is checked with axe-core (no serious or critical WCAG 2.x A/AA violation) and
screenshotted at desktop and phone width (test-output/browser/test_an_analyst_reads_the_boards_figures/);
no page may log a console error or break its Content-Security-Policy.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from fhir_adapters.measures import MEASURES
from referral_service.kit.clock import utcnow
from referral_service.web import analyst_period as periods
from referral_service.web.analyst_period import Period
from tests.browser.helpers import Shots, assert_accessible
from tests.browser.test_browser_story import PASSWORD, Person, Visit, add_person, titled
from tests.fixtures.live_stack import LiveStack
from tests.fixtures.measure_reports import Key, Seen, from_csv, from_measure_report
from tests.fixtures.server import access_token
from tests.fixtures.systems import TestSystem
from tests.web.analyst_data import add_area, add_outcomes

HEADING = "Outcome figures"
MASKED = {
    "masked: small-count": "masked — small number",
    "masked: small-n": "masked — fewer than 8 people",
    "masked: inputs-suppressed": "masked — rests on a masked figure",
}
NOT_APPLICABLE = ("no data", "not entered", "needs the programme cost")
_CELLS = """() => [...document.querySelectorAll("td[data-figure]")].map((td) => [
    td.dataset.figure, td.dataset.stratifier, td.dataset.key, td.dataset.part, td.textContent.trim()
])"""
PageCells = dict[tuple[str, str, str, str], set[str]]


def test_an_analyst_reads_the_boards_figures(
    live_stack: LiveStack, page: Page, phone_page: Page, shots: Shots, page_errors: list[str]
) -> None:
    base = live_stack.base_url
    visit = Visit(shots, page_errors)
    quarter = periods.last_full_quarter(utcnow().date())
    area = add_area(live_stack.session_factory)
    add_outcomes(live_stack.session_factory, area, quarter)
    analyst = add_person(live_stack, area.board.org_id, "analyst", "ana@board.example")

    set_up_and_sign_in_again(page, base, analyst, visit)
    visit(page, HEADING, "Analyst start page")
    on_phone(page, phone_page, visit, "Analyst start page")
    # The last full quarter is chosen already; the whole board is the default stratum.
    page.get_by_role("button", name="Show the figures").click()
    visit(page, HEADING, "The board's report")
    expect(page.locator("#report-period")).to_have_text(quarter.text)
    assert page.url == f"{base}/analyst/report?start={quarter.start}&end={quarter.end}"
    on_phone(page, phone_page, visit, "The board's report")

    by_measure = pulled_over_fhir(base, area.board, quarter)
    api = {key: seen for cells in by_measure.values() for key, seen in cells.items()}
    assert all(by_measure.values()), "every measure has cells"
    on_page = cells_on(page)
    assert_same_figures(on_page, api)
    assert any(text.startswith("masked — ") for texts in on_page.values() for text in texts)
    assert on_page[("received", "total", "", "value")] == {"35"}
    assert page.locator("rect[data-masked='true']").count() > 0  # and hatched in the charts

    csv_is_the_same_report(page, by_measure["spis-referral-funnel"])
    cost_shows_in_the_estimate(page, base, area.board, quarter, visit)
    assert page_errors == []


# -- signing in --------------------------------------------------------------------------------------


def set_up_and_sign_in_again(page: Page, base: str, person: Person, visit: Visit) -> None:
    """The set-up link, then signing out and in with the password. An analyst sees aggregates
    only: SPIS asks them for no second factor (people.service.needs_second_factor)."""
    page.goto(person.setup_url)
    visit(page, "Set up your account", "Analyst set-up link")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Save password").click()
    visit(page, HEADING, "Analyst just set up")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(titled("Sign in"))
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def on_phone(page: Page, phone: Page, visit: Visit, name: str) -> None:
    """The page the desktop shows, on a phone-size screen with the same session."""
    phone.context.add_cookies(page.context.cookies())  # type: ignore[arg-type]
    phone.goto(page.url)
    expect(phone.get_by_role("heading", level=1)).to_have_text(titled(HEADING))
    assert_accessible(phone, f"{name} (phone)")
    visit.shots(phone, f"{name} on a phone")


# -- what the API says, and what the page says -------------------------------------------------------


def pulled_over_fhir(
    base: str, board: TestSystem, period: Period, measures: tuple[str, ...] = tuple(MEASURES)
) -> dict[str, dict[Key, Seen]]:
    """The reports as the board's SMART client gets them (GET $evaluate-measure), by measure."""
    token = access_token(base, board)
    found: dict[str, dict[Key, Seen]] = {}
    with httpx.Client(base_url=f"{base}/fhir/", timeout=30) as fhir:
        for measure in measures:
            answer = fhir.get(
                f"Measure/{measure}/$evaluate-measure",
                params={
                    "periodStart": period.start.isoformat(),
                    "periodEnd": period.end.isoformat(),
                    "subject": f"Organization/{board.org_id}",
                },
                headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
            )
            assert answer.status_code == 200, answer.text
            report: dict[str, Any] = answer.json()
            assert report["resourceType"] == "MeasureReport"
            found[measure] = from_measure_report(report)
    return found


def cells_on(page: Page) -> PageCells:
    found: PageCells = {}
    for figure, stratifier, key, part, text in page.evaluate(_CELLS):
        found.setdefault((figure, stratifier, key, part), set()).add(text)
    return found


def assert_same_figures(on_page: PageCells, api: dict[Key, Seen]) -> None:
    """Every cell the API has is on the page, written as the same figure; every figure the page
    shows is the API's."""
    shown = {(f, s, k) for (f, s, k, part) in on_page if part == "value"}
    assert shown == set(api), (sorted(shown - set(api))[:5], sorted(set(api) - shown)[:5])
    wrong = []
    for (figure, stratifier, key, part), texts in on_page.items():
        seen = api[(figure, stratifier, key)]
        for text in texts:
            if not _agrees(seen, part, text):
                wrong.append(f"{figure} {stratifier} {key!r} {part}: page {text!r}, API {seen}")
    assert wrong == []


def _agrees(seen: Seen, part: str, text: str) -> bool:
    if seen.absent is not None and seen.absent.startswith("masked"):
        return text == MASKED[seen.absent]
    if part == "range":
        return _range(text) == (seen.low, seen.high)
    if part == "n":
        return text == "no data" if seen.n is None else _number(text) == seen.n
    if seen.absent == "not-applicable":
        return text in NOT_APPLICABLE
    return _number(text) == seen.value


def _number(text: str) -> float:
    return float(re.sub(r"[£,%+]", "", text))


def _range(text: str) -> tuple[float | None, float | None]:
    if text == "no data":
        return None, None
    low, _, high = text.partition(" to ")
    return _number(low), _number(high)


# -- the CSV and the programme cost --------------------------------------------------------------------


def csv_is_the_same_report(page: Page, api: dict[Key, Seen]) -> None:
    """The first download link (the funnel's) gives the funnel's report, cell for cell."""
    with page.expect_download() as download:
        page.get_by_role("link", name=re.compile("Download these figures as CSV")).first.click()
    got = download.value
    assert re.fullmatch(
        r"spis-referral-funnel_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.csv", got.suggested_filename
    )
    text = Path(got.path()).read_text(encoding="utf-8")
    assert text.startswith("\ufeffmeasure,figure,")
    cells, _ = from_csv(text.removeprefix("\ufeff"))
    assert cells == api


def cost_shows_in_the_estimate(
    page: Page, base: str, board: TestSystem, period: Period, visit: Visit
) -> None:
    """The board's programme cost for the quarter, entered on the page: the estimate shows it,
    as the API's social value report now does."""
    page.get_by_label("Programme cost in pounds").fill("12,500")
    page.get_by_role("button", name="Save the programme cost").click()
    visit(page, HEADING, "Programme cost saved")
    expect(page.get_by_role("status")).to_contain_text("Programme cost saved.")
    on_page = cells_on(page)
    assert on_page[("programme-cost", "total", "", "value")] == {"£12,500"}
    api = pulled_over_fhir(base, board, period, ("spis-social-value",))["spis-social-value"]
    assert api[("programme-cost", "total", "")].value == 12500
    social = {
        place: texts for place, texts in on_page.items() if (place[0], place[1], place[2]) in api
    }
    assert_same_figures(social, api)
