"""The time bank broker's referral pages: the inbox with its answer deadlines, paging and filters;
one referral as the time bank may see it; the broker's moves and enrolment, through the same
intake, state machine, tenancy and audit as a FHIR client's."""

from __future__ import annotations

import html
import re
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import task as fhir_task
from fhir_adapters.codes import OFFER_SYSTEM
from fhir_adapters.summaries import task_summary
from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.ledger.models import Member
from referral_service.people.models import Role
from referral_service.routing import service as routing
from referral_service.store import service as resources
from referral_service.timebanks.service import set_profile
from referral_service.web import broker_views
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.referrals import Referral
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.systems import TestSystem
from tests.fixtures.web import csrf_token, signed_in

REASON_TEXT = "Lives alone since her husband died and rarely goes out"
CHANGED = "This referral changed while you were looking at it; here it is now."


# --- the world the pages are tested in ------------------------------------------------------------


def send_referral(
    client: TestClient, headers: dict[str, str], org_id: str, referral_id: str = "REF-0001"
) -> Referral:
    """The sample referral, asking for befriending and with the GP's words on the reason."""
    bundle = referral_bundle(org_id, referral_id=referral_id)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "ServiceRequest":
            resource["orderDetail"] = [
                {"coding": [{"system": OFFER_SYSTEM, "code": "befriending"}]}
            ]
            resource["reasonCode"][0]["text"] = REASON_TEXT
    sent = client.post("/fhir", json=bundle, headers={**headers, **FHIR_JSON})
    assert sent.status_code == 200, sent.text
    refs = ["/".join(e["response"]["location"].split("/")[:2]) for e in sent.json()["entry"]]
    found = client.get(f"/fhir/Task?focus={refs[2]}", headers=headers).json()
    task_id = found["entry"][0]["resource"]["id"]
    return Referral(refs[0], refs[1], refs[2], f"Task/{task_id}", task_id)


def routed_to(
    session_factory: sessionmaker[Session], settings: Settings, referral: Referral
) -> str:
    child = route_now(session_factory, settings, referral.task_id)
    assert child is not None
    return child


def stored(
    session_factory: sessionmaker[Session], settings: Settings, task_id: str
) -> dict[str, Any]:
    """A Task as stored, read as SPIS."""
    with session_factory() as session:
        row = resources.load(routing.system_context(session, settings), "Task", task_id)
        return resources.as_dict(row)


def set_child(
    session_factory: sessionmaker[Session], settings: Settings, task_id: str, **changes: Any
) -> None:
    with session_factory() as session, session.begin():
        ctx = routing.system_context(session, settings)
        row = resources.load(ctx, "Task", task_id, for_update=True)
        resources.update(ctx, row, {**resources.as_dict(row), **changes})


def practice_task(client: TestClient, headers: dict[str, str], referral: Referral) -> Any:
    """The referral Task as the GP's system reads it."""
    answer = client.get(f"/fhir/{referral.task}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def audit_events(session_factory: sessionmaker[Session], kind: str) -> list[AuditEvent]:
    """Events of a kind recorded by people (the web), not by systems."""
    with session_factory() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.kind == kind, AuditEvent.actor_client_id.like("person/%"))
                .order_by(AuditEvent.seq)
            )
        )


def post(
    client: TestClient, path: str, data: dict[str, str], *, page_path: str | None = None
) -> Any:
    """A form posted from the page it is on (for its CSRF token)."""
    page = client.get(page_path or path.rsplit("/", 1)[0])
    return client.post(
        path, data={"csrf_token": csrf_token(page.text), **data}, follow_redirects=False
    )


def version_of(session_factory: sessionmaker[Session], settings: Settings, task_id: str) -> str:
    return str(stored(session_factory, settings, task_id)["meta"]["versionId"])


