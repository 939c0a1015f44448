"""Finding a request's route by its path's literal start, instead of trying every route in turn.

Starlette and FastAPI try each route of the app in order until one matches: a FHIR read tried
about 40 routes (the docs, the auth, AuditEvent, Measure and Subscription routers before the
generic FHIR router, whose routes FastAPI matches twice), about 75 µs of a request that costs a
few hundred in all. `RouteIndex` is placed first in the app's routes. It knows, for each route
after it, the literal start every path it matches must have (`/fhir/` for
`/fhir/{rtype}/{rid}`; nothing for a route it cannot read, which it always tries), and tries only
the routes whose start the path has, in the app's order. So it picks exactly the route the full
scan would pick: the first that matches fully, else the first that matches all but the method
(405). When none matches it answers NONE and the app's own scan goes on as before (a 404, or a
redirect of a trailing slash).

It knows each route's methods too. A route that does not take the request's method can at best
match all but the method, which counts only when no route matches fully. So it first tries the
routes that take the method, and tries the rest for a partial match only when none of those
matched fully. An included router is tried first only when one of its own routes both takes the
method and has the path's start: a FHIR read (`GET /fhir/ServiceRequest/1`) no longer goes
through the FHIR router, whose routes there are `PUT`, `PATCH` and other paths (FastAPI's matching
of an included router cost 40-90 µs a read).

A 405 it answers itself, with `Allow` listing every method some route takes at that path (HTTP
requires the header; Starlette's lists only the first route's methods, and SPIS's handler dropped
it).

Only the public route interface is used (`matches`, `handle`, `url_path_for`): an included
router still matches and handles its own routes, with its dependencies and prefix.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound, Route, compile_path
from starlette.types import Receive, Scope, Send

_CHOSEN = "spis.route_index.chosen"
_PARTIAL = "spis.route_index.partial"
_CACHED = 4096  # path heads remembered; past that the cache starts again (unknown paths are many)


Methods = frozenset[str] | None  # None: the route takes any method (a mount, a host)


class RouteIndex(BaseRoute):
    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self._routes = list(routes)
        # A path without parameters -> its routes, each with the methods it serves at that path.
        self._exact: dict[str, list[tuple[int, Methods]]] = {}
        self._prefixes: list[tuple[str, int, Methods]] = []  # `/fhir/` for `/fhir/{rtype}`
        self._always: set[int] = set()
        self._allowed: list[tuple[re.Pattern[str], frozenset[str]]] = []  # for 405's `Allow`
        for position, route in enumerate(self._routes):
            paths = _paths(route)
            if paths is None:
                self._always.add(position)
                continue
            for path, methods in paths:
                if methods is not None:
                    self._allowed.append((compile_path(path)[0], methods))
                literal = path.split("{", 1)[0]
                if literal == path:
                    self._exact.setdefault(path, []).append((position, methods))
                elif literal.endswith("/"):
                    self._prefixes.append((literal, position, methods))
                else:  # a parameter inside a segment (`/members.{format}`): not worth indexing
                    self._always.add(position)
        # A path matching a prefix with n slashes has that prefix within its first n slashes:
        # the routes a path may match depend only on its head up to the deepest prefix's slashes.
        self._depth = max((prefix.count("/") for prefix, _, _ in self._prefixes), default=1)
        self._cache: dict[tuple[str, str | None, str], tuple[list[BaseRoute], ...]] = {}

    def _tried(self, scope: Scope) -> tuple[list[BaseRoute], ...]:
        """(the routes that may match the path and take the method, every route that may match
        the path), each in the app's order."""
        if scope.get("root_path"):  # a path under a prefix: leave it to the full scan
            return [], []
        path: str = scope["path"]
        method: str = scope.get("method", "")
        key = (_head(path, self._depth), path if path in self._exact else None, method)
        found = self._cache.get(key)
        if found is None:
            head, exact, _ = key
            entries = list(self._exact.get(exact, ())) if exact is not None else []
            entries += [(at, m) for prefix, at, m in self._prefixes if head.startswith(prefix)]
            anyhow = {at for at, _ in entries} | self._always
            taking = {at for at, m in entries if m is None or method in m} | self._always
            found = tuple([self._routes[at] for at in sorted(ats)] for ats in (taking, anyhow))
            if len(self._cache) >= _CACHED:
                self._cache.clear()
            self._cache[key] = found
        return found

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        taking, anyhow = self._tried(scope)
        for route in taking:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                return Match.FULL, {**child_scope, _CHOSEN: route}
        for route in anyhow:  # none matched fully: the first that matches all but the method
            match, child_scope = route.matches(scope)
            if match is Match.PARTIAL:
                return Match.PARTIAL, {**child_scope, _CHOSEN: route, _PARTIAL: True}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route: BaseRoute = scope.pop(_CHOSEN)
        if scope.pop(_PARTIAL, False):  # the route would answer 405 itself, naming only its own
            raise HTTPException(405, headers={"Allow": ", ".join(self.allowed(scope["path"]))})
        await route.handle(scope, receive, send)

    def allowed(self, path: str) -> list[str]:
        """Every method some route takes at `path`, sorted."""
        return sorted({m for pattern, ms in self._allowed if pattern.match(path) for m in ms})

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)  # the routes themselves follow in the app's list


def _head(path: str, depth: int) -> str:
    """`path` up to and including its `depth`-th slash (all of it when it has fewer)."""
    end = 0
    for _ in range(depth):
        end = path.find("/", end) + 1
        if end == 0:
            return path
    return path[:end]


def _paths(route: BaseRoute) -> list[tuple[str, Methods]] | None:
    """The path formats of everything `route` serves, each with the methods served there, or
    None when it cannot tell (a mount, a host, anything but plain routes): such a route is always
    tried."""
    if isinstance(route, Route):
        return [(route.path, _methods(route))]
    contexts = getattr(route, "effective_route_contexts", None)  # an included FastAPI router
    if contexts is None:
        return None
    paths = []
    for context in contexts():
        if context.starlette_route is None and isinstance(context.original_route, Route):
            # a FastAPI route, the router's prefix applied
            paths.append((context.path_format, _methods(context.original_route)))
        elif type(context.starlette_route) is Route:  # a plain route: matched as it is
            paths.append((context.starlette_route.path, _methods(context.starlette_route)))
        else:
            return None
    return paths


def _methods(route: Route) -> Methods:
    """What `route.matches` takes fully; None (any method) when it does not check."""
    return None if route.methods is None else frozenset(route.methods)


def index_routes(app: FastAPI) -> None:
    """Put a `RouteIndex` of the app's routes first. Call it once every route is added: a route
    added later is still found, by the scan after the index, but only where the index found none."""
    routes = app.router.routes
    if routes and isinstance(routes[0], RouteIndex):
        routes.pop(0)
    routes.insert(0, RouteIndex(list(routes)))
