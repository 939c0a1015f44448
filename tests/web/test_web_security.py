"""The web workspace's defences: CSRF on every form, a new session token at each sign-in step,
lock-out, set-up links that end, pages of another role that do not exist, `next` that stays on
SPIS, the cookie's flags and the headers on every page."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.responses import Response

from referral_service.config import Settings
from referral_service.kit.clock import utcnow
from referral_service.logs import PathOnly
from referral_service.people.models import Person, Role, SetupLink, WebSession
from referral_service.web.security import clear_session_cookie, safe_next, set_session_cookie
from tests.conftest import TEST_KEK
from tests.fixtures.systems import TestSystem
from tests.fixtures.web import (
    PASSWORD,
    WebPerson,
    add_person,
    csrf_token,
    plant_session_cookie,
    session_cookie,
    set_up,
    sign_in,
    signed_in,
)

CSRF_MESSAGE = "The form expired or did not come from SPIS; go back and try again."


def _open_sessions(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return (
            session.scalar(
                select(func.count()).select_from(WebSession).where(WebSession.ended_at.is_(None))
            )
            or 0
        )


def _person(session_factory: sessionmaker[Session]) -> Person:
    with session_factory() as session:
        return session.scalars(select(Person)).one()


@pytest.fixture
def broker(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> WebPerson:
    """A broker who has set up their account, then closed the browser (no cookie)."""
    person = signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)
    client.cookies.clear()
    return person


# --- CSRF ------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "", "forged-token"])
def test_sign_in_without_the_forms_token_is_refused_and_changes_nothing(
    client: TestClient,
    session_factory: sessionmaker[Session],
    broker: WebPerson,
    token: str | None,
) -> None:
    before, sessions_before = _person(session_factory), _open_sessions(session_factory)
    client.get("/signin")  # the pre-session cookie is set; the form's token is what is missing
    data = {"email": broker.email, "password": PASSWORD}
    if token is not None:
        data["csrf_token"] = token
    refused = client.post("/signin", data=data, follow_redirects=False)
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert CSRF_MESSAGE in refused.text
    assert session_cookie(client) is None
    assert _open_sessions(session_factory) == sessions_before
    after = _person(session_factory)
    assert (after.last_sign_in_at, after.failed_sign_ins) == (
        before.last_sign_in_at,
        before.failed_sign_ins,
    )


def test_a_pre_session_token_is_bound_to_its_cookie(
    client: TestClient, app: object, broker: WebPerson
) -> None:
    token = csrf_token(client.get("/signin").text)
    with TestClient(app) as other_browser:  # type: ignore[arg-type]
        other_browser.get("/signin")
        refused = other_browser.post(
            "/signin",
            data={"csrf_token": token, "email": broker.email, "password": PASSWORD},
        )
    assert refused.status_code == 403


def test_set_up_without_the_token_is_refused_and_the_link_still_works(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    person, setup_path = add_person(settings, session_factory, timebank.org_id, Role.BROKER)
    client.get(setup_path)
    refused = client.post(setup_path, data={"password": PASSWORD, "password_again": PASSWORD})
    assert refused.status_code == 403
    assert CSRF_MESSAGE in refused.text
    assert _person(session_factory).password_hash is None
    assert set_up(client, person, setup_path).headers["location"] == "/broker"


@pytest.mark.parametrize("token", [None, "wrong", "the sign-in form's"])
def test_signed_in_forms_need_the_sessions_token(
    client: TestClient,
    session_factory: sessionmaker[Session],
    broker: WebPerson,
    token: str | None,
) -> None:
    presession = csrf_token(client.get("/signin").text)
    sign_in(client, broker)
    sessions_before = _open_sessions(session_factory)
    data = {} if token is None else {"csrf_token": presession if "sign-in" in token else token}
    refused = client.post("/signout", data=data, follow_redirects=False)
    assert refused.status_code == 403
    assert CSRF_MESSAGE in refused.text
    assert client.get("/broker").status_code == 200  # still signed in
    assert _open_sessions(session_factory) == sessions_before


def test_a_form_posted_after_the_session_ended_asks_to_sign_in_again(
    client: TestClient, broker: WebPerson
) -> None:
    plant_session_cookie(client, "no-such-session")
    response = client.post("/signout", data={"csrf_token": "x"}, follow_redirects=False)
    assert (response.status_code, response.headers["location"]) == (
        303,
        "/signin?notice=session-ended",
    )
    assert session_cookie(client) is None


# --- session fixation ------------------------------------------------------------------------


def test_each_sign_in_step_issues_a_new_token_and_the_old_ones_die(
    client: TestClient, session_factory: sessionmaker[Session], broker: WebPerson
) -> None:
    sessions_before = _open_sessions(session_factory)
    plant_session_cookie(client, "planted-by-someone-else")
    page = client.get("/signin")
    first = client.post(
        "/signin",
        data={"csrf_token": csrf_token(page.text), "email": broker.email, "password": PASSWORD},
        follow_redirects=False,
    )
    after_password = session_cookie(client)
    assert first.status_code == 303
    assert after_password not in (None, "planted-by-someone-else")

    step = client.get("/signin/second-factor")
    client.post(
        "/signin/second-factor",
        data={"csrf_token": csrf_token(step.text), "code": broker.code(1)},
        follow_redirects=False,
    )
    after_code = session_cookie(client)
    assert after_code not in (None, after_password)
    assert client.get("/broker").status_code == 200

    # The token from before the second factor opens nothing now, not even the code step.
    plant_session_cookie(client, after_password or "")
    assert client.get("/broker", follow_redirects=False).headers["location"] == (
        "/signin?next=/broker"
    )
    assert client.get("/signin/second-factor", follow_redirects=False).headers["location"] == (
        "/signin"
    )
    assert _open_sessions(session_factory) == sessions_before + 1


def test_signing_in_again_ends_the_browsers_earlier_session(
    client: TestClient, session_factory: sessionmaker[Session], broker: WebPerson
) -> None:
    form = client.get("/signin")  # left open in another tab
    sign_in(client, broker)
    earlier = session_cookie(client)
    sessions_before = _open_sessions(session_factory)
    again = client.post(
        "/signin",
        data={"csrf_token": csrf_token(form.text), "email": broker.email, "password": PASSWORD},
        follow_redirects=False,
    )
    assert again.headers["location"] == "/signin/second-factor"
    assert session_cookie(client) not in (None, earlier)
    plant_session_cookie(client, earlier or "")
    assert client.get("/broker", follow_redirects=False).status_code == 303
    assert _open_sessions(session_factory) == sessions_before  # one ended, one started


def test_setting_up_where_someone_else_is_signed_in_ends_their_session(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER, "kim@example.org")
    kims = session_cookie(client)
    person, setup_path = add_person(settings, session_factory, timebank.org_id, Role.BROKER)
    assert set_up(client, person, setup_path).headers["location"] == "/broker"
    assert session_cookie(client) not in (None, kims)
    plant_session_cookie(client, kims or "")
    assert client.get("/broker", follow_redirects=False).status_code == 303


# --- lock-out and set-up links ---------------------------------------------------------------


def test_too_many_wrong_passwords_lock_the_account(
    client: TestClient, settings: Settings, broker: WebPerson
) -> None:
    statuses = []
    for _ in range(settings.sign_in_lockout_threshold + 1):
        page = client.get("/signin")
        answer = client.post(
            "/signin",
            data={"csrf_token": csrf_token(page.text), "email": broker.email, "password": "nope"},
        )
        statuses.append(answer.status_code)
    assert statuses[0] == 401
    assert statuses[-1] == 429
    assert "Too many attempts: try again in 1 minute." in answer.text
    assert int(answer.headers["Retry-After"]) <= settings.sign_in_lockout_base_s
    # The right password does not get in while locked.
    page = client.get("/signin")
    locked = client.post(
        "/signin",
        data={"csrf_token": csrf_token(page.text), "email": broker.email, "password": PASSWORD},
    )
    assert locked.status_code == 429
    assert session_cookie(client) is None


def test_an_expired_set_up_link_says_to_ask_for_a_new_one(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    _, setup_path = add_person(settings, session_factory, timebank.org_id, Role.BROKER)
    with session_factory() as session, session.begin():
        session.execute(update(SetupLink).values(expires_at=utcnow() - timedelta(minutes=1)))
    page = client.get(setup_path)
    assert page.status_code == 410
    assert "has expired or has already been used" in page.text
    assert "spis user link" in page.text
    unknown = client.get("/setup/no-such-link")
    assert unknown.status_code == 404
    assert "spis user link" in unknown.text


# --- what a role may open --------------------------------------------------------------------


def test_another_roles_page_is_the_same_404_as_a_missing_one(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)
    other_role = client.get("/practice")
    missing = client.get("/no-such-page")
    assert other_role.status_code == missing.status_code == 404
    assert other_role.headers["content-type"].startswith("text/html")
    assert other_role.text == missing.text
    assert "Not found" in other_role.text
    assert "Rushey Green" not in other_role.text


# --- next ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example",
        "javascript:alert(1)",
        "/broker\r\nSet-Cookie: x=1",
    ],
)
def test_next_never_leaves_spis(client: TestClient, broker: WebPerson, next_path: str) -> None:
    assert safe_next(next_path) is None
    done = sign_in(client, broker, next_path=next_path)
    assert done.headers["location"] == "/broker"
    page = client.get("/signin", params={"next": next_path})
    assert "evil" not in page.text


def test_a_local_next_is_honoured(client: TestClient, broker: WebPerson) -> None:
    assert client.get("/broker?tab=1", follow_redirects=False).headers["location"] == (
        "/signin?next=/broker%3Ftab%3D1"
    )
    done = sign_in(client, broker, next_path="/broker?tab=1")
    assert done.headers["location"] == "/broker?tab=1"


# --- the cookie and the headers --------------------------------------------------------------


def test_the_session_cookie_is_http_only_and_same_site(
    client: TestClient, settings: Settings, broker: WebPerson
) -> None:
    page = client.get("/signin")
    response = client.post(
        "/signin",
        data={"csrf_token": csrf_token(page.text), "email": broker.email, "password": PASSWORD},
        follow_redirects=False,
    )
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("spis_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Max-Age" not in cookie
    assert "expires" not in cookie.lower()
    assert "Secure" not in cookie  # http in test: a Secure cookie would never come back


def test_over_https_the_cookie_is_secure_and_host_only(settings: Settings) -> None:
    https = settings.model_copy(update={"public_base_url": "https://spis.example"})
    response = Response()
    set_session_cookie(response, https, "token")
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-spis_session=token")
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "Path=/" in cookie
    assert "Domain" not in cookie
    cleared = Response()
    clear_session_cookie(cleared, https)
    assert cleared.headers["set-cookie"].startswith('__Host-spis_session=""')
    production = Settings(
        environment="production",
        database_url=settings.database_url,
        token_secret=SecretStr("t" * 40),
        blind_index_key=SecretStr("b" * 40),
        kek=SecretStr(TEST_KEK),
    )
    response = Response()
    set_session_cookie(response, production, "token")
    assert response.headers["set-cookie"].startswith("__Host-spis_session=token")


@pytest.mark.parametrize("path", ["/signin", "/no-such-page", "/", "/static/spis.css"])
def test_every_web_answer_carries_the_security_headers(client: TestClient, path: str) -> None:
    response = client.get(path, follow_redirects=False)
    assert response.headers["content-security-policy"] == (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    if not path.startswith("/static/"):
        assert response.headers["cache-control"] == "no-store"


def test_signed_in_pages_are_not_stored(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)
    page = client.get("/broker")
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text
    assert "style=" not in page.text


def test_the_access_log_never_shows_a_set_up_links_token() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/setup/s3cr3t-token?x=1", "1.1", 200),
        None,
    )
    assert PathOnly().filter(record)
    assert "s3cr3t" not in record.getMessage()
    assert '"GET /setup/… HTTP/1.1" 200' in record.getMessage()


def test_an_htmx_request_may_send_the_token_as_a_header(
    client: TestClient, session_factory: sessionmaker[Session], broker: WebPerson
) -> None:
    sign_in(client, broker)
    token = csrf_token(client.get("/broker").text)
    out = client.post("/signout", headers={"X-CSRF-Token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert session_cookie(client) is None
