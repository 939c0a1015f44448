"""The route index picks exactly the route the app's full scan would (kit/route_index.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from starlette.routing import BaseRoute, Match

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.kit.route_index import RouteIndex, index_routes
from referral_service.migrate import upgrade
from tests.conftest import TEST_KEK

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    var = tmp_path_factory.mktemp("var")
    settings = Settings(
        environment="test",
        database_url=f"sqlite:///{var}/spis.db",
        var_dir=Path(var),
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
    )
    upgrade(settings.database_url)
    return create_app(settings)


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}


def _full_scan(routes: list[BaseRoute], scope: dict[str, Any]) -> tuple[Match, BaseRoute | None]:
    """What Starlette's router does: the first full match, else the first partial one."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return match, route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return (Match.PARTIAL, partial) if partial is not None else (Match.NONE, None)


def _sample_paths(app: FastAPI) -> list[str]:
    """Every route's path with its parameters filled (several ways, so that a literal segment such
    as `metadata` or `_search` also lands where a parameter would), and some that match nothing."""
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    formats: set[str] = set()
    for route in index._routes:
        contexts = getattr(route, "effective_route_contexts", None)
        formats.update(
            [c.path_format for c in contexts()] if contexts else [getattr(route, "path", "/")]
        )
    fills = ["x1", "Task", "metadata", "_search", "_history", "AuditEvent", "$status", "1"]
    paths = {re.sub(r"\{[^}]+\}", fill, fmt) for fmt in formats for fill in fills}
    paths |= {p + "/" for p in paths} | {
        "/",
        "/nothing",
        "/fhir/",
        "/fhir/Task/1/2/3/4",
        "/static/x",
    }
    return sorted(paths)


def test_the_index_comes_first_and_knows_every_other_route(app: FastAPI) -> None:
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    assert index._routes == app.router.routes[1:]


def test_it_picks_what_the_full_scan_picks_for_every_route(app: FastAPI) -> None:
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    scanned = app.router.routes[1:]
    checked = 0
    for path in _sample_paths(app):
        for method in METHODS:
            scope = _scope(method, path)
            expected, route = _full_scan(scanned, scope)
            match, child = index.matches(scope)
            assert match == expected, (method, path)
            if route is not None:
                assert child["spis.route_index.chosen"] is route, (method, path)
            checked += 1
    assert checked > 500


def test_it_tries_only_the_routes_whose_start_the_path_has(app: FastAPI) -> None:
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    _, tried = index._tried(_scope("GET", "/fhir/ServiceRequest/1"))
    assert len(tried) < len(index._routes) / 2
    assert all(
        getattr(route, "path", "").startswith("/fhir/") or hasattr(route, "original_router")
        for route in tried
        if route is not tried[-1]
    )


def test_a_read_tries_first_only_routes_that_take_its_method(app: FastAPI) -> None:
    """The FHIR router's routes that a read's path could match are PUT and PATCH: it can only
    match all but the method, so it is tried only if nothing else matches fully."""
    from referral_service.fhir.endpoints import router as fhir_router

    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    scope = _scope("GET", "/fhir/ServiceRequest/1")
    taking, anyhow = index._tried(scope)
    fhir = [r for r in anyhow if getattr(r, "original_router", None) is fhir_router]
    assert len(fhir) == 1  # tried for a partial match, after the rest
    assert fhir[0] not in taking
    match, child = index.matches(scope)
    assert match is Match.FULL
    assert child["spis.route_index.chosen"] in taking
    assert (
        index.matches(_scope("PUT", "/fhir/ServiceRequest/1"))[1]["spis.route_index.chosen"]
        is fhir[0]
    )


def test_a_path_under_a_root_path_is_left_to_the_full_scan(app: FastAPI) -> None:
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    assert index.matches({**_scope("GET", "/spis/healthz"), "root_path": "/spis"}) == (
        Match.NONE,
        {},
    )


def test_answers_through_the_app_are_unchanged(app: FastAPI) -> None:
    with TestClient(app) as client:
        ok = client.get("/healthz")
        assert (ok.status_code, ok.json()) == (200, {"status": "ok"})
        wrong_method = client.delete("/healthz")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["resourceType"] == "OperationOutcome"
        assert wrong_method.headers["Allow"] == "GET"
        # Every route's methods at that path: the plain read's, then the FHIR router's.
        fhir_wrong = client.delete("/fhir/ServiceRequest/1")
        assert (fhir_wrong.status_code, fhir_wrong.headers["Allow"]) == (405, "GET, PATCH, PUT")
        assert fhir_wrong.json()["issue"][0]["code"] == "not-supported"
        assert client.request("HEAD", "/fhir/Task").headers["Allow"] == "GET, POST"
        assert client.get("/no/such/page").status_code == 404
        unauthorised = client.get("/fhir/ServiceRequest/1")
        assert unauthorised.status_code == 401
        assert unauthorised.json()["resourceType"] == "OperationOutcome"
        assert app.url_path_for("healthz") == "/healthz"


def test_indexing_twice_keeps_one_index(app: FastAPI) -> None:
    before = list(app.router.routes)
    index_routes(app)
    assert isinstance(app.router.routes[0], RouteIndex)
    assert app.router.routes[1:] == before[1:]


def test_plain_routes_inside_a_router_and_mounts_are_indexed_soundly() -> None:
    from fastapi import APIRouter
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount

    async def plain(request: Any) -> PlainTextResponse:
        return PlainTextResponse(f"plain {request.path_params}")

    router = APIRouter(prefix="/fhir")

    @router.get("/Task/{rid}")
    async def task(rid: str) -> str:
        return f"task {rid}"

    router.add_route("/fhir/{rtype}/{rid}", plain, methods=["GET"])  # a plain route: no prefix
    app = FastAPI()
    app.include_router(router)
    app.router.routes.append(Mount("/files", routes=[]))
    index_routes(app)
    index = app.router.routes[0]
    assert isinstance(index, RouteIndex)
    assert index._prefixes == [  # the router, by both of its routes' starts and methods
        ("/fhir/Task/", 4, frozenset({"GET"})),
        ("/fhir/", 4, frozenset({"GET", "HEAD"})),  # Starlette's GET routes take HEAD too
    ]
    assert index._always == {5}  # the mount: always tried
    with TestClient(app) as client:
        assert client.get("/fhir/Task/1").json() == "task 1"
        assert client.get("/fhir/Patient/2").text == "plain {'rtype': 'Patient', 'rid': '2'}"
        assert client.post("/fhir/Patient/2").status_code == 405
        assert client.get("/files/x").status_code == 404
