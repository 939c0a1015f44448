"""The practice staff's pages: the referral form goes through intake like a FHIR transaction, the
list and the detail read as the practice (consent, tenancy, audit unchanged), cancelling is the
PUT a GP system would send."""

from __future__ import annotations

import html
import re
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import task as fhir_task
from fhir_adapters.referral_form import ReferralForm, referral_bundle
from referral_service.audit import chain
from referral_service.audit.models import AuditEvent, Kind
from referral_service.audit.sealer import SEALER_THREAD
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.jobs.models import Job
from referral_service.people.models import Role
from referral_service.principal import Principal
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import route_now, swemwbs
from tests.fixtures.systems import TestSystem, bearer
from tests.fixtures.web import WebPerson, csrf_token, signed_in
from tests.ledger.conftest import add_member, enrol, exchange, reverse

FORM = {
    "nhs_number": "943 476 5919",
    "given_name": "Grace",
    "family_name": "Okafor",
    "birth_date": "1948-03-12",
    "postcode": "SE6 4RU",
    "phone": "020 7946 0000",
    "email": "",
    "reason_code": "267076002",
    "reason_text": "Lonely since her husband died",
    "needs": ["befriending"],
    "share_referral": "yes",
    "share_back": "yes",
    "secondary_use": "yes",
}
_HIDDEN = re.compile(r'<input type="hidden" name="(referral_id|sent_at)" value="([^"]+)">')


@pytest.fixture
def staff(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
) -> WebPerson:
    return signed_in(client, settings, session_factory, practice.org_id, Role.PRACTICE)


def opened_form(client: TestClient) -> dict[str, str]:
    """The new-referral page's hidden fields and CSRF token, as a browser would post them."""
    page = client.get("/practice/referrals/new")
    assert page.status_code == 200, page.text
    hidden = {name: html.unescape(value) for name, value in _HIDDEN.findall(page.text)}
    return {"csrf_token": csrf_token(page.text), **hidden}


def post_form(client: TestClient, opened: dict[str, str], **changes: Any) -> Any:
    data = {**FORM, **opened, **changes}
    data = {name: value for name, value in data.items() if value is not None}
    return client.post("/practice/referrals", data=data, follow_redirects=False)


def send(client: TestClient, **changes: Any) -> str:
    """Send a referral on the form; the referral Task's id."""
    sent = post_form(client, opened_form(client), **changes)
    assert sent.status_code == 303, sent.text
    location = sent.headers["location"]
    assert location.endswith("?notice=referral-sent")
    return str(location.split("?")[0].rsplit("/", 1)[1])


def stored(session_factory: sessionmaker[Session], org_id: str) -> list[dict[str, Any]]:
    with session_factory() as session:
        rows = session.scalars(select(StoredResource).where(StoredResource.org_id == org_id))
        return [resources.as_dict(row) for row in rows]


def of_type(found: list[dict[str, Any]], rtype: str) -> dict[str, Any]:
    [one] = [r for r in found if r["resourceType"] == rtype]
    return one


def events(session_factory: sessionmaker[Session]) -> list[AuditEvent]:
    with session_factory() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def shown(row: AuditEvent) -> list[chain.Event]:
    """A stored event as the events it is shown as (a read of several tenants' or patients'
    records is stored as one, and shown as one per tenant and patient)."""
    event = chain.Event(
        row.id,
        row.recorded,
        row.action,
        row.kind,
        row.actor_client_id,
        row.actor_org_id,
        row.tenant_org_id,
        row.patient_id,
        chain.entities_of(row.entities),
        row.purpose,
        row.outcome,
        row.detail,
        row.entity_groups,
    )
    return chain.parts(event)


def field_error(page: str, name: str) -> str:
    found = re.search(rf'<p class="field__error" id="{name}-error">(.*?)</p>', page, re.S)
    assert found, f"no error next to {name}"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).replace("Error:", "").strip()


def text_of(page: str) -> str:
    """The words on the page, as read aloud (tags gone, spaces collapsed)."""
    words = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    return re.sub(r" ([.,:;)])", r"\1", words)


def as_practice(session: Session, settings: Settings, system: TestSystem) -> Context:
    principal = Principal(system.client_id, system.org_id, system.kind, frozenset())
    return Context(session, principal, settings)


