"""Signing in to the web workspace, as a person does it: the set-up link, a password, the
authenticator app's QR code, a code; later the password and a code again; signing out."""

from __future__ import annotations

import base64
import re

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.people import service as people
from referral_service.people.models import Person, Role, WebSession
from referral_service.web.signin import qr_data_uri
from tests.fixtures.systems import TestSystem
from tests.fixtures.web import (
    PASSWORD,
    add_person,
    confirm_enrolment,
    csrf_token,
    plant_session_cookie,
    session_cookie,
    set_up,
    signed_in,
)

_QR = re.compile(r'<img class="qr-code" src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')


def test_set_up_link_password_qr_code_and_code_lead_to_the_start_page(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    person, setup_path = add_person(settings, session_factory, timebank.org_id, Role.BROKER)
    page = client.get(setup_path)
    assert page.status_code == 200
    assert person.email in page.text
    assert '<label class="field__label" for="password">' in page.text

    chosen = client.post(
        setup_path,
        data={
            "csrf_token": csrf_token(page.text),
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
        follow_redirects=False,
    )
    assert (chosen.status_code, chosen.headers["location"]) == (303, "/signin/second-factor/setup")

    enrol = client.get("/signin/second-factor/setup")
    assert enrol.status_code == 200
    qr = _QR.search(enrol.text)
    assert qr, "the QR code is an SVG data URI"
    svg = base64.b64decode(qr.group(1)).decode()
    assert svg.startswith("<svg")
    assert "<path" in svg
    with session_factory() as session:  # it encodes the otpauth URI of the pending secret
        row = session.scalars(select(Person)).one()
        secret, uri = people.totp_provisioning(session, row)
    assert uri.startswith("otpauth://totp/SPIS:")
    assert f"secret={secret}" in uri
    assert enrol.text.count(qr_data_uri(uri)) == 1
    # Set-up pages show no organisation data: the person has not finished signing in.
    assert "Rushey Green Time Bank" not in enrol.text

    done = confirm_enrolment(client, person, enrol.text)
    assert (done.status_code, done.headers["location"]) == (303, "/broker")
    start = client.get("/broker")
    assert start.status_code == 200
    assert "<h1>Referrals</h1>" in start.text  # the broker's start page is the inbox
    assert '<span class="site-header__org">Rushey Green Time Bank</span>' in start.text
    assert 'action="/signout"' in start.text

    # The link worked once.
    again = client.get(setup_path)
    assert again.status_code == 410
    assert "spis user link" in again.text


def test_signing_in_later_takes_the_password_and_a_code(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
) -> None:
    person = signed_in(client, settings, session_factory, practice.org_id, Role.PRACTICE)
    client.cookies.clear()
    assert client.get("/practice", follow_redirects=False).headers["location"] == (
        "/signin?next=/practice"
    )

    page = client.get("/signin")
    first = client.post(
        "/signin",
        data={
            "csrf_token": csrf_token(page.text),
            "email": person.email.upper(),
            "password": PASSWORD,
        },
        follow_redirects=False,
    )
    assert (first.status_code, first.headers["location"]) == (303, "/signin/second-factor")
    # Password alone opens nothing.
    assert client.get("/practice", follow_redirects=False).headers["location"] == (
        "/signin/second-factor?next=/practice"
    )
    step = client.get("/signin/second-factor")
    assert 'autocomplete="one-time-code"' in step.text
    done = client.post(
        "/signin/second-factor",
        data={"csrf_token": csrf_token(step.text), "code": person.code(1)},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/practice")
    assert "Rushey Green Group Practice" in client.get("/practice").text


def test_a_wrong_password_is_refused_with_the_generic_message(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
) -> None:
    person = signed_in(client, settings, session_factory, practice.org_id, Role.PRACTICE)
    client.cookies.clear()
    for email in (person.email, "nobody@example.org"):
        page = client.get("/signin")
        refused = client.post(
            "/signin",
            data={"csrf_token": csrf_token(page.text), "email": email, "password": "not it at all"},
            follow_redirects=False,
        )
        assert refused.status_code == 401
        assert "The email address or password is not right." in refused.text
        assert session_cookie(client) is None
    with session_factory() as session:  # the refusal was committed: the attempt counts
        row = session.scalars(select(Person)).one()
        assert row.failed_sign_ins == 1


def test_a_wrong_code_is_refused_and_the_step_stays(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
) -> None:
    person = signed_in(client, settings, session_factory, practice.org_id, Role.PRACTICE)
    client.cookies.clear()
    page = client.get("/signin")
    client.post(
        "/signin",
        data={"csrf_token": csrf_token(page.text), "email": person.email, "password": PASSWORD},
    )
    step = client.get("/signin/second-factor")
    wrong = "000000" if person.code(1) != "000000" else "111111"
    refused = client.post(
        "/signin/second-factor",
        data={"csrf_token": csrf_token(step.text), "code": wrong},
        follow_redirects=False,
    )
    assert refused.status_code == 401
    assert 'aria-describedby="code-hint code-error"' in refused.text
    assert '<a href="#code">' in refused.text  # the summary links to the field
    assert client.get("/practice", follow_redirects=False).status_code == 303


def test_set_up_refuses_different_or_weak_passwords_and_keeps_the_link(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    person, setup_path = add_person(settings, session_factory, timebank.org_id, Role.BROKER)
    page = client.get(setup_path)
    token = csrf_token(page.text)
    different = client.post(
        setup_path,
        data={"csrf_token": token, "password": PASSWORD, "password_again": PASSWORD + "!"},
    )
    assert different.status_code == 400
    assert "The two passwords are not the same" in different.text
    assert 'aria-describedby="password_again-error"' in different.text
    weak = client.post(
        setup_path, data={"csrf_token": token, "password": "short", "password_again": "short"}
    )
    assert weak.status_code == 422
    assert "at least 12 characters" in weak.text
    assert client.get(setup_path).status_code == 200  # still usable
    done = set_up(client, person, setup_path)
    assert done.headers["location"] == "/broker"


def test_an_analyst_page_says_where_board_figures_come_from(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    healthboard: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, healthboard.org_id, Role.ANALYST)
    page = client.get("/analyst")
    assert page.status_code == 200
    assert "South East London ICB" in page.text
    assert "outcomes reports" in page.text


def test_signing_out_ends_the_session(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
) -> None:
    signed_in(client, settings, session_factory, timebank.org_id, Role.BROKER)
    cookie = session_cookie(client)
    page = client.get("/broker")
    out = client.post(
        "/signout", data={"csrf_token": csrf_token(page.text)}, follow_redirects=False
    )
    assert (out.status_code, out.headers["location"]) == (303, "/signin?notice=signed-out")
    assert session_cookie(client) is None
    notice = client.get(out.headers["location"])
    assert '<p class="notice">You have signed out.</p>' in notice.text
    # The old cookie, sent again, opens nothing.
    plant_session_cookie(client, cookie or "")
    assert client.get("/broker", follow_redirects=False).headers["location"] == (
        "/signin?next=/broker"
    )
    with session_factory() as session:
        open_sessions = select(func.count()).where(WebSession.ended_at.is_(None))
        assert session.scalar(open_sessions) == 0
