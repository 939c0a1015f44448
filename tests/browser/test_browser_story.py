"""The whole referral loop through the web workspace, in Chromium, on a live stack (server and a
real worker: routing really runs), as issue 9 tells it:

a broker signs in (password + TOTP), finds the referral the practice sent over FHIR, declines it
at one time bank; it is routed to the next, whose broker accepts it, enrols the person, records two
exchanges (the person gives and receives), records SWEMWBS twice and completes; the practice's
staff then see the outcome on their page, and the practice's FHIR client sees the same through
the API.

Every page visited is checked with axe-core (no serious or critical WCAG 2.x A/AA violation) and
screenshotted (test-output/browser/test_the_referral_loop_through_the_web_workspace/), with
phone-size screenshots of the inbox, the referral, the statement and the practice's referral; no
page may log a console error or break its Content-Security-Policy.

Written against the page contract (routes, headings, labels and button names of issue 9).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pyotp
import pytest
from playwright.sync_api import Page, expect

from fhir_adapters.codes import DECLINE_REASONS
from referral_service.organisations.models import OrgKind
from tests.browser.helpers import Shots, assert_accessible
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.live_stack import LiveStack, inbox, wait_until
from tests.fixtures.routing import add_timebank
from tests.fixtures.server import access_token
from tests.fixtures.systems import TestSystem, register_system

PASSWORD = "correct horse battery staple"
DECLINE_NOTE = "No befriending volunteers free until the spring"
MEMBER = "Grace O"  # the name the ledger uses for the referred person
PARTNER = "Dev"  # a member who joined on their own
# Two SWEMWBS sittings: raw 17 → metric 16.88, raw 27 → metric 24.11 (DESIGN §7).
FIRST_ANSWERS = (2, 3, 2, 3, 2, 3, 2)
LATER_ANSWERS = (4, 4, 3, 4, 4, 4, 4)
FIRST_SCORE, LATER_SCORE = 16.88, 24.11
# (giver, receiver, minutes, category, description): the person receives, then gives.
EXCHANGES = (
    (PARTNER, MEMBER, 90, "Befriending", "Tea and a long chat"),
    (MEMBER, PARTNER, 60, "Gardening", "Planting the front beds"),
)


# -- people ------------------------------------------------------------------------------------


@dataclass
class Person:
    """Someone added with `spis user add`, who sets up their account from the link."""

    email: str
    setup_url: str
    totp_secret: str | None = None

    def code(self, steps_ahead: int = 0) -> str:
        assert self.totp_secret is not None, "set up the authenticator app first"
        return pyotp.TOTP(self.totp_secret).at(time.time() + 30 * steps_ahead)


def add_person(stack: LiveStack, org_id: str, role: str, email: str) -> Person:
    added = stack.spis_json("user", "add", "--org", org_id, "--email", email, "--role", role)
    assert added["email"] == email
    return Person(email, added["setup_url"])


@dataclass
class Visit:
    """Checks every page the story lands on: a heading, accessibility, no console error, and a
    numbered screenshot."""

    shots: Shots
    errors: list[str]

    def __call__(self, page: Page, h1: str | re.Pattern[str], name: str) -> None:
        expect(page.get_by_role("heading", level=1)).to_have_text(titled(h1))
        assert_accessible(page, name)
        self.shots(page, name)
        assert self.errors == [], f"{name} ({page.url}): {self.errors}"


def titled(h1: str | re.Pattern[str]) -> re.Pattern[str]:
    """A page's h1 as the contract names it, after any caption the page puts first in it (the
    organisation, the person's name)."""
    return h1 if isinstance(h1, re.Pattern) else re.compile(rf"(^|\s){re.escape(h1)}$")


def set_up_account(page: Page, person: Person, visit: Visit, who: str) -> None:
    """The set-up link: choose a password, then enrol the authenticator app from the key the
    page shows (as someone typing it into their app would). Ends signed in."""
    page.goto(person.setup_url)
    visit(page, "Set up your account", f"{who} set-up link")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Save password").click()
    visit(page, "Set up your authenticator app", f"{who} authenticator app")
    expect(page.get_by_role("img", name=re.compile("QR code"))).to_be_visible()
    person.totp_secret = page.locator("#secret").inner_text().replace(" ", "")
    page.get_by_label("Code from your app").fill(person.code())
    page.get_by_role("button", name="Confirm").click()


