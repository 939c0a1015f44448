"""The skeleton every page stands on: `/`, the static files, the base page, and errors as pages
(while /fhir and /api keep answering OperationOutcomes)."""

from __future__ import annotations

import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.errors import BusinessRuleViolation, NotFound
from referral_service.people.models import Role
from tests.fixtures.systems import TestSystem
from tests.fixtures.web import signed_in


def test_the_root_sends_people_to_sign_in_or_to_their_start_page(
    client: TestClient,
    settings: Settings,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
) -> None:
    first = client.get("/", follow_redirects=False)
    assert (first.status_code, first.headers["location"]) == (303, "/signin")
    signed_in(client, settings, session_factory, practice.org_id, Role.PRACTICE)
    assert client.get("/", follow_redirects=False).headers["location"] == "/practice"


def test_the_sign_in_page_is_accessible_html(client: TestClient) -> None:
    page = client.get("/signin")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    text = page.text
    assert '<html lang="en">' in text
    assert '<a class="skip-link" href="#main">' in text
    assert '<main id="main"' in text
    assert 'role="status"' in text
    assert '<label class="field__label" for="email">Email address</label>' in text
    assert '<label class="field__label" for="password">Password</label>' in text
    assert '<link rel="stylesheet" href="/static/spis.css">' in text
    assert '<script src="/static/htmx.min.js" defer></script>' in text
    assert 'name="csrf_token"' in text


def test_missing_fields_are_named_and_linked(client: TestClient) -> None:
    from tests.fixtures.web import csrf_token

    page = client.get("/signin")
    answer = client.post("/signin", data={"csrf_token": csrf_token(page.text), "email": " "})
    assert answer.status_code == 400
    assert "<title>Error: Sign in – SPIS</title>" in answer.text
    assert '<a href="#email">Enter your email address</a>' in answer.text
    assert '<a href="#password">Enter your password</a>' in answer.text
    assert 'id="email-error"' in answer.text
    assert 'aria-describedby="email-error" aria-invalid="true"' in answer.text


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/static/spis.css", "text/css"), ("/static/htmx.min.js", "text/javascript")],
)
def test_static_files_are_served_with_their_types(
    client: TestClient, path: str, media_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert len(response.content) > 1000


def test_every_page_names_its_icon_so_browsers_ask_for_no_favicon_ico(
    client: TestClient,
) -> None:
    page = client.get("/signin").text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.startswith("<svg")
    assert "<script" not in icon.text


def test_the_stylesheet_has_print_and_small_screen_rules(client: TestClient) -> None:
    css = client.get("/static/spis.css").text
    assert "@media print" in css
    assert ".site-nav" in css.split("@media print", 1)[1]
    assert ":focus-visible" in css
    assert client.get("/static/htmx.LICENSE").status_code == 200


def test_an_unknown_web_path_is_a_page_and_an_unknown_api_path_is_not(
    client: TestClient,
) -> None:
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text
    missing_static = client.get("/static/nothing.css")
    assert missing_static.status_code == 404
    assert missing_static.headers["content-type"].startswith("text/html")
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404
    assert api.json()["resourceType"] == "OperationOutcome"
    fhir = client.get("/fhir/Task")
    assert fhir.status_code == 401
    assert fhir.json()["resourceType"] == "OperationOutcome"
    assert "content-security-policy" not in fhir.headers


def test_a_web_path_with_a_wrong_method_is_a_page(client: TestClient) -> None:
    response = client.get("/signout")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("text/html")


@pytest.fixture
def failing_pages(app: FastAPI) -> FastAPI:
    """Three extra pages that fail the ways a page can."""

    def conflict() -> None:
        raise BusinessRuleViolation("This referral has already been accepted")

    def other_tenant() -> None:
        raise NotFound("Task/abc is not known")

    def crash() -> None:
        raise RuntimeError("secret detail from deep inside")

    app.add_api_route("/broker/conflict", conflict)
    app.add_api_route("/broker/other-tenant", other_tenant)
    app.add_api_route("/broker/crash", crash)
    return app


def test_a_service_refusal_shows_its_message(failing_pages: FastAPI, client: TestClient) -> None:
    page = client.get("/broker/conflict")
    assert page.status_code == 409
    assert "This referral has already been accepted" in page.text
    assert page.headers["cache-control"] == "no-store"


def test_another_organisations_record_looks_like_a_missing_page(
    failing_pages: FastAPI, client: TestClient
) -> None:
    page = client.get("/broker/other-tenant")
    assert page.status_code == 404
    assert "Task/abc" not in page.text
    assert page.text == client.get("/no-such-page").text


def test_a_crash_is_a_page_without_detail(
    failing_pages: FastAPI, client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="spis.web"):
        page = client.get("/broker/crash")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "secret detail" not in page.text
    correlation_id = page.headers["x-correlation-id"]
    assert correlation_id in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    [record] = [r for r in caplog.records if r.name == "spis.web"]
    assert record.correlation_id == correlation_id  # type: ignore[attr-defined]
    assert record.route == "/broker/crash"  # type: ignore[attr-defined]


def test_pages_are_not_in_the_api_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert paths, "the document lists the API"
    assert not [
        p
        for p in paths
        if not p.startswith(("/fhir", "/api", "/auth", "/.well-known", "/healthz", "/readyz"))
    ]
