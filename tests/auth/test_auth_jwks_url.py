"""Clients registered with a JWKS URL, served by a real local HTTP server: caching by
Cache-Control, key rotation (security.md §8 item 9), failing closed, and `jku` (item 6)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth.jwks import JwksCache, JwksUnavailable, cache_max_age, http_fetcher
from referral_service.organisations.models import OrgKind
from tests.fixtures.systems import TestSystem, public_jwks, register_system, token_response

TOKEN_URL = "http://testserver/auth/token"


@dataclass
class JwksServer:
    """What the client's JWKS endpoint serves, and how often it was asked."""

    url: str = ""
    document: Any = field(default_factory=lambda: {"keys": []})
    cache_control: str | None = "max-age=300"
    status: int = 200
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, *systems: TestSystem, cache_control: str | None = "max-age=300") -> None:
        self.document = {"keys": [key for s in systems for key in s.public_jwks()["keys"]]}
        self.cache_control = cache_control


def _handler(state: JwksServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.requests += 1
            body = json.dumps(state.document).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            if state.cache_control is not None:
                self.send_header("Cache-Control", state.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(app: FastAPI) -> FakeClock:
    """Our JWKS cache on the app, on a clock the test moves (no sleeping)."""
    fake = FakeClock()
    app.state.jwks_cache = JwksCache(clock=fake, min_refetch_interval_s=10)
    return fake


@pytest.fixture
def broker(session_factory: sessionmaker[Session], jwks_server: JwksServer) -> TestSystem:
    system = register_system(session_factory, OrgKind.TIMEBANK, jwks_url=jwks_server.url)
    jwks_server.serve(system)
    return system


def rotated(system: TestSystem) -> TestSystem:
    """The same client with a new key and kid, as after a key rotation."""
    key = ECKey.generate_key("P-384")
    return TestSystem(
        system.org_id,
        system.client_id,
        system.kind,
        system.ods_code,
        key,
        "rotated",
        "ES384",
        system.scopes,
    )


def status(client: TestClient, system: TestSystem) -> int:
    return token_response(client, system, "system/Task.rs").status_code


def test_fetched_once_then_cached(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    assert status(client, broker) == 200
    assert status(client, broker) == 200
    assert jwks_server.requests == 1


def test_refetched_after_max_age(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    jwks_server.serve(broker, cache_control="public, max-age=60")
    assert status(client, broker) == 200
    clock.advance(59)
    assert status(client, broker) == 200
    assert jwks_server.requests == 1
    clock.advance(2)
    assert status(client, broker) == 200
    assert jwks_server.requests == 2


def test_no_store_is_never_cached(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    jwks_server.serve(broker, cache_control="no-store")
    for _ in range(3):
        assert status(client, broker) == 200
    assert jwks_server.requests == 3


def test_key_rotation_causes_no_failed_request(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    assert status(client, broker) == 200
    new = rotated(broker)

    # The client publishes the new key beside the old one and starts using it at once: the
    # unknown kid makes us refetch once, although the cached copy has not expired.
    jwks_server.serve(broker, new)
    clock.advance(11)
    assert status(client, new) == 200
    assert jwks_server.requests == 2
    assert status(client, broker) == 200  # the old key still works while it is published

    # The old key is withdrawn; once our copy expires, it stops working and the new one goes on.
    jwks_server.serve(new)
    clock.advance(301)
    assert status(client, new) == 200
    assert jwks_server.requests == 3
    assert status(client, broker) == 401


def test_unknown_kid_refetches_once_and_is_rate_limited(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    assert status(client, broker) == 200
    stranger = rotated(broker)  # signs with a kid the server does not publish
    clock.advance(11)

    response = token_response(client, stranger, "system/Task.rs")
    assert response.status_code == 401
    assert jwks_server.requests == 2  # exactly one refetch

    for _ in range(5):  # more invented kids within the interval cause no more fetches
        assert status(client, stranger) == 401
    assert jwks_server.requests == 2
    assert status(client, broker) == 200


@pytest.mark.parametrize("problem", ["http-500", "private-key", "not-a-jwks"])
def test_fails_closed(
    client: TestClient,
    clock: FakeClock,
    jwks_server: JwksServer,
    broker: TestSystem,
    problem: str,
) -> None:
    if problem == "http-500":
        jwks_server.status = 500
    elif problem == "private-key":
        jwks_server.document = {"keys": [{**broker.key.as_dict(private=True), "kid": broker.kid}]}
    else:
        jwks_server.document = {"hello": "world"}
    response = token_response(client, broker, "system/Task.rs")
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "The client's JWKS could not be retrieved",
    }


def test_stale_copy_not_used_when_server_is_gone(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    assert status(client, broker) == 200
    jwks_server.status = 503
    clock.advance(301)
    assert status(client, broker) == 401
    jwks_server.status = 200
    assert status(client, broker) == 200


def test_unreachable_url_fails_closed() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(JwksUnavailable):
        JwksCache().keys(f"http://127.0.0.1:{port}/jwks.json")


# -- jku (security.md §8 item 6) -----------------------------------------------------------------


def test_jku_not_registered_refused_without_fetching(
    client: TestClient, practice: TestSystem, jwks_server: JwksServer
) -> None:
    """`practice` registered a JWKS, not a URL: a jku pointing anywhere is refused unfetched."""
    jwks_server.serve(practice)
    token = practice.sign(practice.claims(TOKEN_URL), jku=jwks_server.url)
    response = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Task.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        },
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert jwks_server.requests == 0


def test_jku_must_equal_the_registered_url(
    client: TestClient, clock: FakeClock, jwks_server: JwksServer, broker: TestSystem
) -> None:
    def post(jku: str) -> int:
        token = broker.sign(broker.claims(TOKEN_URL), jku=jku)
        return client.post(
            "/auth/token",
            data={
                "grant_type": "client_credentials",
                "scope": "system/Task.rs",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": token,
            },
        ).status_code

    assert post(jwks_server.url + "?other") == 401
    assert jwks_server.requests == 0
    assert post(jwks_server.url) == 200
    assert jwks_server.requests == 1


# -- Cache-Control parsing and the fetcher itself --------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, 300),
        ("", 300),
        ("public", 300),
        ("max-age=60", 60),
        ("public, max-age=3600, must-revalidate", 3600),
        ('max-age="120"', 120),
        ("no-store", 0),
        ("max-age=600, no-cache", 0),
        ("max-age=abc", 0),
        ("max-age=-5", 0),
        ("max-age=99999999", 86_400),
    ],
)
def test_cache_max_age(header: str | None, seconds: int) -> None:
    assert cache_max_age(header) == seconds


def test_http_fetcher_reads_document_and_max_age(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": []}
    jwks_server.cache_control = "max-age=42"
    fetched = http_fetcher(jwks_server.url)
    assert fetched.document == {"keys": []}
    assert fetched.max_age_s == 42


def test_http_fetcher_refuses_huge_documents(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [], "padding": "x" * 70_000}
    with pytest.raises(JwksUnavailable, match="too large"):
        http_fetcher(jwks_server.url)


def test_cache_keeps_validated_public_keys(jwks_server: JwksServer) -> None:
    jwks_server.document = public_jwks(ECKey.generate_key("P-384"), "k1", "ES384")
    cache = JwksCache(min_refetch_interval_s=0)
    (key,) = cache.keys(jwks_server.url)
    assert key["kid"] == "k1"
    assert "d" not in key
    assert cache.keys(jwks_server.url) == [key]
    assert jwks_server.requests == 1
    cache.keys(jwks_server.url, refresh=True)
    assert jwks_server.requests == 2
