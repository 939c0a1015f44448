"""The broker's ledger pages (issue 9): members, time statements, exchanges, reversals, ended
memberships and the CSV downloads, through a signed-in browser. The figures on each page are the
ledger service's own; refusals show the service's message next to the field and change nothing.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.ledger import export
from referral_service.ledger import service as ledger
from referral_service.ledger.models import Exchange
from referral_service.organisations.models import OrgKind
from referral_service.people.models import Role
from tests.fixtures.pages import field_error, notices, table
from tests.fixtures.systems import TestSystem, bearer, register_system
from tests.fixtures.web import csrf_token, signed_in
from tests.ledger.conftest import add_member, context_of, end_membership, exchange, reverse

MEMBERS = "/broker/members"
EXCHANGES = "/broker/exchanges"
HEADER = ["Member", "Balance (hours)", "Given", "Received", "Partners", "Reciprocity", "Status"]


@pytest.fixture
def broker(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)


@pytest.fixture
def api(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> dict[str, Any]:
    """The time bank's own system, to set up a ledger the pages then show."""
    return {"client": client, "headers": timebank_headers, "timebank": timebank}


def member(api: dict[str, Any], alias: str) -> str:
    return add_member(api["client"], api["headers"], api["timebank"], alias)


def gave(api: dict[str, Any], giver: str, receiver: str, minutes: int, on: str, **more: Any) -> str:
    response = exchange(
        api["client"], api["headers"], api["timebank"], giver, receiver, minutes=minutes, date=on,
        **more,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    exchange_id: str = response.json()["id"]
    return exchange_id


def form_post(client: TestClient, page_path: str, action: str, data: dict[str, str]) -> Any:
    """Submit a form on `page_path` as a browser does: with that page's CSRF token."""
    token = csrf_token(client.get(page_path).text)
    return client.post(action, data={"csrf_token": token, **data}, follow_redirects=False)


def exchange_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Exchange)) or 0


def events(session_factory: sessionmaker[Session], **where: Any) -> list[AuditEvent]:
    with session_factory() as session:
        query = select(AuditEvent).filter_by(**where).order_by(AuditEvent.seq)
        return list(session.scalars(query))


# --- the members list ------------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_the_members_list_shows_the_ledgers_figures(
    client: TestClient,
    api: dict[str, Any],
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    sam, ana, bo = member(api, "Sam"), member(api, "Ana"), member(api, "Bo")
    gave(api, sam, ana, 90, "2026-11-02")
    gave(api, ana, sam, 30, "2026-11-03")
    gave(api, sam, bo, 45, "2026-11-04")

    page = client.get(MEMBERS)

    assert page.status_code == 200
    assert "<h1>Members</h1>" in page.text
    rows = table(page.text, "Every member")
    assert rows == [
        HEADER,
        ["Sam", "+1 h 45 min", "2 h 15 min", "30 min", "2", "–", "Active"],
        ["Ana", "-1 h", "30 min", "1 h 30 min", "1", "–", "Active"],
        ["Bo", "-45 min", "0 min", "45 min", "1", "–", "Active"],
    ]
    with session_factory() as session:
        figures = ledger.member_rows(context_of(session, settings, timebank)).items
    assert [(r.balance, r.given, r.received, r.partners) for r in figures] == [
        (105, 135, 30, 2),
        (-60, 30, 90, 1),
        (-45, 0, 45, 1),
    ]
    assert '<a href="/broker/members.csv" download>Download members (CSV)</a>' in page.text
    [shown] = events(session_factory, detail="ledger members list")
    assert (shown.kind, shown.action, shown.tenant_org_id) == ("search", "E", timebank.org_id)
    assert set(shown.entities.split()) == {f"LedgerMember/{m}" for m in (sam, ana, bo)}


@pytest.mark.usefixtures("broker")
def test_adding_a_member_on_the_form(
    client: TestClient, session_factory: sessionmaker[Session], timebank: TestSystem
) -> None:
    added = form_post(client, MEMBERS, MEMBERS, {"alias": "  Zoë  "})

    assert (added.status_code, added.headers["location"]) == (303, f"{MEMBERS}?notice=member-added")
    page = client.get(added.headers["location"])
    assert notices(page.text) == ["Member added."]
    assert table(page.text, "Every member")[1][0] == "Zoë"
    [written] = events(session_factory, kind="create", detail="ledger member")
    assert written.tenant_org_id == timebank.org_id


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("   ", "Enter the name to use in the ledger"),
        ("x" * 81, "Alias must be at most 80 characters"),
    ],
)
@pytest.mark.usefixtures("broker")
def test_a_refused_member_name_is_shown_next_to_the_field(
    client: TestClient, session_factory: sessionmaker[Session], alias: str, message: str
) -> None:
    refused = form_post(client, MEMBERS, MEMBERS, {"alias": alias})

    assert refused.status_code == 422
    assert field_error(refused.text, "alias") == message
    assert f'<a href="#alias">{message}</a>' in refused.text
    assert "No members yet." in refused.text  # nothing was added
    if alias.strip():
        assert f'value="{alias}"' in refused.text  # what was typed is kept
        [failure] = events(session_factory, outcome=4)
        assert (failure.kind, failure.detail) == ("create", "422 invalid")


