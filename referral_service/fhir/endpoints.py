"""The /fhir routes: thin — check scope, parse, call one service, respond with stored bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from psycopg import AsyncConnection
from sqlalchemy.orm import Session
from starlette.routing import Route

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.parse import validate_resource
from fhir_adapters.questionnaires import QUESTIONNAIRES
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.auth.dependencies import current_principal, require
from referral_service.context import Asking, Context
from referral_service.db import AsyncReads, get_session, in_unit_of_work
from referral_service.errors import Invalid, NotFound
from referral_service.fhir import bundles, transactions
from referral_service.fhir.capability import capability_statement
from referral_service.fhir.negotiation import check_accept, read_json_body, read_json_patch
from referral_service.fhir.search import count_only, history_bundle, searchset, small_searchset
from referral_service.kit.http import refuse_nul_in_url
from referral_service.organisations import service as organisations
from referral_service.principal import Principal
from referral_service.referrals import service as referrals
from referral_service.referrals.service import STORED_TYPES, Entry
from referral_service.store import patching, query, reads
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.query import ParsedSearch
from referral_service.store.service import SearchPage, Version, version_named

# Not in FastAPI's OpenAPI: the document shows one path per type, from the CapabilityStatement.
router = APIRouter(
    prefix="/fhir",
    tags=["FHIR"],
    dependencies=[Depends(check_accept), Depends(refuse_nul_in_url)],
    include_in_schema=False,
)
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
Body = Annotated[dict[str, Any], Depends(read_json_body)]
PatchBody = Annotated[list[dict[str, Any]], Depends(read_json_patch)]


async def get_context(request: Request, session: SessionDep, principal: PrincipalDep) -> Context:
    return Context(session, principal, request.app.state.settings)


ContextDep = Annotated[Context, Depends(get_context)]


# The hot paths (read, vread, history, search by GET, and `POST /fhir`) are plain Starlette
# routes: FastAPI's dependency solving and request wrapping cost about 95 µs a request, as much as
# the rest of the stack (uvicorn, the middleware, routing). They make the same checks, by the same
# functions, in the order FastAPI made them (the router's dependencies, then the token); errors
# reach the same handlers. app.py adds them right after `router`: a request that one of its routes
# (or an earlier router's) matches fully still goes there, and otherwise to these. The reads are
# GET only: a plain route would also answer HEAD, which no FHIR route does. (Inside `router` they
# could not stay GET only: FastAPI rebuilds a router's plain routes, and a rebuilt GET route
# answers HEAD again.)
plain_routes: list[Route] = []


async def _caller(request: Request) -> Principal:
    for dependency in (check_accept, refuse_nul_in_url):  # the router's, in its order
        await dependency(request)
    return await current_principal(request)


PlainEndpoint = Callable[[Request, Principal, dict[str, str]], Awaitable[Response]]


def _plain_get(path: str) -> Callable[[PlainEndpoint], PlainEndpoint]:
    """`endpoint(request, caller, path_params)` at `path` under the router's prefix, in
    `plain_routes`."""

    def register(endpoint: PlainEndpoint) -> PlainEndpoint:
        async def plain(request: Request) -> Response:
            return await endpoint(request, await _caller(request), request.path_params)

        route = Route(router.prefix + path, plain, methods=["GET"], include_in_schema=False)
        route.methods = {"GET"}
        plain_routes.append(route)
        return endpoint

    return register


async def in_one_hop(
    request: Request,
    principal: Principal,
    work: Callable[[Context], Response],
    *,
    one_event: bool = False,
) -> Response:
    """The reads: the work, its audit event and the commit in one worker thread
    (`db.in_unit_of_work`), where `ContextDep` costs two hops. Committed before the response.
    `one_event`: the work writes nothing but one audit event (a read, vread or history of one
    resource; a search, whose page is one event however many patients it shows, and whose rows
    that did not open are failures written at once), so on PostgreSQL its statements need no
    transaction around them (`autocommit`)."""
    settings = request.app.state.settings
    return await in_unit_of_work(
        request.app.state.sessionmaker,
        lambda session: work(Context(session, principal, settings)),
        autocommit=one_event,
    )


def fhir_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(content=body, status_code=status, media_type=FHIR_JSON, headers=headers)


def version_response(version: Version, status: int = 200, location: str | None = None) -> Response:
    headers = {"ETag": version.etag, "Last-Modified": bundles.http_date(version)}
    if location:
        headers["Location"] = location
    return fhir_response(version.body, status, headers)


def _base(ctx: Context) -> str:
    return ctx.settings.fhir_base_url


def _known_type(rtype: str) -> None:
    if rtype not in STORED_TYPES:
        raise NotFound(
            f"Resource type {rtype} is not supported by this server", issue_code="not-supported"
        )


@router.get("/metadata")
def metadata(request: Request) -> Response:
    settings = request.app.state.settings
    statement = capability_statement(
        settings.fhir_base_url, settings.token_url, request.app.version
    )
    return fhir_response(orjson.dumps(statement))


async def transaction(request: Request) -> Response:
    """`POST /fhir`: a plain route, like the hot reads, making the checks FastAPI made for it in
    the same order (the router's, the token, then the body: `read_json_body`). The Bundle's work,
    its audit events and the commit in one worker thread (`in_one_hop`), where a sync endpoint on
    `get_session` made two hops. Committed before the response; an error rolls back everything
    and reaches the same handlers."""
    principal = await _caller(request)
    body = await read_json_body(request)
    prefer = request.headers.get("prefer", "")
    return await in_one_hop(request, principal, partial(_transaction, body, prefer))


# `/fhir` and `/fhir/`, POST only (the app's own scan answers 405 for another method, as before).
plain_routes.extend(
    Route(router.prefix + path, transaction, methods=["POST"], include_in_schema=False)
    for path in ("", "/")
)


def _transaction(body: dict[str, Any], prefer: str, ctx: Context) -> Response:
    validate_resource(body, expected_type="Bundle")
    kind = body.get("type")
    if kind not in ("transaction", "batch"):
        raise Invalid(
            "POST /fhir takes a Bundle of type transaction or batch",
            status=400,
            expression=["Bundle.type"],
        )
    with_resource = "return=representation" in prefer
    if kind == "transaction":
        outcomes = transactions.submit_transaction(ctx, body)
        rendered = [bundles.response_entry(o, _base(ctx), with_resource) for o in outcomes]
        return fhir_response(bundles.response_bundle("transaction-response", rendered))
    entries = bundles.entries_of(body)
    answered = transactions.submit_batch(ctx, entries, _base(ctx), with_resource)
    return fhir_response(bundles.response_bundle("batch-response", answered))


@router.get("/Questionnaire/{rid}")
def read_questionnaire(rid: str) -> Response:
    """The instruments SPIS scores: public definitions, no patient data, no token needed."""
    if rid not in QUESTIONNAIRES:
        raise NotFound(f"Questionnaire/{rid} is not known")
    return fhir_response(orjson.dumps(QUESTIONNAIRES[rid]))


@router.get("/Questionnaire")
def search_questionnaires() -> Response:
    return fhir_response(small_searchset([(q["url"], q) for q in QUESTIONNAIRES.values()]))


@router.get("/Organization/{rid}")
def read_organization(rid: str, ctx: ContextDep) -> Response:
    require(ctx.principal, "Organization", "r")
    return fhir_response(orjson.dumps(organisations.as_fhir(ctx.session, rid)))


@router.get("/Organization")
def search_organizations(request: Request, ctx: ContextDep) -> Response:
    require(ctx.principal, "Organization", "s")
    found = organisations.search_fhir(ctx.session, list(request.query_params.multi_items()))
    return fhir_response(
        small_searchset([(f"{_base(ctx)}/Organization/{o['id']}", o) for o in found])
    )


@router.post("/{rtype}/_search")
async def search_post(rtype: str, principal: PrincipalDep, request: Request) -> Response:
    form = await request.form()
    params = [(k, str(v)) for k, v in form.multi_items()] + list(request.query_params.multi_items())
    _known_type(rtype)
    require(principal, rtype, "s")
    parsed = _parsed(request, principal, rtype, params)
    return await in_one_hop(request, principal, partial(_search, rtype, parsed), one_event=True)


@_plain_get("/{rtype}")
async def search_get(request: Request, principal: Principal, path: dict[str, str]) -> Response:
    rtype = path["rtype"]
    params = list(request.query_params.multi_items())
    _known_type(rtype)
    require(principal, rtype, "s")
    parsed = _parsed(request, principal, rtype, params)
    first: AsyncReads | None = request.app.state.async_reads
    page = None if first is None else reads.fixed_page(first.engine, principal, rtype, parsed)
    if first is not None and page is not None:
        engine = first.engine

        async def find(connection: AsyncConnection[Any]) -> reads.Searched | None:
            return await reads.search_known(connection, engine, parsed, page)

        async def recorded(found: SearchPage) -> bool:
            await audit.record_search_now(request.app.state.read_events, principal, found.matches)
            return True

        searched = await first.attempt(find)
        if (
            searched is not None
            and searched.page is not None
            and await first.guarded(recorded(searched.page))
        ):
            base = request.app.state.settings.fhir_base_url
            shown = partial(_shown, principal)
            return fhir_response(searchset(base, rtype, parsed, searched.page, shown))
    return await in_one_hop(request, principal, partial(_search, rtype, parsed), one_event=True)


def _shown(principal: Principal, row: StoredResource) -> bytes:
    return resources.presented_to(principal, row.type, row.org_id, row.body)


def _parsed(
    request: Request, principal: Principal, rtype: str, params: list[tuple[str, str]]
) -> ParsedSearch:
    """The search's parameters read, and refused, on the event loop: no database is needed."""
    strict = "handling=strict" in request.headers.get("prefer", "")
    return query.parse(Asking(principal, request.app.state.settings), rtype, params, strict=strict)


def _search(rtype: str, parsed: ParsedSearch, ctx: Context) -> Response:
    found = reads.search_parsed(ctx, rtype, parsed)
    if found.page is None:  # _count=0: how many, no page
        audit.record_read(ctx, [], kind=Kind.SEARCH, detail="count only")
        return fhir_response(count_only(found.total))
    page = found.page
    audit.record_read(ctx, [*page.matches, *page.included], kind=Kind.SEARCH)
    audit.record_unreadable(ctx, page.unreadable, kind=Kind.SEARCH, at_once=True)
    present = partial(reads.present, ctx)
    return fhir_response(searchset(_base(ctx), rtype, found.parsed, page, present))


@router.post("/{rtype}")
def create(rtype: str, ctx: ContextDep, body: Body, request: Request) -> Response:
    _known_type(rtype)
    require(ctx.principal, rtype, "c")
    validate_resource(body, expected_type=rtype)
    entry = Entry("POST", rtype, body, if_none_exist=request.headers.get("if-none-exist"))
    [outcome] = referrals.submit(ctx, [entry])
    if outcome.created:
        audit.record_write(ctx, Kind.CREATE, outcome.written())
    version = outcome.version
    status = 201 if outcome.created else 200
    return version_response(version, status, location=f"{_base(ctx)}/{version.location}")


@_plain_get("/{rtype}/{rid}")
async def read(request: Request, principal: Principal, path: dict[str, str]) -> Response:
    rtype, rid = path["rtype"], path["rid"]
    _known_type(rtype)
    require(principal, rtype, "r")
    unchanged_if = version_named(request.headers.get("if-none-match"))
    first: AsyncReads | None = request.app.state.async_reads
    if first is not None:

        async def find(connection: AsyncConnection[Any]) -> StoredResource | None:
            return await resources.read_known(connection, first.engine, principal, rtype, rid)

        async def recorded(row: StoredResource) -> bool:
            await audit.record_read_now(request.app.state.read_events, principal, row)
            return True

        row = await first.attempt(find)
        if row is not None and await first.guarded(recorded(row)):
            return _answer(principal, row, unchanged_if)
    return await in_one_hop(
        request, principal, partial(_read, rtype, rid, unchanged_if), one_event=True
    )


def _read(rtype: str, rid: str, unchanged_if: str | None, ctx: Context) -> Response:
    row = resources.read(ctx, rtype, rid)
    audit.record_read(ctx, [row])
    return _answer(ctx.principal, row, unchanged_if)


def _answer(principal: Principal, row: StoredResource, unchanged_if: str | None) -> Response:
    version = Version.of(row)
    if unchanged_if == str(version.version_id):
        return Response(status_code=304, headers={"ETag": version.etag})
    body = resources.presented_to(principal, row.type, row.org_id, row.body)
    return version_response(version if body is row.body else replace(version, body=body))


@router.put("/{rtype}/{rid}")
def update(rtype: str, rid: str, ctx: ContextDep, body: Body, request: Request) -> Response:
    _known_type(rtype)
    require(ctx.principal, rtype, "u")
    validate_resource(body, expected_type=rtype)
    if body.get("id") != rid:
        raise Invalid(
            "The resource id must match the id in the URL", status=400, expression=[f"{rtype}.id"]
        )
    outcome = transactions.submit_update(ctx, rtype, rid, body, request.headers.get("if-match"))
    return version_response(outcome.version)


@router.patch("/{rtype}/{rid}")
def patch(
    rtype: str, rid: str, ctx: ContextDep, operations: PatchBody, request: Request
) -> Response:
    """JSON Patch (RFC 6902) on the current version, then the same rules as a PUT."""
    _known_type(rtype)
    require(ctx.principal, rtype, "u")
    patched = patching.patch(ctx, rtype, rid, operations, request.headers.get("if-match"))
    if patched.changed is None:  # nothing to write, so no new version
        audit.record_read(ctx, [patched.current])
        return version_response(Version.of(patched.current))
    entry = Entry("PUT", rtype, patched.changed, rid=rid, if_match=patched.if_match)
    [outcome] = referrals.submit(ctx, [entry])
    audit.record_write(ctx, Kind.PATCH, [outcome.version])
    return version_response(outcome.version)


@_plain_get("/{rtype}/{rid}/_history")
async def history(request: Request, principal: Principal, path: dict[str, str]) -> Response:
    rtype, rid = path["rtype"], path["rid"]
    _known_type(rtype)
    require(principal, rtype, "r")
    return await in_one_hop(request, principal, partial(_history, rtype, rid), one_event=True)


def _history(rtype: str, rid: str, ctx: Context) -> Response:
    found = reads.history(ctx, rtype, rid)
    audit.record_read(ctx, [found.current], kind=Kind.HISTORY)
    return fhir_response(history_bundle(_base(ctx), found.versions))


@_plain_get("/{rtype}/{rid}/_history/{vid}")
async def vread(request: Request, principal: Principal, path: dict[str, str]) -> Response:
    rtype, rid, vid = path["rtype"], path["rid"], path["vid"]
    _known_type(rtype)
    require(principal, rtype, "r")
    return await in_one_hop(request, principal, partial(_vread, rtype, rid, vid), one_event=True)


def _vread(rtype: str, rid: str, vid: str, ctx: Context) -> Response:
    found = reads.vread(ctx, rtype, rid, vid)
    audit.record_read(ctx, [found.current], kind=Kind.VREAD)
    return version_response(found.versions[0])