def sign_in(page: Page, base: str, person: Person, visit: Visit, who: str) -> None:
    page.goto(f"{base}/signin")
    visit(page, "Sign in", f"{who} signs in")
    page.get_by_label("Email address").fill(person.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    visit(page, "Enter your code", f"{who} second factor")
    # The next step's code: the one the enrolment used may not be used again (SPIS accepts one
    # step either side of now).
    page.get_by_label("Code from your authenticator app").fill(person.code(steps_ahead=1))
    page.get_by_role("button", name="Continue").click()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(titled("Sign in"))


def on_phone(page: Page, phone: Page, visit: Visit, h1: str | re.Pattern[str], name: str) -> None:
    """The page the desktop shows, on a phone-size screen with the same session."""
    phone.context.add_cookies(page.context.cookies())  # type: ignore[arg-type]
    phone.goto(page.url)
    expect(phone.get_by_role("heading", level=1)).to_have_text(titled(h1))
    assert_accessible(phone, f"{name} (phone)")
    visit.shots(phone, f"{name} on a phone")


# -- forms ---------------------------------------------------------------------------------------


def choose(page: Page, label: str, starting: str) -> None:
    """Pick the one option of the select labelled `label` whose text starts with `starting`
    (a member may be listed with more than their name)."""
    select = page.get_by_label(label, exact=True)
    texts = [text.strip() for text in select.locator("option").all_inner_texts()]
    found = [text for text in texts if text.startswith(starting)]
    assert len(found) == 1, f"{label}: no single option starting {starting!r} in {texts}"
    select.select_option(label=found[0])


_SECTION_TEXT = """(name) => {
    const level = (el) => /^H[1-6]$/.test(el.tagName) ? Number(el.tagName[1]) : 7;
    const title = [...document.querySelectorAll("h1, h2, h3, h4, h5, h6")]
        .find((h) => h.innerText.trim() === name);
    if (!title) return null;
    const around = title.closest("section");
    if (around && around.querySelector("h1, h2, h3, h4, h5, h6") === title) {
        return around.innerText;
    }
    const parts = [];
    for (let el = title.nextElementSibling; el && level(el) > level(title);
         el = el.nextElementSibling) {
        parts.push(el.innerText);
    }
    return parts.join("\\n");
}"""


def section(page: Page, heading: str) -> str:
    """The text of the part of the page a heading names: its <section>, or everything after it
    up to the next heading of the same or a higher level."""
    text: str | None = page.evaluate(_SECTION_TEXT, heading)
    assert text is not None, f"{page.url} has no heading {heading!r}"
    return text


def answer_swemwbs(page: Page, answers: tuple[int, ...], visit: Visit, name: str) -> None:
    visit(page, re.compile("SWEMWBS|Warwick"), name)
    for number, value in enumerate(answers, start=1):
        item = page.get_by_role("group", name=re.compile(rf"\bitem {number}\b"))
        item.get_by_role("radio", name=re.compile(rf"^{value}\b")).check()
    page.get_by_role("button", name="Save answers").click()


# -- the scene: a practice with its FHIR client, two time banks, a referral -----------------------


@dataclass(frozen=True)
class Scene:
    practice: TestSystem
    catford: TestSystem  # ranks first for the referral; its broker declines
    lewisham: TestSystem  # next; its broker takes the referral
    service_request: str  # "ServiceRequest/<id>" as the practice sent it
    referral_task: str  # "Task/<id>", opened by SPIS


def set_scene(stack: LiveStack) -> Scene:
    practice = register_system(
        stack.session_factory, OrgKind.PRACTICE, name="Rushey Green Group Practice", ods="F84001"
    )
    # Both cover the patient's district (SE6) and offer befriending; Catford has more room,
    # so routing tries it first.
    catford = add_timebank(stack.session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 6)
    lewisham = add_timebank(
        stack.session_factory, "Lewisham Time Bank", ["SE6", "SE13"], ["befriending"], 2
    )
    service_request, referral_task = send_referral(stack.base_url, practice)
    return Scene(practice, catford, lewisham, service_request, referral_task)


def send_referral(base: str, practice: TestSystem) -> tuple[str, str]:
    """The practice's clinical system sends the referral as a FHIR transaction."""
    with fhir_client(base, practice) as gp:
        sent = gp.post("", json=referral_bundle(practice.org_id), headers=FHIR_JSON)
        assert sent.status_code == 200, sent.text
        [service_request] = [
            "/".join(location.split("/")[:2])
            for entry in sent.json()["entry"]
            if (location := entry["response"]["location"]).startswith("ServiceRequest/")
        ]
        [task] = entries(gp.get("Task", params={"focus": service_request}))
    return service_request, f"Task/{task['id']}"


def fhir_client(base: str, system: TestSystem) -> httpx.Client:
    token = access_token(base, system)
    return httpx.Client(
        base_url=f"{base}/fhir/", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def entries(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    return [entry["resource"] for entry in response.json().get("entry", [])]


def routed_to(stack: LiveStack, timebank: TestSystem, scene: Scene) -> dict[str, Any]:
    """Wait for the worker to route the referral to `timebank`; its child Task."""

    def waiting() -> list[dict[str, Any]]:
        return [
            task
            for task in inbox(stack.base_url, timebank)
            if task["partOf"][0]["reference"] == scene.referral_task
        ]

    found: list[dict[str, Any]] = wait_until(stack, waiting, "routing", timeout=60)
    [child] = found
    return child


# -- the story ----------------------------------------------------------------------------------


def test_the_referral_loop_through_the_web_workspace(
    live_stack: LiveStack, page: Page, phone_page: Page, shots: Shots, page_errors: list[str]
) -> None:
    base = live_stack.base_url
    visit = Visit(shots, page_errors)
    scene = set_scene(live_stack)
    catford_broker = add_person(live_stack, scene.catford.org_id, "broker", "sam@catford.example")
    lewisham_broker = add_person(
        live_stack, scene.lewisham.org_id, "broker", "kim@lewisham.example"
    )
    staff = add_person(live_stack, scene.practice.org_id, "practice", "jo@rusheygreen.example")

    # Catford's broker set up their account earlier; today they sign in with password and code.
    set_up_account(page, catford_broker, visit, "Catford broker")
    visit(page, "Referrals", "Catford inbox, just set up")
    sign_out(page)
    routed_to(live_stack, scene.catford, scene)
    sign_in(page, base, catford_broker, visit, "Catford broker")
    decline_at_catford(page, visit)
    sign_out(page)

    # The worker routes it on to Lewisham, whose broker takes it through to the end.
    routed_to(live_stack, scene.lewisham, scene)
    set_up_account(page, lewisham_broker, visit, "Lewisham broker")
    referral_url = accept_and_enrol_at_lewisham(page, phone_page, visit)
    record_exchanges(page, visit)
    statement_url = record_wellbeing(page, phone_page, visit)
    complete(page, referral_url, visit)
    sign_out(page)

    # The practice's staff see the outcome; the practice's system reads the same over FHIR.
    set_up_account(page, staff, visit, "Practice staff")
    shown = practice_sees_the_outcome(page, phone_page, visit)
    fhir_says_the_same(base, scene, shown)

    assert page_errors == []
    assert statement_url.startswith(f"{base}/broker/members/")
    taken = [path.name for path in shots.taken]
    assert sum("on-a-phone" in name for name in taken) == 4, taken


def decline_at_catford(page: Page, visit: Visit) -> None:
    visit(page, "Referrals", "Catford inbox")
    page.get_by_role("link", name=re.compile("Grace")).click()
    visit(page, "Referral", "Catford referral")
    person = section(page, "Person")
    assert "Grace" in person
    assert "SE6" in person  # the postcode district, not the whole postcode
    assert "9434765919" not in person  # no NHS number for a time bank
    assert "4RU" not in person
    assert "Social isolation" in section(page, "Reason for referral")
    page.get_by_label("Reason for declining", exact=True).select_option(
        label=DECLINE_REASONS["no-capacity"]
    )
    page.get_by_label("Note for the GP", exact=True).fill(DECLINE_NOTE)
    page.get_by_role("button", name="Decline referral").click()
    visit(page, re.compile("Referral"), "Catford declined")
    expect(page.get_by_role("button", name="Accept referral")).to_have_count(0)


def accept_and_enrol_at_lewisham(page: Page, phone: Page, visit: Visit) -> str:
    visit(page, "Referrals", "Lewisham inbox")
    row = page.get_by_role("row", name=re.compile("Grace"))
    expect(row).to_contain_text(re.compile("working days? left|Reminder due|Overdue"))
    on_phone(page, phone, visit, "Referrals", "Lewisham inbox")
    row.get_by_role("link", name=re.compile("Grace")).click()
    visit(page, "Referral", "Lewisham referral")
    referral_url = page.url
    page.get_by_role("button", name="Accept referral").click()
    visit(page, "Referral", "Lewisham accepted")
    page.get_by_label("Name to use in the ledger", exact=True).fill(MEMBER)
    page.get_by_role("button", name="Enrol as member").click()
    visit(page, "Referral", "Lewisham enrolled")
    expect(page.get_by_role("link", name="Member statement")).to_be_visible()
    on_phone(page, phone, visit, "Referral", "Lewisham referral")
    return referral_url


def record_exchanges(page: Page, visit: Visit) -> None:
    page.get_by_role("link", name="Members", exact=True).click()
    visit(page, "Members", "Members")
    page.get_by_label("Name to use in the ledger", exact=True).fill(PARTNER)
    page.get_by_role("button", name="Add member").click()
    visit(page, "Members", "Members, one added")
    expect(page.get_by_role("row", name=re.compile(PARTNER))).to_be_visible()
    page.get_by_role("link", name="Exchanges", exact=True).click()
    visit(page, "Exchanges", "Exchanges")
    for giver, receiver, minutes, category, description in EXCHANGES:
        choose(page, "Who gave time", giver)
        choose(page, "Who received time", receiver)
        page.get_by_label("Minutes", exact=True).fill(str(minutes))
        page.get_by_label("Date", exact=True).fill(date.today().isoformat())
        page.get_by_label("Category", exact=True).select_option(label=category)
        page.get_by_label("Description", exact=True).fill(description)
        page.get_by_role("button", name="Record exchange").click()
        visit(page, "Exchanges", f"Exchange recorded: {category}")
        expect(page.get_by_text(description)).to_be_visible()


def record_wellbeing(page: Page, phone: Page, visit: Visit) -> str:
    page.get_by_role("link", name="Members", exact=True).click()
    visit(page, "Members", "Members after the exchanges")
    member_row = page.get_by_role("row", name=re.compile(MEMBER))
    expect(member_row).to_contain_text("Active")
    member_row.get_by_role("link", name=re.compile(MEMBER)).click()
    visit(page, "Time statement", "Statement")
    statement_url = page.url
    expect(page.get_by_text(EXCHANGES[0][4])).to_be_visible()
    expect(page.get_by_text(EXCHANGES[1][4])).to_be_visible()
    for answers, score in ((FIRST_ANSWERS, FIRST_SCORE), (LATER_ANSWERS, LATER_SCORE)):
        page.goto(statement_url)
        page.get_by_role("link", name=re.compile("SWEMWBS")).click()
        answer_swemwbs(page, answers, visit, f"SWEMWBS, scoring {score}")
        page.goto(statement_url)
        visit(page, "Time statement", f"Statement with SWEMWBS {score}")
        assert f"{score:.2f}" in section(page, "Wellbeing")
    on_phone(page, phone, visit, "Time statement", "Statement")
    return statement_url


def complete(page: Page, referral_url: str, visit: Visit) -> None:
    page.goto(referral_url)
    visit(page, "Referral", "Lewisham referral before completing")
    start = page.get_by_role("button", name="Start", exact=True)
    if start.count():
        start.click()
        visit(page, "Referral", "Lewisham in progress")
    page.get_by_role("button", name="Mark complete").click()
    visit(page, "Referral", "Lewisham completed")
    assert re.search("completed", section(page, "History"), re.IGNORECASE)


@dataclass(frozen=True)
class Shown:
    """What the practice's page showed came back."""

    outcome: str  # the text of "What came back"
    history: str
    activities: dict[str, str]  # activity → the text of its row
    score: str  # the text of the SWEMWBS row


def practice_sees_the_outcome(page: Page, phone: Page, visit: Visit) -> Shown:
    visit(page, "Referrals", "Practice referrals")
    row = page.get_by_role("row", name=re.compile("Grace"))
    expect(row).to_contain_text(re.compile("completed", re.IGNORECASE))
    expect(row).to_contain_text("Lewisham Time Bank")
    row.get_by_role("link", name=re.compile("Grace")).click()
    visit(page, "Referral", "Practice referral, completed")
    expect(page.get_by_role("main")).to_contain_text(re.compile("completed", re.IGNORECASE))
    history = section(page, "History")
    assert DECLINE_NOTE in history  # Catford's words reach the GP
    outcome = section(page, "What came back")
    for giver, _, minutes, category, _ in EXCHANGES:
        row = page.get_by_role("row", name=re.compile(category))
        expect(row).to_contain_text("Given" if giver == MEMBER else "Received")
        expect(row).to_contain_text(duration(minutes))
    swemwbs = page.get_by_role("row", name=re.compile("SWEMWBS|Warwick"))
    expect(swemwbs).to_contain_text(f"{FIRST_SCORE:.2f}")
    expect(swemwbs).to_contain_text(f"{LATER_SCORE:.2f}")
    expect(swemwbs).to_contain_text(f"{LATER_SCORE - FIRST_SCORE:.2f}")
    rows = {
        category: page.get_by_role("row", name=re.compile(category)).inner_text()
        for *_, category, _ in EXCHANGES
    }
    shown = Shown(outcome, history, rows, swemwbs.inner_text())
    on_phone(page, phone, visit, "Referral", "Practice referral")
    return shown


def duration(minutes: int) -> re.Pattern[str]:
    """Time as a page may write it: "1 hour 30 minutes", "1 h 30 min", "1.5 hours", "90 min"."""
    hours, rest = divmod(minutes, 60)
    words = [rf"{hours} ?h(our|r)?s?"] if hours else []
    words += [rf"{rest} ?m(in(ute)?s?)?"] if rest else []
    return re.compile(rf"\b({' '.join(words)}|{minutes / 60:g} ?hours|{minutes} ?min)\b")


def fhir_says_the_same(base: str, scene: Scene, shown: Shown) -> None:
    """The practice's FHIR client (SMART token): the referral Task completed, a Procedure per
    exchange and the two scores, with the values the page showed."""
    with fhir_client(base, scene.practice) as gp:
        read_back(gp, scene, shown)


def read_back(gp: httpx.Client, scene: Scene, shown: Shown) -> None:
    task = gp.get(scene.referral_task).json()
    assert task["status"] == "completed"
    outputs = {o["valueReference"]["reference"] for o in task.get("output", [])}
    procedures = entries(gp.get("Procedure", params={"based-on": scene.service_request}))
    assert {f"Procedure/{p['id']}" for p in procedures} <= outputs
    observations = entries(gp.get("Observation", params={"based-on": scene.service_request}))
    hours = {o["partOf"][0]["reference"]: o for o in observations if o.get("partOf")}
    assert sorted(concept_text(p["code"]) for p in procedures) == sorted(shown.activities)
    for procedure in procedures:  # each row of the page says what FHIR says
        row = shown.activities[concept_text(procedure["code"])]
        time = hours[f"Procedure/{procedure['id']}"]
        assert time["valueQuantity"]["code"] == "min"
        assert duration(time["valueQuantity"]["value"]).search(row), row
        direction = concept_text(time["component"][0]["valueCodeableConcept"])  # Time given
        assert direction.split()[-1].capitalize() in row, (direction, row)
    scores = entries(
        gp.get(
            "Observation",
            params={
                "based-on": scene.service_request,
                "code": "http://snomed.info/sct|718466001",
                "_sort": "_lastUpdated",
            },
        )
    )
    values = [score["valueQuantity"]["value"] for score in scores]
    assert values == pytest.approx([FIRST_SCORE, LATER_SCORE])
    assert {f"Observation/{s['id']}" for s in scores} <= outputs
    for value in values:
        assert f"{value:.2f}" in shown.score
    [declined] = entries(
        gp.get("Task", params={"part-of": scene.referral_task, "status": "rejected"})
    )
    assert declined["owner"]["reference"] == f"Organization/{scene.catford.org_id}"
    assert DECLINE_NOTE in declined["statusReason"]["text"]
    assert DECLINE_NOTE in shown.history


def concept_text(concept: dict[str, Any]) -> str:
    return str(concept.get("text") or concept["coding"][0]["display"])