# --- a member's time statement ---------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_the_statement_lists_every_line_with_the_running_balance(
    client: TestClient,
    api: dict[str, Any],
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    sam, ana, bo = member(api, "Sam"), member(api, "Ana"), member(api, "Bo")
    first = gave(api, sam, ana, 90, "2026-11-02", description="Walk in the park")
    gave(api, bo, sam, 120, "2026-11-03", category="gardening")
    mistake = gave(api, ana, sam, 15, "2026-11-04")
    reverse(api["client"], api["headers"], timebank, mistake, "Typed twice")

    page = client.get(f"{MEMBERS}/{sam}")

    assert page.status_code == 200
    assert "Time statement</h1>" in page.text
    assert table(page.text, "Every exchange") == [
        ["Date", "With whom", "Category", "Description", "Time", "Balance"],
        ["2 November 2026", "Ana", "Befriending", "Walk in the park", "+1 h 30 min", "+1 h 30 min"],
        ["3 November 2026", "Bo", "Gardening", "", "-2 h", "-30 min"],
        ["4 November 2026", "Ana", "Befriending", "Reversed", "-15 min", "-45 min"],
        [
            "4 November 2026",
            "Ana",
            "Befriending",
            "Reversal of a mistaken exchange: Typed twice",
            "+15 min",
            "-30 min",
        ],
    ]
    assert "<dt>Balance</dt><dd>-30 min</dd>" in page.text
    assert "<dt>Given</dt><dd>1 h 30 min</dd>" in page.text
    assert "<dt>Received</dt><dd>2 h</dd>" in page.text  # the reversed 15 min came back
    assert "Print statement" in page.text
    assert 'class="print-only"' in page.text
    [shown] = events(session_factory, detail="ledger statement")
    assert (shown.kind, shown.action) == ("read", "R")
    assert f"LedgerMember/{sam}" in shown.entities.split()
    assert f"LedgerExchange/{first}" in shown.entities.split()


def test_the_stylesheet_prints_a_statement_without_forms_or_menus(client: TestClient) -> None:
    css = client.get("/static/spis.css").text
    ledger_print = css.split("A statement on paper", 1)[1]
    assert ".no-print" in ledger_print
    assert ".print-only" in ledger_print
    assert "@page" in ledger_print


# --- recording an exchange -------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_recording_an_exchange_on_the_form(
    client: TestClient,
    api: dict[str, Any],
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    data = {
        "giver_id": sam,
        "receiver_id": ana,
        "minutes": "75",
        "date": "2026-11-21",
        "category": "shopping-companion",
        "description": "Weekly shop",
    }

    done = form_post(client, EXCHANGES, EXCHANGES, data)

    assert (done.status_code, done.headers["location"]) == (
        303,
        f"{EXCHANGES}?notice=exchange-recorded",
    )
    page = client.get(done.headers["location"])
    assert notices(page.text) == ["Exchange recorded."]
    assert table(page.text, "Exchanges")[1][:6] == [
        "21 November 2026",
        "Sam",
        "Ana",
        "Shopping companion",
        "1 h 15 min",
        "Weekly shop",
    ]
    with session_factory() as session:
        [recorded] = ledger.exchanges(
            context_of(session, settings, timebank), None, limit=5, offset=0
        ).items
        stored = recorded.exchange
        assert (stored.giver_id, stored.receiver_id, stored.minutes) == (sam, ana, 75)
        assert (stored.category, stored.description) == ("shopping-companion", "Weekly shop")


def future() -> str:
    return (datetime.now(UTC).date() + timedelta(days=3)).isoformat()


