"""TransitMiddleware as plain ASGI around a tiny app: what the app sees, what leaves, and what is
never let through. Built with explicit dependencies, as outside a SPIS app."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwe
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive, Scope, Send

from referral_service.auth import access
from referral_service.auth.jwks import JwksCache
from referral_service.config import Settings
from referral_service.keys.jose import KeyStore
from referral_service.transit.middleware import TransitMiddleware, accepts_jose
from tests.transit.conftest import JoseSystem

JOSE = "application/jose"
seen: list[dict[str, str]] = []


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the body it received, as the type it was told; records the headers."""
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    seen.append(headers)
    message = await receive()
    content_type = headers.get("content-type", "text/plain").encode()
    await send(
        {"type": "http.response.start", "status": 201, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": message.get("body", b"")})


async def sends_a_file(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.pathsend", "path": "/etc/hostname"})


def wrap(
    app: Any, settings: Settings, keys: KeyStore, sessions: sessionmaker[Session]
) -> TestClient:
    middleware = TransitMiddleware(
        app, settings=settings, keys=keys, sessionmaker_getter=lambda: sessions, jwks=JwksCache()
    )
    return TestClient(middleware)  # not entered: these tiny apps have no lifespan


def auth(settings: Settings, practice: JoseSystem) -> dict[str, str]:
    system = practice.system
    issued = access.issue(
        settings,
        client_id=system.client_id,
        org_id=system.org_id,
        org_kind=system.kind,
        scope=system.scopes,
    )
    return {"Authorization": f"Bearer {issued.token}"}


def to_spis(keys: KeyStore, body: bytes, **header: Any) -> str:
    jwk = next(k for k in keys.public_jwks()["keys"] if k["alg"] == "ECDH-ES+A256KW")
    protected = {"alg": jwk["alg"], "enc": "A256GCM", "kid": jwk["kid"], **header}
    return jwe.encrypt_compact(
        protected, body, ECKey.import_key(jwk), algorithms=[jwk["alg"], "A256GCM"]
    )


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (JOSE, True),
        ("application/fhir+json, application/jose;q=0.5", True),
        ("Application/JOSE", True),
        ("application/jose;q=0", False),
        ("application/jose; q=0.000", False),
        ("application/fhir+json", False),
        ("*/*", False),
        ("application/jose+json", False),
        (None, False),
    ],
)
def test_accept_parsing(accept: str | None, expected: bool) -> None:
    assert accepts_jose(accept) is expected


def test_the_app_sees_plaintext_and_the_client_gets_jwe(
    settings: Settings,
    transit_keys: KeyStore,
    session_factory: sessionmaker[Session],
    jose_practice: JoseSystem,
) -> None:
    seen.clear()
    body = b'{"op":"replace"}'
    headers = {**auth(settings, jose_practice), "Content-Type": JOSE, "Accept": JOSE}

    client = wrap(echo, settings, transit_keys, session_factory)
    response = client.post(
        "/api/x", content=to_spis(transit_keys, body, cty="json"), headers=headers
    )

    assert seen[0]["content-type"] == "application/json"
    assert seen[0]["content-length"] == str(len(body))
    assert seen[0]["accept"] == "application/fhir+json, application/json"
    assert response.status_code == 201
    assert response.headers["content-type"] == JOSE
    assert int(response.headers["content-length"]) == len(response.content)
    opened = jwe.decrypt_compact(
        response.text, jose_practice.enc_key, algorithms=["ECDH-ES+A256KW", "A256GCM"]
    )
    assert opened.plaintext == body
    assert opened.protected["cty"] == "application/json"


@pytest.mark.parametrize("path", ["/auth/token", "/fhirx", "/.well-known/jwks.json"])
def test_other_paths_are_untouched(
    settings: Settings, transit_keys: KeyStore, session_factory: sessionmaker[Session], path: str
) -> None:
    seen.clear()
    client = wrap(echo, settings, transit_keys, session_factory)
    response = client.post(
        path, content=b"a.b.c.d.e", headers={"Content-Type": JOSE, "Accept": JOSE}
    )

    assert response.status_code == 201
    assert response.content == b"a.b.c.d.e"
    assert seen[0]["content-type"] == JOSE


def test_a_refused_jwe_never_reaches_the_app(
    settings: Settings,
    transit_keys: KeyStore,
    session_factory: sessionmaker[Session],
    jose_practice: JoseSystem,
) -> None:
    seen.clear()
    headers = {**auth(settings, jose_practice), "Content-Type": JOSE}

    client = wrap(echo, settings, transit_keys, session_factory)
    response = client.post("/fhir/Patient", content=b"not.a.jwe.at.all", headers=headers)

    assert response.status_code == 400
    assert json.loads(response.content)["resourceType"] == "OperationOutcome"
    assert seen == []


def test_a_response_that_bypasses_the_body_is_never_sent_in_clear(
    settings: Settings,
    transit_keys: KeyStore,
    session_factory: sessionmaker[Session],
    jose_practice: JoseSystem,
) -> None:
    headers = {**auth(settings, jose_practice), "Accept": JOSE}

    client = wrap(sends_a_file, settings, transit_keys, session_factory)

    with pytest.raises(RuntimeError, match="cannot encrypt"):
        client.get("/fhir/Binary/1", headers=headers)
