"""The reads beyond a plain read: a resource's history, one of its versions (vread), and a
search (a page, or only a count). Bodies come back as this caller may see them (`presented`).

The caller records the read in the audit trail: `current` is the row it is recorded against.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import Engine

from referral_service.context import Context
from referral_service.errors import NotFound
from referral_service.kit.clock import as_utc
from referral_service.kit.numbers import whole_number
from referral_service.kit.prepared import Prepared
from referral_service.principal import Principal
from referral_service.store import query, repository, service
from referral_service.store.models import ResourceVersion, StoredResource
from referral_service.store.query import ParsedSearch
from referral_service.store.service import SearchPage, Version


@dataclass(frozen=True, slots=True)
class Versions:
    current: StoredResource
    versions: list[Version]  # newest first


def history(ctx: Context, rtype: str, rid: str) -> Versions:
    current = service.read(ctx, rtype, rid)
    return _presented(ctx, current, repository.versions_of(ctx.session, current))


def vread(ctx: Context, rtype: str, rid: str, vid: str) -> Versions:
    """One version, as `versions[0]`."""
    version_id = whole_number(vid)  # beyond the column's range: no such version, not a 500
    current = (
        None if version_id is None else repository.read(ctx.session, ctx.principal, rtype, rid)
    )
    found = [] if current is None else repository.versions_of(ctx.session, current, version_id)
    if current is None or not found:
        raise NotFound(f"{rtype}/{rid} has no version {vid}")
    return _presented(ctx, current, found)


def _presented(ctx: Context, current: StoredResource, found: Sequence[ResourceVersion]) -> Versions:
    versions = [
        Version(
            current.type,
            current.id,
            v.version_id,
            as_utc(v.last_updated),
            service.presented(ctx, current.type, current.org_id, v.body),
        )
        for v in found
    ]
    return Versions(current, versions)


@dataclass(frozen=True, slots=True)
class Searched:
    """`page` is None for `_count=0`, which asks only how many match (`total`, set only then)."""

    parsed: ParsedSearch
    page: SearchPage | None
    total: int = 0


def search(
    ctx: Context, rtype: str, params: Sequence[tuple[str, str]], *, strict: bool
) -> Searched:
    return search_parsed(ctx, rtype, query.parse(ctx, rtype, params, strict=strict))


def search_parsed(ctx: Context, rtype: str, parsed: ParsedSearch) -> Searched:
    """`search` of parameters already read (`query.parse`)."""
    if parsed.count == 0:  # FHIR's _summary=count
        return Searched(
            parsed, None, repository.count(ctx.session, ctx.principal, rtype, parsed.query)
        )
    page = service.search(
        ctx,
        rtype,
        parsed.query,
        count=parsed.count,
        offset=parsed.offset,
        newest_first=parsed.newest_first,
        includes=parsed.includes,
    )
    return Searched(parsed, page)


def fixed_page(
    engine: Engine, principal: Principal, rtype: str, parsed: ParsedSearch
) -> Prepared | None:
    """The page's statement when it is one SPIS prepares (`repository.fixed_page`: the open Tasks
    every practice polls) and asks for no `_include` and no count: what `search_known` can
    answer; None for any other search."""
    if parsed.count == 0 or parsed.includes:
        return None
    return repository.fixed_page(
        engine.dialect,
        principal,
        rtype,
        parsed.query,
        parsed.newest_first,
        parsed.count,
        parsed.offset,
    )


async def search_known(
    reads: AsyncConnection[Any], engine: Engine, parsed: ParsedSearch, page: Prepared
) -> Searched | None:
    """`search_parsed` on the async reads' connection (db.AsyncReads), for the caller to try
    first, of a search `fixed_page` gave `page` for: None when `search_parsed` must answer (a key
    not cached, a body that does not open), which it does as it always has."""
    found = await repository.fixed_page_known(reads, engine, page, parsed.count)
    if found is None:
        return None
    rows, more = found
    return Searched(parsed, SearchPage(rows, more, [], []))


def present(ctx: Context, row: StoredResource) -> bytes:
    return service.presented(ctx, row.type, row.org_id, row.body)