@pytest.mark.parametrize(
    ("change", "fields", "message", "status"),
    [
        (
            {"receiver_id": "giver"},
            ["giver_id", "receiver_id"],
            "Giver and receiver must be two different members",
            422,
        ),
        ({"minutes": "0"}, ["minutes"], "Minutes must be a whole number greater than 0", 422),
        (
            {"minutes": "1441"},
            ["minutes"],
            "Minutes must be at most 1440 (one day) per exchange",
            422,
        ),
        ({"minutes": "1.5"}, ["minutes"], "Enter the minutes as a whole number, like 90", 422),
        ({"date": "future"}, ["date"], "Date must not be in the future", 422),
        ({"date": "2026-02-30"}, ["date"], "Enter a real date, like 2026-11-20", 422),
        ({"category": ""}, ["category"], "Choose a category", 422),
        ({"category": "knitting"}, ["category"], None, 422),
        ({"giver_id": "ended"}, ["giver_id"], "Member {ended}'s membership has ended", 409),
        (
            {"receiver_id": "no-such-member"},
            ["receiver_id"],
            "Member no-such-member is not a member of this time bank",
            422,
        ),
    ],
)
@pytest.mark.usefixtures("broker")
def test_a_refused_exchange_shows_the_message_next_to_its_field(
    client: TestClient,
    api: dict[str, Any],
    session_factory: sessionmaker[Session],
    change: dict[str, str],
    fields: list[str],
    message: str | None,
    status: int,
) -> None:
    sam, ana, gone = member(api, "Sam"), member(api, "Ana"), member(api, "Gone")
    end_membership(api["client"], api["headers"], api["timebank"], gone)
    named = {"giver": sam, "ended": gone, "future": future()}
    data = {
        "giver_id": sam,
        "receiver_id": ana,
        "minutes": "60",
        "date": "2026-11-21",
        "category": "music",
        "description": "Piano lesson",
    }
    data |= {name: named.get(value, value) for name, value in change.items()}

    refused = form_post(client, EXCHANGES, EXCHANGES, data)

    assert refused.status_code == status
    for name in fields:
        shown = field_error(refused.text, name)
        assert shown is not None
        if message is not None:
            assert shown == message.format(ended=gone)
    assert ">Piano lesson</textarea>" in refused.text  # what was typed is kept
    assert f'value="{data["minutes"]}"' in refused.text
    assert exchange_count(session_factory) == 0
    if message is not None and not message.startswith(("Enter", "Choose")):  # the ledger's
        [failure] = events(session_factory, outcome=4)  # audited as the JSON API's refusal
        assert failure.kind == "create"
        assert failure.detail in ("422 invalid", "409 business-rule", "404 not-found")


@pytest.mark.usefixtures("broker")
def test_ended_members_are_not_offered_in_the_exchange_form(
    client: TestClient, api: dict[str, Any]
) -> None:
    sam, ana, gone = member(api, "Sam"), member(api, "Ana"), member(api, "Gone")
    end_membership(api["client"], api["headers"], api["timebank"], gone)

    page = client.get(EXCHANGES).text

    form = page.split('id="record-exchange"', 1)[1].split("</form>", 1)[0]
    assert f'value="{sam}"' in form
    assert f'value="{ana}"' in form
    assert gone not in form


# --- reversing a mistaken exchange -----------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_reversing_an_exchange_lists_both_and_puts_the_balance_back(
    client: TestClient, api: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    mistaken = gave(api, sam, ana, 90, "2026-11-20", description="Typed twice")
    action = f"{EXCHANGES}/{mistaken}/reverse"

    done = form_post(client, EXCHANGES, action, {"reason": "Entered twice", "page": "1"})

    assert (done.status_code, done.headers["location"]) == (
        303,
        f"{EXCHANGES}?notice=exchange-reversed",
    )
    page = client.get(done.headers["location"]).text
    rows = table(page, "Exchanges")[1:]
    assert [row[:6] for row in rows] == [
        [
            "20 November 2026",
            "Sam",
            "Ana",
            "Befriending",
            "-1 h 30 min",
            "Reversal of a mistaken exchange: Entered twice",
        ],
        ["20 November 2026", "Sam", "Ana", "Befriending", "1 h 30 min", "Typed twice"],
    ]
    assert [row[6] for row in rows] == ["–", "Reversed"]
    assert f'action="{action}"' not in page  # a reversed exchange has no Reverse form
    members = table(client.get(MEMBERS).text, "Every member")
    assert [row[1] for row in members[1:]] == ["0 min", "0 min"]
    assert exchange_count(session_factory) == 2

    again = client.post(
        action,
        data={"csrf_token": csrf_token(page), "reason": "Once more"},
        follow_redirects=False,
    )

    assert again.status_code == 409
    assert f"Exchange {mistaken} is already reversed (by exchange" in again.text
    assert 'class="error-summary"' in again.text
    assert exchange_count(session_factory) == 2


