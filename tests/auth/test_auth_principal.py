"""current_principal and require over HTTP, on probe routes that exist only in these tests
(security.md §8 item 8; 403 for missing scope). They sit under /api, a machine path: any other
path belongs to the web workspace, whose errors are pages, not OperationOutcomes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import OctKey
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from referral_service.app import create_app
from referral_service.auth import access
from referral_service.auth.dependencies import current_principal, require, requires
from referral_service.config import Settings
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from tests.fixtures.systems import TestSystem, bearer


def probe(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, object]:
    require(principal, "Task", "c")
    return {
        "client_id": principal.client_id,
        "org_id": principal.org_id,
        "kind": principal.org_kind,
    }


def search_probe(principal: Annotated[Principal, Depends(requires("Task", "s"))]) -> dict[str, str]:
    return {"client_id": principal.client_id}


@pytest.fixture
def probe_client(
    settings: Settings, session_factory: sessionmaker[Session]
) -> Iterator[TestClient]:
    app: FastAPI = create_app(settings)
    app.add_api_route("/api/probe", probe, methods=["POST"])
    app.add_api_route("/api/probe-search", search_probe, methods=["GET"])
    with TestClient(app) as client:
        yield client


def token_for(settings: Settings, system: TestSystem, scope: str, **kwargs: int) -> str:
    return access.issue(
        settings,
        client_id=system.client_id,
        org_id=system.org_id,
        org_kind=system.kind,
        scope=scope,
        **kwargs,
    ).token


def assert_outcome(response: object, status: int, code: str) -> str:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["resourceType"] == "OperationOutcome"
    (issue,) = body["issue"]
    assert issue["severity"] == "error"
    assert issue["code"] == code
    return str(issue["diagnostics"])


def assert_unauthenticated(response: object) -> str:
    diagnostics = assert_outcome(response, 401, "login")
    assert response.headers["www-authenticate"].startswith("Bearer")  # type: ignore[attr-defined]
    return diagnostics


def test_token_from_the_token_endpoint_identifies_the_caller(
    probe_client: TestClient, practice: TestSystem
) -> None:
    response = probe_client.post(
        "/api/probe", headers=bearer(probe_client, practice, "system/Task.c")
    )
    assert response.status_code == 200
    assert response.json() == {
        "client_id": practice.client_id,
        "org_id": practice.org_id,
        "kind": "practice",
    }


def test_requires_dependency(probe_client: TestClient, practice: TestSystem) -> None:
    headers = bearer(probe_client, practice, "system/Task.s")
    assert probe_client.get("/api/probe-search", headers=headers).status_code == 200
    headers = bearer(probe_client, practice, "system/Task.r")
    assert_outcome(probe_client.get("/api/probe-search", headers=headers), 403, "forbidden")


def test_missing_token(probe_client: TestClient) -> None:
    assert "bearer access token is required" in assert_unauthenticated(
        probe_client.post("/api/probe")
    )


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "token abc"])
def test_not_a_bearer_token(probe_client: TestClient, header: str) -> None:
    assert_unauthenticated(probe_client.post("/api/probe", headers={"Authorization": header}))


def test_expired_token(probe_client: TestClient, settings: Settings, practice: TestSystem) -> None:
    token = token_for(settings, practice, "system/Task.c", now=int(time.time()) - 301)
    response = probe_client.post("/api/probe", headers={"Authorization": f"Bearer {token}"})
    assert assert_unauthenticated(response) == "The access token has expired"


def test_token_signed_with_another_secret(
    probe_client: TestClient, settings: Settings, practice: TestSystem
) -> None:
    other = settings.model_copy(update={"token_secret": SecretStr("x" * 64)})
    token = token_for(other, practice, "system/Task.c")
    response = probe_client.post("/api/probe", headers={"Authorization": f"Bearer {token}"})
    assert assert_unauthenticated(response) == "The access token is invalid"


@pytest.mark.parametrize(
    ("alg", "typ"),
    [("HS512", "at+jwt"), ("HS256", "JWT")],  # algorithm pinned; only our token type
)
def test_token_with_our_secret_but_wrong_header(
    probe_client: TestClient, settings: Settings, practice: TestSystem, alg: str, typ: str
) -> None:
    now = int(time.time())
    claims = {
        "iss": settings.public_base_url,
        "sub": practice.client_id,
        "org": practice.org_id,
        "kind": "practice",
        "scope": "system/Task.c",
        "iat": now,
        "exp": now + 60,
        "jti": "x",
    }
    key = OctKey.import_key(settings.token_secret.get_secret_value())
    token = jwt.encode({"alg": alg, "typ": typ}, claims, key, algorithms=[alg])
    assert_unauthenticated(
        probe_client.post("/api/probe", headers={"Authorization": f"Bearer {token}"})
    )


def test_token_from_another_issuer(
    probe_client: TestClient, settings: Settings, practice: TestSystem
) -> None:
    other = settings.model_copy(update={"public_base_url": "http://elsewhere"})
    token = token_for(other, practice, "system/Task.c")
    response = probe_client.post("/api/probe", headers={"Authorization": f"Bearer {token}"})
    assert assert_unauthenticated(response) == "The access token was not issued here"


def test_client_assertion_is_not_an_access_token(
    probe_client: TestClient, practice: TestSystem
) -> None:
    assertion = practice.assertion("http://testserver/auth/token")
    assert_unauthenticated(
        probe_client.post("/api/probe", headers={"Authorization": f"Bearer {assertion}"})
    )


def test_scope_missing_is_403_outcome(
    probe_client: TestClient, practice: TestSystem, settings: Settings
) -> None:
    headers = bearer(probe_client, practice, "system/Task.rs")
    response = probe_client.post("/api/probe", headers=headers)
    diagnostics = assert_outcome(response, 403, "forbidden")
    assert diagnostics == "This token's scopes do not allow create on Task"
    assert "www-authenticate" not in response.headers


def test_principal_allows_nothing_outside_its_scopes(settings: Settings) -> None:
    token = access.issue(
        settings,
        client_id="c",
        org_id="o",
        org_kind=OrgKind.HEALTHBOARD,
        scope="system/MeasureReport.rs",
    ).token
    principal = access.verify(settings, token)
    assert principal == Principal(
        "c", "o", OrgKind.HEALTHBOARD, frozenset({"system/MeasureReport.rs"})
    )
    assert principal.allows("MeasureReport", "s")
    assert not principal.allows("MeasureReport", "c")
    assert not principal.allows("Patient", "r")


def test_a_verified_token_still_expires(settings: Settings) -> None:
    """Verification results are remembered per token; expiry is checked on every use."""
    issued = access.issue(
        settings, client_id="c", org_id="o", org_kind=OrgKind.PRACTICE, scope="system/Task.r"
    )
    exp = jwt.decode(
        issued.token, OctKey.import_key(settings.token_secret.get_secret_value())
    ).claims["exp"]
    assert access.verify(settings, issued.token).client_id == "c"
    assert access.verify(settings, issued.token, now=exp - 1).client_id == "c"
    with pytest.raises(access.InvalidAccessToken, match="expired"):
        access.verify(settings, issued.token, now=exp + 1)
    other = settings.model_copy(update={"token_secret": SecretStr("y" * 64)})
    with pytest.raises(access.InvalidAccessToken, match="invalid"):
        access.verify(other, issued.token)  # remembered per secret, not per token alone