def timebank_moves(
    client: TestClient, system: TestSystem, task_id: str, move: Callable[[Any], Any]
) -> dict[str, Any]:
    """The time bank changes its Task over FHIR, as its broker's system would."""
    headers = bearer(client, system)
    current = client.get(f"/fhir/Task/{task_id}", headers=headers).json()
    moved = client.put(
        f"/fhir/Task/{task_id}", json=move(current), headers={**headers, **FHIR_JSON}
    )
    assert moved.status_code == 200, moved.text
    result: dict[str, Any] = moved.json()
    return result


# --- the form ---------------------------------------------------------------------------------


def _comparable(found: list[dict[str, Any]], org_id: str) -> dict[str, Any]:
    """What must match between two practices' referrals: everything but ids, times and the
    practice's own id."""
    volatile = {"id", "meta", "authoredOn", "dateTime", "timestamp", "reference", "period"}

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in volatile}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value.replace(org_id, "<practice>") if isinstance(value, str) else value

    return {r["resourceType"]: clean(r) for r in found}


def test_the_form_makes_what_the_same_fhir_transaction_makes(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    task_id = send(client)

    form = ReferralForm(
        practice_org_id=practice_b.org_id,
        referral_id="GP-SYSTEM-1",
        nhs_number="9434765919",
        family_name="Okafor",
        given_name="Grace",
        birth_date="1948-03-12",
        postcode="SE6 4RU",
        phone="020 7946 0000",
        reason_code="267076002",
        reason_text="Lonely since her husband died",
        needs=("befriending",),
        share_referral=True,
        share_back=True,
        secondary_use=True,
    )
    bundle = referral_bundle(form, datetime.now(UTC))
    by_fhir = client.post("/fhir", json=bundle, headers={**practice_b_headers, **FHIR_JSON})
    assert by_fhir.status_code == 200, by_fhir.text

    on_page, over_fhir = (
        stored(session_factory, practice.org_id),
        stored(session_factory, practice_b.org_id),
    )
    assert Counter(r["resourceType"] for r in on_page) == Counter(
        r["resourceType"] for r in over_fhir
    )
    assert Counter(r["resourceType"] for r in on_page) == {
        "Patient": 1,
        "Consent": 1,
        "ServiceRequest": 1,
        "Task": 1,
    }
    page_view = _comparable(on_page, practice.org_id)
    fhir_view = _comparable(over_fhir, practice_b.org_id)
    for rtype in ("Patient", "Consent", "Task"):
        assert page_view[rtype] == fhir_view[rtype], rtype
    page_sr, fhir_sr = page_view["ServiceRequest"], fhir_view["ServiceRequest"]
    assert page_sr.pop("identifier")[0]["system"] == fhir_sr.pop("identifier")[0]["system"]
    assert page_sr == fhir_sr
    task = of_type(on_page, "Task")
    assert task["id"] == task_id
    assert (task["status"], task["owner"]["reference"]) == ("requested", "Organization/spis")
    assert (
        task["focus"]["reference"] == f"ServiceRequest/{of_type(on_page, 'ServiceRequest')['id']}"
    )
    with session_factory() as session:
        jobs = [orjson.loads(j.args) for j in session.scalars(select(Job))]
    assert {"referral_task": task_id} in jobs  # routing was asked for


def test_the_referral_page_says_it_was_sent(client: TestClient, staff: WebPerson) -> None:
    task_id = send(client)
    page = client.get(f"/practice/referrals/{task_id}?notice=referral-sent")
    assert page.status_code == 200
    assert "Referral sent" in page.text
    assert "<h1>Referral</h1>" in page.text
    assert "Grace Okafor" in page.text
    assert "Requested" in page.text


def test_sending_the_same_form_again_creates_nothing_new(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    session_factory: sessionmaker[Session],
) -> None:
    opened = opened_form(client)
    first = post_form(client, opened)
    before = stored(session_factory, practice.org_id)
    again = post_form(client, opened)  # a double click, or a reload that posts again

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    after = stored(session_factory, practice.org_id)
    assert sorted((r["resourceType"], r["id"], r["meta"]["versionId"]) for r in after) == sorted(
        (r["resourceType"], r["id"], r["meta"]["versionId"]) for r in before
    )


def test_a_bad_nhs_number_is_shown_next_to_it_and_nothing_is_stored(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    session_factory: sessionmaker[Session],
) -> None:
    refused = post_form(client, opened_form(client), nhs_number="943 476 5918")

    assert refused.status_code == 422
    assert "NHS number" in field_error(refused.text, "nhs_number")
    assert '<a href="#nhs_number">' in refused.text  # summarised at the top, linked to the field
    assert 'value="Grace"' in refused.text
    assert 'value="943 476 5918"' in refused.text
    assert refused.headers["cache-control"] == "no-store"
    assert stored(session_factory, practice.org_id) == []
    failures = [e for e in events(session_factory) if e.kind == Kind.TRANSACTION]
    assert [(e.outcome, e.detail) for e in failures] == [(4, "422 value")]


def test_without_consent_to_share_intake_refuses_next_to_that_box(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    session_factory: sessionmaker[Session],
) -> None:
    refused = post_form(client, opened_form(client), share_referral=None)

    assert refused.status_code == 422
    message = field_error(refused.text, "share_referral")
    assert "Consent" in message  # intake's own words
    assert stored(session_factory, practice.org_id) == []
    decisions = [e for e in events(session_factory) if e.kind == Kind.CONSENT_DECISION]
    assert [e.outcome for e in decisions] == [4]  # the denial is audited, though nothing stayed


def test_missing_fields_the_form_needs_are_named(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    session_factory: sessionmaker[Session],
) -> None:
    refused = post_form(client, opened_form(client), family_name="", postcode=" ")
    assert refused.status_code == 400
    assert field_error(refused.text, "family_name") == "Enter the person's family name"
    assert "postcode" in field_error(refused.text, "postcode")
    assert stored(session_factory, practice.org_id) == []


def test_a_form_whose_hidden_fields_were_lost_is_reset_not_sent(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    session_factory: sessionmaker[Session],
) -> None:
    opened = {**opened_form(client), "sent_at": "yesterday"}
    reset = post_form(client, opened)
    assert reset.status_code == 400
    assert "has been reset" in reset.text
    assert 'value="Okafor"' in reset.text
    assert stored(session_factory, practice.org_id) == []


def test_the_form_page_is_not_stored_by_the_browser(client: TestClient, staff: WebPerson) -> None:
    page = client.get("/practice/referrals/new")
    assert page.headers["cache-control"] == "no-store"
    for label in (
        "NHS number",
        "Given name",
        "Family name",
        "Date of birth",
        "Postcode",
        "Phone (optional)",
        "Email (optional)",
        "Reason",
        "Reason for referral",
        "Share this referral with a time bank",
        "Share activities and wellbeing scores back with the practice",
        "Use in anonymised health board figures",
        "The person has a national data opt-out",
    ):
        assert f">{label}</label>" in page.text, label
    assert '<legend class="fieldset__legend">What might help</legend>' in page.text
    assert '<legend class="fieldset__legend">The person\'s consent</legend>' in page.text
    assert 'type="date"' in page.text
    assert ">Send referral</button>" in page.text


# --- the list ---------------------------------------------------------------------------------


def _back_date(
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    task_id: str,
    days: int,
) -> None:
    """As if the referral had been made `days` ago."""
    with session_factory() as session, session.begin():
        ctx = as_practice(session, settings, practice)
        row = resources.load(ctx, "Task", task_id, for_update=True)
        data = resources.as_dict(row)
        data["authoredOn"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
        resources.update(ctx, row, data)


def test_the_list_shows_days_since_referral_and_filters_by_status(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    practice_headers: dict[str, str],
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    older = make_referral(client, practice_headers, practice.org_id, referral_id="REF-OLD")
    newer = make_referral(
        client, practice_headers, practice.org_id, referral_id="REF-NEW", nhs_number="9000000009"
    )
    _back_date(session_factory, settings, practice, older.task_id, 12)
    task = client.get(f"/fhir/{newer.task}", headers=practice_headers).json()
    cancelled = fhir_task.cancelled(task, "Sent by mistake")
    answer = client.put(
        f"/fhir/{newer.task}", json=cancelled, headers={**practice_headers, **FHIR_JSON}
    )
    assert answer.status_code == 200, answer.text

    everything = client.get("/practice")
    assert everything.status_code == 200
    rows = re.findall(r"<tr>\s*<td data-label=\"Referred\">.*?</tr>", everything.text, re.S)
    assert len(rows) == 2
    assert f'href="/practice/referrals/{newer.task_id}"' in rows[0]  # newest first
    assert f'href="/practice/referrals/{older.task_id}"' in rows[1]
    assert '<td data-label="Days since referral" class="number">12</td>' in rows[1]
    assert "Grace Okafor" in rows[1]
    assert "Cancelled" in rows[0]

    only_cancelled = client.get("/practice?status=cancelled")
    assert newer.task_id in only_cancelled.text
    assert older.task_id not in only_cancelled.text
    assert '<option value="cancelled" selected>' in only_cancelled.text
    only_requested = client.get("/practice?status=requested").text
    assert older.task_id in only_requested
    assert newer.task_id not in only_requested
    assert "No referrals have this status." in client.get("/practice?status=failed").text
    searches = [e for e in events(session_factory) if e.kind == Kind.SEARCH]
    assert any(f"Task/{older.task_id}" in e.entities for e in searches)


def test_the_list_names_the_time_bank_once_routed_and_pages_by_twenty(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    assert "Not yet" in client.get("/practice").text
    route_now(session_factory, settings, referral.task_id)
    assert "Catford Time Bank" in client.get("/practice").text
    for n in range(20):
        make_referral(client, practice_headers, practice.org_id, referral_id=f"REF-{n:03}")
    first = client.get("/practice")
    assert first.text.count('<td data-label="Referred">') == 20
    assert "Next page" in first.text
    assert "Previous page" not in first.text
    second = client.get("/practice?page=2")
    assert second.text.count('<td data-label="Referred">') == 1
    assert referral.task_id in second.text  # the oldest change comes last
    assert "Previous page" in second.text
    assert "Next page" not in second.text


def _statements(client: TestClient, path: str) -> int:
    """How many SQL statements answering `path` took."""
    seen: list[str] = []

    def count(*args: Any) -> None:
        if threading.current_thread().name != SEALER_THREAD:  # the app's audit sealer
            seen.append(args[2])

    event.listen(Engine, "before_cursor_execute", count)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    return len(seen)


def test_the_list_costs_the_same_queries_however_many_rows_it_shows(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    for n in range(2):
        made = make_referral(client, practice_headers, practice.org_id, referral_id=f"R-{n}")
        route_now(session_factory, settings, made.task_id)
    few = _statements(client, "/practice")
    for n in range(2, 6):
        make_referral(client, practice_headers, practice.org_id, referral_id=f"R-{n}")
    many = _statements(client, "/practice")
    assert client.get("/practice").text.count('<td data-label="Referred">') == 6
    assert many == few


# --- one referral -----------------------------------------------------------------------------


def test_the_detail_shows_a_time_banks_decline_reason(
    client: TestClient,
    staff: WebPerson,
    referral: Referral,
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    child_id = route_now(session_factory, settings, referral.task_id)
    assert child_id is not None
    timebank_moves(
        client,
        timebank_a,
        child_id,
        lambda t: fhir_task.declined(t, "no-capacity", "Full until May"),
    )
    assert route_now(session_factory, settings, referral.task_id) is None  # nobody else: rejected

    page = client.get(f"/practice/referrals/{referral.task_id}")
    text = text_of(page.text)
    assert page.status_code == 200
    assert "Offered to Catford Time Bank" in text
    assert "Declined by Catford Time Bank" in text
    assert "Reason: The time bank has no room for new members at the moment: Full until May" in text
    assert "Status Rejected No time bank could take the referral" in text
    assert "Cancel referral" not in text  # closed: nothing to cancel


def _engaged(
    client: TestClient,
    timebank: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
    task_id: str,
) -> dict[str, Any]:
    """Routed to `timebank`, accepted, the person enrolled; two exchanges (one reversed) and two
    SWEMWBS. The time bank's Task."""
    child_id = route_now(session_factory, settings, task_id)
    assert child_id is not None
    child = timebank_moves(client, timebank, child_id, fhir_task.accepted)
    headers = bearer(client, timebank)
    enrolled = enrol(client, headers, timebank, child_id)
    assert enrolled.status_code == 201, enrolled.text
    grace = enrolled.json()["member"]["id"]
    sam = add_member(client, headers, timebank, "Sam")
    exchange(client, headers, timebank, sam, grace, minutes=120, date="2026-01-12")
    exchange(client, headers, timebank, grace, sam, minutes=45, date="2026-01-20")
    wrong = exchange(client, headers, timebank, grace, sam, minutes=600, date="2026-01-21").json()
    assert reverse(client, headers, timebank, wrong["id"]).status_code == 201
    filler, patient = child["focus"]["reference"], child["for"]["reference"]
    for answers, when in (
        ([2, 2, 3, 2, 2, 3, 2], "2026-01-10"),
        ([4, 4, 4, 3, 4, 4, 4], "2026-04-10"),
    ):
        qr = swemwbs(patient, filler, answers, f"{when}T10:00:00Z")
        sent = client.post("/fhir/QuestionnaireResponse", json=qr, headers={**headers, **FHIR_JSON})
        assert sent.status_code == 201, sent.text
    return child


def test_what_came_back_shows_activities_hours_and_score_change(
    client: TestClient,
    staff: WebPerson,
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    task_id = send(client)
    _engaged(client, timebank_a, settings, session_factory, task_id)

    page = client.get(f"/practice/referrals/{task_id}")
    text = text_of(page.text)
    assert "Hours given: 45 min. Hours received: 2 h." in text
    assert "12 January 2026 Befriending Received 2 h" in text
    assert "20 January 2026 Befriending Given 45 min" in text
    assert "withdrawn: recorded in error, not counted" in text  # the reversed one, listed apart
    assert "16.36 (10 January 2026) 24.11 (10 April 2026) +7.75" in text
    assert "Status Accepted" in text
    assert "Time bank Catford Time Bank" in text
    reads = [part for e in events(session_factory) if e.kind == Kind.READ for part in shown(e)]
    # One event per tenant: the practice's records, and the time bank's it was shown.
    assert any(f"Task/{task_id}" in e.entities for e in reads)
    shared = [" ".join(e.entities) for e in reads if e.tenant_org_id == timebank_a.org_id]
    assert shared
    assert "Procedure/" in shared[0]
    assert "Observation/" in shared[0]


def test_without_share_back_nothing_comes_back_and_the_page_says_why(
    client: TestClient,
    staff: WebPerson,
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    task_id = send(client, share_back=None)
    _engaged(client, timebank_a, settings, session_factory, task_id)

    text = text_of(client.get(f"/practice/referrals/{task_id}").text)
    assert "has not agreed to share their activities and wellbeing scores back" in text
    assert "Hours given" not in text
    assert "Befriending Received" not in text
    assert "16.36" not in text
    assert "24.11" not in text


def test_another_practices_referral_is_the_same_404_as_an_unknown_one(
    client: TestClient,
    staff: WebPerson,
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    theirs = make_referral(client, practice_b_headers, practice_b.org_id, referral_id="B-1")
    child_id = route_now(session_factory, settings, referral.task_id)
    unknown = client.get("/practice/referrals/no-such-task")
    other = client.get(f"/practice/referrals/{theirs.task_id}")
    child = client.get(f"/practice/referrals/{child_id}")  # the time bank's Task: not a referral
    assert unknown.status_code == other.status_code == child.status_code == 404
    assert unknown.text == other.text == child.text
    page = client.get("/practice/referrals/new")
    cancel = client.post(
        f"/practice/referrals/{theirs.task_id}/cancel",
        data={"csrf_token": csrf_token(page.text), "reason": "Not mine"},
    )
    assert cancel.status_code == 404
    status = client.get(f"/fhir/{theirs.task}", headers=practice_b_headers).json()["status"]
    assert status == "requested"


@pytest.mark.parametrize("role", [Role.BROKER, Role.ANALYST])
def test_other_roles_get_404_on_practice_pages(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    healthboard: TestSystem,
    referral: Referral,
    role: Role,
) -> None:
    org = timebank if role is Role.BROKER else healthboard
    signed_in(client, settings, session_factory, org.org_id, role)
    missing = client.get("/no-such-page")
    for path in ("/practice", "/practice/referrals/new", f"/practice/referrals/{referral.task_id}"):
        answer = client.get(path)
        assert (answer.status_code, answer.text) == (404, missing.text), path


# --- cancelling -------------------------------------------------------------------------------


def test_cancelling_cancels_the_task_revokes_the_request_and_tells_the_time_bank(
    client: TestClient,
    staff: WebPerson,
    practice_headers: dict[str, str],
    referral: Referral,
    timebank_a: TestSystem,
    settings: Settings,
    session_factory: sessionmaker[Session],
) -> None:
    child_id = route_now(session_factory, settings, referral.task_id)
    page = client.get(f"/practice/referrals/{referral.task_id}")
    assert ">Cancel referral</button>" in page.text
    version = re.search(r'name="version" value="(\d+)"', page.text)
    assert version
    done = client.post(
        f"/practice/referrals/{referral.task_id}/cancel",
        data={
            "csrf_token": csrf_token(page.text),
            "version": version.group(1),
            "reason": "Moved away",
        },
        follow_redirects=False,
    )

    assert done.status_code == 303
    assert (
        done.headers["location"]
        == f"/practice/referrals/{referral.task_id}?notice=referral-cancelled"
    )
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert (task["status"], task["statusReason"]["text"]) == ("cancelled", "Moved away")
    request = client.get(f"/fhir/{referral.service_request}", headers=practice_headers).json()
    assert request["status"] == "revoked"
    child = client.get(f"/fhir/Task/{child_id}", headers=practice_headers).json()
    assert child["status"] == "cancelled"
    after = text_of(client.get(done.headers["location"]).text)
    assert "Referral cancelled" in after
    assert "Status changed to Cancelled Reason: Moved away" in after
    updates = [e for e in events(session_factory) if e.kind == Kind.UPDATE]
    assert any(e.entities == f"Task/{referral.task_id}" and e.outcome == 0 for e in updates)


def test_a_cancel_without_a_reason_or_on_a_stale_page_changes_nothing(
    client: TestClient,
    staff: WebPerson,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    page = client.get(f"/practice/referrals/{referral.task_id}")
    url = f"/practice/referrals/{referral.task_id}/cancel"
    token = csrf_token(page.text)

    no_reason = client.post(url, data={"csrf_token": token, "version": "1", "reason": " "})
    assert no_reason.status_code == 400
    assert "Say why" in field_error(no_reason.text, "reason")
    stale = client.post(url, data={"csrf_token": token, "version": "0", "reason": "Moved"})
    assert stale.status_code == 412
    assert ">Moved</textarea>" in stale.text
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert task["status"] == "requested"


def test_a_closed_referral_cannot_be_cancelled(
    client: TestClient,
    staff: WebPerson,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    page = client.get(f"/practice/referrals/{referral.task_id}")
    url = f"/practice/referrals/{referral.task_id}/cancel"
    data = {"csrf_token": csrf_token(page.text), "reason": "Moved away"}
    assert client.post(url, data=data, follow_redirects=False).status_code == 303
    again = client.post(url, data={**data, "reason": "Twice"})
    assert again.status_code == 409
    assert "This referral has ended" in text_of(again.text)
    task = client.get(f"/fhir/{referral.task}", headers=practice_headers).json()
    assert task["statusReason"]["text"] == "Moved away"


# --- forms need their token -------------------------------------------------------------------


def test_forms_without_the_csrf_token_are_refused_and_change_nothing(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
    session_factory: sessionmaker[Session],
) -> None:
    before = stored(session_factory, practice.org_id)
    opened = opened_form(client)
    del opened["csrf_token"]
    assert post_form(client, opened).status_code == 403
    cancel = client.post(
        f"/practice/referrals/{referral.task_id}/cancel", data={"reason": "Moved away"}
    )
    assert cancel.status_code == 403
    after = stored(session_factory, practice.org_id)
    assert sorted((r["id"], r["meta"]["versionId"]) for r in after) == sorted(
        (r["id"], r["meta"]["versionId"]) for r in before
    )


# --- audit ------------------------------------------------------------------------------------


def test_sending_and_viewing_a_referral_are_audited_as_the_person(
    client: TestClient,
    staff: WebPerson,
    practice: TestSystem,
    session_factory: sessionmaker[Session],
) -> None:
    task_id = send(client)
    client.get(f"/practice/referrals/{task_id}")

    found = events(session_factory)
    written = [e for e in found if e.kind == Kind.TRANSACTION and e.outcome == 0]
    assert len(written) == 1
    assert written[0].actor_client_id.startswith("person/")
    assert written[0].actor_org_id == practice.org_id
    kinds = sorted(ref.split("/")[0] for ref in written[0].entities.split())
    assert kinds == ["Consent", "Patient", "ServiceRequest", "Task"]  # as over /fhir
    viewed = [e for e in found if e.kind == Kind.READ and f"Task/{task_id}" in e.entities]
    assert len(viewed) == 1
    assert viewed[0].actor_client_id == written[0].actor_client_id
    assert {"Patient", "ServiceRequest", "Task"} <= {
        r.split("/")[0] for r in viewed[0].entities.split()
    }