@pytest.mark.usefixtures("broker")
def test_a_reversal_needs_a_reason(
    client: TestClient, api: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    mistaken = gave(api, sam, ana, 90, "2026-11-20")

    refused = form_post(client, EXCHANGES, f"{EXCHANGES}/{mistaken}/reverse", {"reason": " "})

    assert refused.status_code == 422
    assert field_error(refused.text, f"reason-{mistaken}") == "Reason must not be empty"
    assert exchange_count(session_factory) == 1


@pytest.mark.usefixtures("broker")
def test_the_exchanges_list_is_paged_newest_first(client: TestClient, api: dict[str, Any]) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    for day in range(1, 22):
        gave(api, sam, ana, day, f"2026-10-{day:02d}")

    first = client.get(EXCHANGES).text
    second = client.get(f"{EXCHANGES}?page=2").text

    first_rows = table(first, "Exchanges")[1:]
    assert len(first_rows) == 20
    assert first_rows[0][0] == "21 October 2026"
    assert '<a href="/broker/exchanges?page=2" rel="next">Next page</a>' in first
    assert "Previous page" not in first
    assert [row[0] for row in table(second, "Exchanges, page 2")[1:]] == ["1 October 2026"]
    assert '<a href="/broker/exchanges" rel="prev">Previous page</a>' in second
    assert "Next page" not in second


# --- ending a membership ---------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_ending_a_membership_keeps_the_history(
    client: TestClient, api: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    gave(api, sam, ana, 60, "2026-11-20")
    statement = f"{MEMBERS}/{ana}"

    done = form_post(client, statement, f"{statement}/end", {"reason": "Moved away"})

    assert (done.status_code, done.headers["location"]) == (
        303,
        f"{statement}?notice=membership-ended",
    )
    page = client.get(done.headers["location"]).text
    assert notices(page) == ["Membership ended. The member's history and balance are kept."]
    assert '<strong class="tag tag--ended">Ended</strong>' in page
    assert "Moved away" in page
    assert len(table(page, "Every exchange")) == 2  # the line is still there
    assert "Reason for ending" not in page  # no second ending
    assert table(client.get(MEMBERS).text, "Every member")[2][-1] == "Ended"
    assert ana not in client.get(EXCHANGES).text.split('id="recorded"')[0]

    again = client.post(
        f"{statement}/end", data={"csrf_token": csrf_token(page)}, follow_redirects=False
    )
    assert again.status_code == 409
    assert f"Member {ana}&#39;s membership has already ended" in again.text
    assert len(events(session_factory, detail="ledger membership ended")) == 1


# --- the downloads ---------------------------------------------------------------------------


def rows_of(body: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body)))