def text_of(page: str) -> str:
    """The page's text without tags, whitespace folded: what a person reads."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


@pytest.fixture
def referral(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> Referral:
    return send_referral(client, practice_headers, practice.org_id)


@pytest.fixture
def child(
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> str:
    """The time bank Task routing created for the referral at Catford Time Bank."""
    return routed_to(session_factory, settings, referral)


@pytest.fixture
def broker(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank_a: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank_a.org_id, Role.BROKER)


def accept(client: TestClient, child: str, version: str = "1") -> Any:
    accepted = post(client, f"/broker/referrals/{child}/accept", {"version": version})
    assert accepted.status_code == 303, accepted.text
    return accepted


# --- the inbox ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_the_inbox_lists_the_routed_referral_with_name_needs_and_answer_deadline(
    client: TestClient, session_factory: sessionmaker[Session], referral: Referral, child: str
) -> None:
    page = client.get("/broker")

    assert page.status_code == 200
    assert "<h1>Referrals</h1>" in page.text
    assert '<a class="site-nav__link" href="/broker" aria-current="page">Referrals</a>' in page.text
    assert f'<a href="/broker/referrals/{child}">Grace Okafor</a>' in page.text
    row = text_of(page.text.split("<tbody>")[1].split("</tbody>")[0])
    today = datetime.now(broker_views.LOCAL_TIME)
    assert row == (
        f"{today.day} {today:%b %Y} Grace Okafor Befriending Waiting for your answer "
        "5 working days left"
    )
    assert "Next page" not in page.text
    assert "Previous page" not in page.text
    # audited as the same search over /fhir would be: the Tasks, filler orders and Patients shown
    [search] = audit_events(session_factory, "search")
    entities = set(search.entities.split())
    assert f"Task/{child}" in entities
    assert referral.patient in entities
    assert any(e.startswith("ServiceRequest/") and e != referral.service_request for e in entities)
    assert search.action == "E"


@pytest.mark.usefixtures("broker")
def test_the_answer_deadline_says_when_a_reminder_is_due_and_when_it_is_overdue(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
) -> None:
    marked, silent = (
        routed_to(
            session_factory,
            settings,
            send_referral(client, practice_headers, practice.org_id, f"R-{name}"),
        )
        for name in ("marked", "silent")
    )
    set_child(
        session_factory,
        settings,
        marked,
        businessStatus=fhir_task.reminder_due({}, 5)["businessStatus"],
    )
    set_child(session_factory, settings, silent, authoredOn="2000-01-03T09:00:00Z")

    rows = {
        task_id: text_of(row)
        for task_id, row in re.findall(
            r'<a href="/broker/referrals/([^"]+)">.*?</a>(.*?)</tr>',
            client.get("/broker").text,
            re.S,
        )
    }
    assert rows[marked].endswith("Waiting for your answer Reminder due")
    assert rows[silent].endswith("Waiting for your answer Overdue")


@pytest.mark.parametrize(
    ("authored", "business_status", "now", "expected"),
    [
        # Friday 9 January 2099: due Friday 16th, grace over Tuesday 20th (SLA 5, grace 2)
        ("2099-01-09T09:00:00Z", None, "2099-01-09T10:00:00+00:00", "5 working days left"),
        ("2099-01-09T09:00:00Z", None, "2099-01-12T12:00:00+00:00", "4 working days left"),
        ("2099-01-09T09:00:00Z", None, "2099-01-15T12:00:00+00:00", "1 working day left"),
        ("2099-01-09T09:00:00Z", None, "2099-01-16T09:00:00+00:00", "Reminder due"),
        ("2099-01-09T09:00:00Z", "reminder-due", "2099-01-12T12:00:00+00:00", "Reminder due"),
        ("2099-01-09T09:00:00Z", "reminder-sent", "2099-01-19T12:00:00+00:00", "Reminder due"),
        ("2099-01-09T09:00:00Z", "reminder-due", "2099-01-20T09:00:00+00:00", "Overdue"),
        ("2099-01-09T09:00:00Z", None, "2099-02-01T09:00:00+00:00", "Overdue"),
    ],
)
def test_the_answer_deadline_counts_working_days(
    settings: Settings, authored: str, business_status: str | None, now: str, expected: str
) -> None:
    task: dict[str, Any] = {"status": "requested", "authoredOn": authored}
    if business_status:
        task["businessStatus"] = fhir_task.business_status(business_status, "x")
    when = datetime.fromisoformat(now)
    assert broker_views.answer_due(settings, task_summary(task), when) == expected
    answered = {**task, "status": "accepted"}
    assert broker_views.answer_due(settings, task_summary(answered), when) is None


@pytest.mark.usefixtures("broker")
def test_the_inbox_pages_newest_first_and_filters_by_where_the_referral_is(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker_views, "PAGE_SIZE", 2)
    with session_factory() as session, session.begin():  # room for three open referrals
        set_profile(session, timebank_a.org_id, ["SE6"], ["befriending"], 3)
    first, second, third = (
        routed_to(
            session_factory,
            settings,
            send_referral(client, practice_headers, practice.org_id, f"R-{n}"),
        )
        for n in range(3)
    )

    def listed(path: str) -> list[str]:
        page = client.get(path)
        assert page.status_code == 200, page.text
        return re.findall(r'<a href="/broker/referrals/([^"]+)">', page.text)

    page_one = client.get("/broker")
    assert listed("/broker") == [third, second]
    assert '<a href="/broker?page=2" rel="next">Next page</a>' in page_one.text
    assert "Previous page" not in page_one.text
    page_two = client.get("/broker?page=2")
    assert listed("/broker?page=2") == [first]
    assert '<a href="/broker" rel="prev">Previous page</a>' in page_two.text
    assert "Next page" not in page_two.text
    assert listed("/broker?page=3") == []
    assert listed("/broker?page=not-a-number") == [third, second]

    accept(client, first)
    declined = post(
        client,
        f"/broker/referrals/{second}/decline",
        {"version": "1", "reason_code": "no-capacity"},
    )
    assert declined.status_code == 303
    assert listed("/broker?show=waiting") == [third]
    assert listed("/broker?show=active") == [first]
    assert listed("/broker?show=closed") == [second]
    assert listed("/broker") == [first, third]  # waiting and active, the latest change first
    assert listed("/broker?show=all") == [second, first]
    assert listed("/broker?show=all&page=2") == [third]
    all_page = client.get("/broker?show=all")
    assert '<a href="/broker?show=all&amp;page=2" rel="next">Next page</a>' in all_page.text
    assert '<a class="filters__link" href="/broker?show=all" aria-current="true">All</a>' in (
        all_page.text
    )
    # the declined referral is no longer shared with the time bank (the person still is: the
    # same Patient's other referrals are still with it)
    closed = text_of(client.get("/broker?show=closed").text.split("<tbody>")[1])
    assert closed.startswith(f"{datetime.now(broker_views.LOCAL_TIME).day} ")
    assert "Grace Okafor No longer shared Declined" in closed


# --- one referral ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_the_referral_page_shows_only_what_the_person_consented_to_share(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    referral: Referral,
    child: str,
) -> None:
    page = client.get(f"/broker/referrals/{child}")

    assert page.status_code == 200
    assert "<h1>Referral</h1>" in page.text
    text = text_of(page.text)
    today = datetime.now(broker_views.LOCAL_TIME).date()
    age = today.year - 1948 - ((today.month, today.day) < (3, 12))
    assert (
        f"Person Name Grace Okafor Age {age} Postcode district SE6 Phone 020 7946 0123 "
        "Email Not given"
    ) in text
    assert f"Reason for referral The GP's reason Social isolation {REASON_TEXT} " in text
    assert "What might help Befriending" in text
    assert "History Every change to this referral, oldest first" in text
    assert "Waiting for your answer" in text
    # nothing the time bank's view of the Patient leaves out, nor more than the page needs of it
    for hidden in ("9434765919", "1948-03-12", "12 Brownhill Road", "4RU", "Mrs", practice.org_id):
        assert hidden not in page.text, hidden
    # the answers a requested referral allows, and no others
    assert ">Accept referral</button>" in page.text
    assert ">Decline referral</button>" in page.text
    assert '<label class="field__label" for="reason_code">Reason for declining</label>' in page.text
    assert '<option value="no-capacity">' in page.text
    assert '<label class="field__label" for="note">Note for the GP</label>' in page.text
    for absent in ("Mark complete", "Mark failed", "Put on hold", ">Start<", "Enrol as member"):
        assert absent not in page.text, absent
    assert 'name="version" value="1"' in page.text

    [read] = audit_events(session_factory, "read")
    assert set(read.entities.split()) == {
        f"Task/{child}",
        referral.patient,
        stored(session_factory, settings, child)["focus"]["reference"],
    }
    assert (read.tenant_org_id, read.patient_id) == (
        practice.org_id,
        referral.patient.split("/")[1],
    )
    [history] = audit_events(session_factory, "history")
    assert history.entities == f"Task/{child}"


@pytest.mark.usefixtures("broker")
def test_accepting_moves_the_gps_referral_task_too(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    child: str,
) -> None:
    accepted = accept(client, child)

    assert accepted.headers["location"] == f"/broker/referrals/{child}?notice=referral-accepted"
    assert stored(session_factory, settings, child)["status"] == "accepted"
    assert practice_task(client, practice_headers, referral)["status"] == "accepted"
    page = client.get(accepted.headers["location"])
    assert "Referral accepted." in page.text
    for offered in (">Start</button>", ">Put on hold</button>", ">Mark complete</button>"):
        assert offered in page.text
    assert ">Mark failed</button>" in page.text
    assert ">Accept referral</button>" not in page.text
    assert ">Enrol as member</button>" in page.text
    [update] = audit_events(session_factory, "update")
    assert (update.entities, update.action, update.outcome) == (f"Task/{child}", "U", 0)
    history = text_of(page.text.split("<h2>History</h2>")[1])
    assert history.index("Waiting for your answer") < history.index("Accepted")


@pytest.mark.usefixtures("broker")
def test_a_decline_with_its_reason_and_note_reaches_the_gp(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    child: str,
) -> None:
    declined = post(
        client,
        f"/broker/referrals/{child}/decline",
        {"version": "1", "reason_code": "no-capacity", "note": "Full until March"},
    )

    assert declined.headers["location"] == "/broker?notice=referral-declined"
    task = stored(session_factory, settings, child)
    assert task["status"] == "rejected"
    reason = "The time bank has no room for new members at the moment: Full until March"
    assert task["statusReason"]["text"] == reason
    assert task["statusReason"]["coding"][0]["code"] == "no-capacity"
    [update] = audit_events(session_factory, "update")
    assert (update.entities, update.action, update.outcome) == (f"Task/{child}", "U", 0)
    page = client.get(f"/broker/referrals/{child}")  # the time bank keeps its Task, no more
    assert "Your time bank no longer sees this person's details" in page.text
    assert "The referral's details are no longer shared with your time bank." in page.text
    assert "Grace" not in page.text
    assert "Full until March" in page.text  # its own answer, in the history
    assert "Decline referral" not in page.text
    inbox = client.get(declined.headers["location"])
    assert "Referral declined. The GP can read your reason." in inbox.text
    assert f"/broker/referrals/{child}" not in inbox.text  # no longer waiting
    # routing finds no other time bank: the GP's referral Task says why, with the note
    assert route_now(session_factory, settings, referral.task_id) is None
    gp_task = practice_task(client, practice_headers, referral)
    assert gp_task["status"] == "rejected"
    assert "Full until March" in gp_task["statusReason"]["text"]


def test_a_declined_referral_goes_on_to_the_next_time_bank(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    other = add_timebank(session_factory, "Hither Green Time Bank", ["SE6"], ["befriending"], 1)
    child = routed_to(session_factory, settings, referral)
    first_owner = stored(session_factory, settings, child)["owner"]["reference"].split("/")[1]
    second_owner = other.org_id if first_owner == timebank_a.org_id else timebank_a.org_id
    signed_in(client, settings, session_factory, first_owner, Role.BROKER)

    declined = post(
        client,
        f"/broker/referrals/{child}/decline",
        {"version": "1", "reason_code": "other", "note": "We are closing for the summer"},
    )

    assert declined.status_code == 303
    onward = route_now(session_factory, settings, referral.task_id)
    assert onward is not None
    assert onward != child
    assert stored(session_factory, settings, onward)["owner"]["reference"] == (
        f"Organization/{second_owner}"
    )
    gp_task = practice_task(client, practice_headers, referral)
    assert gp_task["status"] == "requested"
    assert gp_task["businessStatus"]["coding"][0]["code"] == "routed"


@pytest.mark.usefixtures("broker")
def test_holding_needs_a_reason_and_a_refused_hold_changes_nothing(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice_headers: dict[str, str],
    referral: Referral,
    child: str,
) -> None:
    accept(client, child)
    before = stored(session_factory, settings, child)

    refused = post(client, f"/broker/referrals/{child}/hold", {"version": "2", "hold_reason": " "})

    assert refused.status_code == 422
    message = "Task.statusReason.text is required when the status becomes on-hold"
    assert f'<a href="#hold_reason">{message}</a>' in refused.text
    assert 'id="hold_reason-error"' in refused.text
    assert "<title>Error: Referral – SPIS</title>" in refused.text
    assert stored(session_factory, settings, child) == before
    assert [e.detail for e in audit_events(session_factory, "update") if e.outcome] == [
        "422 business-rule"
    ]

    held = post(
        client, f"/broker/referrals/{child}/hold", {"version": "2", "hold_reason": "In hospital"}
    )
    assert held.headers["location"] == f"/broker/referrals/{child}?notice=referral-on-hold"
    assert stored(session_factory, settings, child)["status"] == "on-hold"
    gp_task = practice_task(client, practice_headers, referral)
    assert gp_task["status"] == "on-hold"
    assert "In hospital" in gp_task["statusReason"]["text"]


@pytest.mark.usefixtures("broker")
def test_a_move_the_state_machine_refuses_shows_its_message_and_changes_nothing(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    child: str,
) -> None:
    before = stored(session_factory, settings, child)

    refused = post(client, f"/broker/referrals/{child}/complete", {"version": "1"})

    assert refused.status_code == 409
    assert "A referral Task cannot move from requested to completed" in refused.text
    assert 'class="error-summary"' in refused.text
    assert stored(session_factory, settings, child) == before
    [failure] = [e for e in audit_events(session_factory, "update") if e.outcome]
    assert (failure.entities, failure.outcome, failure.detail) == (
        f"Task/{child}",
        4,
        "409 business-rule",
    )


@pytest.mark.usefixtures("broker")
def test_a_form_from_an_older_version_is_a_conflict_not_an_overwrite(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings, child: str
) -> None:
    accept(client, child)
    before = stored(session_factory, settings, child)

    for version in ("1", ""):
        stale = post(
            client,
            f"/broker/referrals/{child}/decline",
            {"version": version, "reason_code": "no-capacity", "note": "typed on the old page"},
        )
        assert stale.status_code == 412
        assert CHANGED in stale.text
        assert "Status Accepted" in text_of(stale.text)
        assert "typed on the old page" not in stale.text  # the page shows the referral afresh
        assert stored(session_factory, settings, child) == before


@pytest.mark.usefixtures("broker")
def test_a_declined_reason_must_be_one_of_the_list_and_other_needs_a_note(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings, child: str
) -> None:
    before = stored(session_factory, settings, child)
    path = f"/broker/referrals/{child}/decline"

    unlisted = post(client, path, {"version": "1", "reason_code": "too-busy", "note": "kept"})
    assert unlisted.status_code == 422
    assert '<a href="#reason_code">Choose a reason for declining</a>' in unlisted.text
    assert ">kept</textarea>" in unlisted.text  # what was typed stays

    bare_other = post(client, path, {"version": "1", "reason_code": "other"})
    assert bare_other.status_code == 422
    assert '<a href="#note">' in bare_other.text
    assert '<option value="other" selected>' in bare_other.text
    assert stored(session_factory, settings, child) == before


# --- enrolment ------------------------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_enrolling_makes_the_person_a_member_and_links_their_statement(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    timebank_a: TestSystem,
    child: str,
) -> None:
    early = post(client, f"/broker/referrals/{child}/enrol", {"alias": "Grace"})
    assert early.status_code == 409  # only once accepted
    assert "must be accepted or in-progress to enrol the person" in early.text
    accept(client, child)
    page = client.get(f"/broker/referrals/{child}")
    assert '<label class="field__label" for="alias">Name to use in the ledger</label>' in page.text

    blank = post(client, f"/broker/referrals/{child}/enrol", {"alias": "  "})
    assert blank.status_code == 422
    assert '<a href="#alias">Name to use in the ledger must not be empty</a>' in blank.text

    enrolled = post(client, f"/broker/referrals/{child}/enrol", {"alias": "Grace"})

    assert enrolled.headers["location"] == f"/broker/referrals/{child}?notice=member-enrolled"
    with session_factory() as session:
        [member] = session.scalars(select(Member)).all()
        assert (member.org_id, member.referral_task_id, member.alias) == (
            timebank_a.org_id,
            child,
            "Grace",
        )
    page = client.get(enrolled.headers["location"])
    assert f'<a href="/broker/members/{member.id}">Member statement</a>' in page.text
    assert ">Enrol as member</button>" not in page.text
    again = post(client, f"/broker/referrals/{child}/enrol", {"alias": "Grace again"})
    assert again.status_code == 409
    with session_factory() as session:
        assert len(session.scalars(select(Member)).all()) == 1


# --- who may see and do what ----------------------------------------------------------------------


def test_another_time_banks_broker_gets_the_same_404_as_for_an_unknown_referral(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    timebank: TestSystem,
    child: str,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)

    theirs = client.get(f"/broker/referrals/{child}")
    unknown = client.get("/broker/referrals/no-such-task")

    assert theirs.status_code == unknown.status_code == 404
    assert theirs.text == unknown.text
    assert "Grace" not in theirs.text
    crafted = post(
        client, f"/broker/referrals/{child}/accept", {"version": "1"}, page_path="/broker"
    )
    assert crafted.status_code == 404
    assert stored(session_factory, settings, child)["status"] == "requested"
    assert f"/broker/referrals/{child}" not in client.get("/broker?show=all").text


@pytest.mark.parametrize("role", [Role.PRACTICE, Role.ANALYST])
def test_people_of_other_roles_find_no_broker_pages(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    healthboard: TestSystem,
    child: str,
    role: Role,
) -> None:
    org = practice if role is Role.PRACTICE else healthboard
    signed_in(client, settings, session_factory, org.org_id, role)
    missing = client.get("/no-such-page").text

    for path in ("/broker", f"/broker/referrals/{child}"):
        page = client.get(path)
        assert (page.status_code, page.text) == (404, missing), path


@pytest.mark.usefixtures("broker")
def test_a_move_without_the_forms_token_is_refused_and_changes_nothing(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings, child: str
) -> None:
    refused = client.post(
        f"/broker/referrals/{child}/accept", data={"version": "1"}, follow_redirects=False
    )

    assert refused.status_code == 403
    assert "The form expired or did not come from SPIS" in refused.text
    assert stored(session_factory, settings, child)["status"] == "requested"
    assert audit_events(session_factory, "update") == []


@pytest.mark.usefixtures("broker")
def test_an_unknown_move_is_not_found(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings, child: str
) -> None:
    answer = post(client, f"/broker/referrals/{child}/cancel", {"version": "1"})
    assert answer.status_code == 404
    assert stored(session_factory, settings, child)["status"] == "requested"