@pytest.mark.usefixtures("broker")
def test_the_members_download_is_csv_for_spreadsheets(
    client: TestClient,
    api: dict[str, Any],
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    sam, sly = member(api, "Zoë"), member(api, "=HYPERLINK(1)")
    gave(api, sam, sly, 90, "2026-11-20")

    response = client.get("/broker/members.csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="ledger-members-'
    )
    assert response.content.startswith(b"\xef\xbb\xbfmember_id,")  # the BOM, then the header
    rows = rows_of(response.content.decode("utf-8-sig"))
    assert rows[0] == list(export.MEMBER_HEADER)
    assert [row[:2] + row[5:7] for row in rows[1:]] == [
        [sam, "Zoë", "90", "1.50"],
        [sly, "'=HYPERLINK(1)", "-90", "-1.50"],  # a formula is written as text
    ]
    [exported] = events(session_factory, kind="export")
    assert exported.detail == "ledger export: members: 2 rows"
    assert exported.entities == f"Organization/{timebank.org_id}"


@pytest.mark.usefixtures("broker")
def test_the_exchanges_download_is_csv_for_spreadsheets(
    client: TestClient, api: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    first = gave(api, sam, ana, 90, "2026-11-20", description="@SUM(A1)")

    response = client.get("/broker/exchanges.csv")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="ledger-exchanges-'
    )
    assert response.content.startswith("\ufeffdate,giver,".encode())
    rows = rows_of(response.content.decode("utf-8-sig"))
    assert rows[0] == list(export.EXCHANGE_HEADER)
    assert rows[1][:8] == [
        "2026-11-20",
        "Sam",
        "Ana",
        "befriending",
        "90",
        "1.50",
        "'@SUM(A1)",
        first,
    ]
    [exported] = events(session_factory, kind="export")
    assert exported.detail == "ledger export: exchanges"


# --- rows that do not open -------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_a_member_whose_name_does_not_open_is_left_out_with_a_notice(
    client: TestClient, api: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    member(api, "Sam")
    spoiled = member(api, "Ana")
    with session_factory() as session, session.begin():
        session.execute(
            text("UPDATE ledger_member SET alias = substring(alias from 1 for 7) WHERE id = :id"),
            {"id": spoiled},
        )

    page = client.get(MEMBERS).text

    assert [row[0] for row in table(page, "Every member")[1:]] == ["Sam"]
    assert notices(page) == [
        "1 record could not be shown because the stored data failed its integrity check. "
        "This has been recorded; tell your SPIS administrator."
    ]
    assert spoiled not in page


# --- who may see these pages ------------------------------------------------------------------


@pytest.mark.usefixtures("broker")
def test_the_broker_has_members_and_exchanges_in_the_navigation(client: TestClient) -> None:
    page = client.get(MEMBERS).text
    assert (
        '<a class="site-nav__link" href="/broker/members" aria-current="page">Members</a>' in page
    )
    assert '<a class="site-nav__link" href="/broker/exchanges">Exchanges</a>' in page


@pytest.mark.usefixtures("broker")
def test_another_time_banks_records_are_not_found(
    client: TestClient,
    api: dict[str, Any],
    session_factory: sessionmaker[Session],
) -> None:
    other = register_system(session_factory, OrgKind.TIMEBANK, name="Another Time Bank")
    other_api = {**api, "headers": bearer(api["client"], other), "timebank": other}
    theirs, friend = member(other_api, "Theirs"), member(other_api, "Friend")
    their_exchange = gave(other_api, theirs, friend, 60, "2026-11-20")
    token = csrf_token(client.get(MEMBERS).text)

    for path in (
        f"{MEMBERS}/{theirs}",
        f"{MEMBERS}/{theirs}/questionnaires/swemwbs",
        f"{MEMBERS}/no-such-member",
    ):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "Theirs" not in answer.text
        assert "<h1>Not found</h1>" in answer.text
    for path, data in (
        (f"{MEMBERS}/{theirs}/end", {"reason": "x"}),
        (f"{EXCHANGES}/{their_exchange}/reverse", {"reason": "x"}),
    ):
        answer = client.post(path, data={"csrf_token": token, **data}, follow_redirects=False)
        assert answer.status_code == 404, path
    assert exchange_count(session_factory) == 1
    with session_factory() as session:
        ended = session.scalar(
            text("SELECT count(*) FROM ledger_member WHERE ended_at IS NOT NULL")
        )
    assert ended == 0


BROKER_PAGES = [
    MEMBERS,
    f"{MEMBERS}/some-member",
    f"{MEMBERS}/some-member/questionnaires/swemwbs",
    EXCHANGES,
    "/broker/members.csv",
    "/broker/exchanges.csv",
]


@pytest.mark.parametrize("role", [Role.PRACTICE, Role.ANALYST])
def test_other_roles_do_not_find_the_ledger_pages(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    healthboard: TestSystem,
    role: Role,
) -> None:
    org = practice if role is Role.PRACTICE else healthboard
    signed_in(client, settings, session_factory, org.org_id, role)
    for path in BROKER_PAGES:
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "<h1>Not found</h1>" in answer.text
    assert events(session_factory, kind="export") == []


@pytest.mark.usefixtures("broker")
def test_a_form_without_its_csrf_token_changes_nothing(
    client: TestClient, api: dict[str, Any], session_factory: sessionmaker[Session]
) -> None:
    sam, ana = member(api, "Sam"), member(api, "Ana")
    mistaken = gave(api, sam, ana, 30, "2026-11-20")
    posts = [
        (MEMBERS, {"alias": "Mallory"}),
        (EXCHANGES, {"giver_id": sam, "receiver_id": ana, "minutes": "60",
                     "date": "2026-11-20", "category": "music"}),
        (f"{EXCHANGES}/{mistaken}/reverse", {"reason": "Forged"}),
        (f"{MEMBERS}/{ana}/end", {"reason": "Forged"}),
    ]  # fmt: skip

    for path, data in posts:
        answer = client.post(path, data=data, follow_redirects=False)
        assert answer.status_code == 403, path
        assert "The form expired or did not come from SPIS" in answer.text

    assert exchange_count(session_factory) == 1
    assert [row[0] for row in table(client.get(MEMBERS).text, "Every member")[1:]] == ["Sam", "Ana"]
    assert "Ended" not in client.get(MEMBERS).text
