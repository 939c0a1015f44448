"""Writing and reading stored resources: ids, meta, versions, search index, blind indexes.

Takes a Context, never commits. Callers have validated the resource before it gets here.

Every create, update and grant is recorded as a `kit.changes.Change` in the session, for what
acts on it before commit (deliveries/events.py): write through here, never around it, or no
subscriber hears of it. `bulk.py` alone writes around it, on purpose (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from psycopg import AsyncConnection
from sqlalchemy import Engine

from fhir_adapters.codes import NHS_NUMBER_SYSTEM
from fhir_adapters.search_params import IndexEntry, index_entries
from fhir_adapters.task import business_status_codes
from fhir_adapters.views import broker_can_search, broker_view, needs_subsetting
from referral_service.context import Caller, Context
from referral_service.errors import NotFound, VersionConflict
from referral_service.kit import changes
from referral_service.kit.changes import Change, What
from referral_service.kit.clock import as_utc, fhir_instant, utcnow
from referral_service.kit.crypto import tenant_blind_index
from referral_service.kit.ids import resource_id
from referral_service.kit.refs import Ref
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store import repository, unreadable
from referral_service.store.models import StoredResource

NHS_NUMBER_INDEX = "nhs-number"


@dataclass(frozen=True, slots=True)
class Version:
    """What a response needs to say about a stored version."""

    type: str
    id: str
    version_id: int
    last_updated: datetime
    body: bytes

    @property
    def etag(self) -> str:
        return f'W/"{self.version_id}"'

    @property
    def location(self) -> str:
        return f"{self.type}/{self.id}/_history/{self.version_id}"

    @classmethod
    def of(cls, row: StoredResource) -> Version:
        return cls(row.type, row.id, row.version_id, as_utc(row.last_updated), row.body)


def presented(ctx: Context, rtype: str, tenant: str, body: bytes) -> bytes:
    """The bytes this caller may see: the stored JSON itself, or a time bank's subset of a
    practice's resource."""
    return presented_to(ctx.principal, rtype, tenant, body)


def presented_to(principal: Principal, rtype: str, tenant: str, body: bytes) -> bytes:
    """`presented`, for a caller with no Context (the async reads)."""
    if principal.org_kind is not OrgKind.TIMEBANK or tenant == principal.org_id:
        return body
    if not needs_subsetting(rtype):
        return body
    return orjson.dumps(broker_view(rtype, orjson.loads(body)))


def searchable_in_others(ctx: Caller, rtype: str, param: str) -> bool:
    """Whether a search parameter may match other organisations' resources for this caller: not
    when it reads an element the caller is never shown (see `presented`)."""
    if ctx.principal.org_kind is not OrgKind.TIMEBANK:
        return True
    return broker_can_search(rtype, param)


def create(
    ctx: Context,
    rtype: str,
    data: dict[str, Any],
    rid: str | None = None,
    *,
    tenant: str | None = None,
    share_with: tuple[str, ...] = (),
) -> Version:
    """Store a new resource. `tenant` is whose data it is (default: the caller's organisation);
    `share_with` are organisations that may read it too (a time bank, for a routed referral)."""
    now = utcnow()
    rid = rid or resource_id(rtype)
    body = stamp(data, rid, 1, now)
    owner = tenant or ctx.principal.org_id
    row = repository.new_row(rid, rtype, 1, now, owner, body)
    grants = [org for org in share_with if org != owner]
    repository.insert_resource(ctx.session, row, index_values(ctx, rtype, data, owner), grants)
    status, business = _codes(data)
    changes.record(
        ctx.session,
        Change(
            rtype,
            rid,
            1,
            What.CREATED,
            status=status,
            business_status=business,
            shared_with=frozenset(grants),
            body=body,
        ),
    )
    return Version.of(row)


def update(ctx: Context, row: StoredResource, data: dict[str, Any]) -> Version:
    now = utcnow()
    version_id = row.version_id + 1
    previous_status, previous_business = _codes(as_dict(row))
    body = stamp(data, row.id, version_id, now)
    index = index_values(ctx, row.type, data, row.org_id)
    if not repository.update_resource(ctx.session, row, body, now, index):
        raise VersionConflict(f"{row.type}/{row.id} was changed by someone else; read it again")
    status, business = _codes(data)
    changes.record(
        ctx.session,
        Change(
            row.type,
            row.id,
            version_id,
            What.UPDATED,
            status=status,
            previous_status=previous_status,
            business_status=business,
            previous_business_status=previous_business,
            body=body,
        ),
    )
    return Version(row.type, row.id, version_id, now, body)


def grant(ctx: Context, row: StoredResource, org_ids: tuple[str, ...] | list[str]) -> None:
    """Let other organisations read a resource as it stands (idempotent: granting again what is
    granted already changes nothing, and is no change)."""
    added = repository.grant(ctx.session, row.id, [org for org in org_ids if org != row.org_id])
    if added:
        status, business = _codes(as_dict(row))
        changes.record(
            ctx.session,
            Change(
                row.type,
                row.id,
                row.version_id,
                What.SHARED,
                status=status,
                business_status=business,
                shared_with=frozenset(added),
                body=row.body,
            ),
        )


def _codes(data: dict[str, Any]) -> tuple[str | None, frozenset[str]]:
    """`status` and (a Task's) businessStatus codes: what a Change carries besides the body."""
    status = data.get("status")
    return (status if isinstance(status, str) else None), business_status_codes(data)


def load(ctx: Context, rtype: str, rid: str, *, for_update: bool = False) -> StoredResource:
    finder = repository.get_for_update if for_update else repository.get
    row = finder(ctx.session, ctx.principal, rtype, rid)
    if row is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    return row


def read(ctx: Context, rtype: str, rid: str) -> StoredResource:
    """`load` for a read that changes nothing (see `repository.read`): the row is not in the
    session, so never pass it to `update` or `grant`."""
    row = repository.read(ctx.session, ctx.principal, rtype, rid)
    if row is None:
        raise NotFound(f"{rtype}/{rid} is not known")
    return row


async def read_known(
    reads: AsyncConnection[Any], engine: Engine, principal: Principal, rtype: str, rid: str
) -> StoredResource | None:
    """`read` on the async reads' connection (db.AsyncReads), for the caller to try first: the
    row, NotFound as `read` raises it, or None when `read` must answer (a key not cached, a body
    that does not open), which it does as it always has."""
    found = await repository.read_known(reads, engine, principal, rtype, rid)
    if found == []:
        raise NotFound(f"{rtype}/{rid} is not known")
    return found[0] if found else None


def load_json(ctx: Context, rtype: str, rid: str) -> dict[str, Any] | None:
    row = repository.get(ctx.session, ctx.principal, rtype, rid)
    return None if row is None else as_dict(row)


def as_dict(row: StoredResource) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(row.body)
    return data


def version_named(etag: str | None) -> str | None:
    """The version an `If-Match` or `If-None-Match` names: `W/"3"`, `"3"` and `3` all name
    version 3 (clients differ). The inverse of `Version.etag`."""
    return None if etag is None else etag.strip().removeprefix("W/").strip('"')


def check_version(row: StoredResource, if_match: str | None) -> None:
    """`If-Match: W/"n"` must name the current version."""
    wanted = version_named(if_match)
    if wanted is None:
        return
    if wanted != str(row.version_id):
        raise VersionConflict(
            f"{row.type}/{row.id} is at version {row.version_id}, not {wanted}; read it again"
        )


def token_value(
    ctx: Caller, rtype: str, name: str, system: str | None, value: str, tenant: str | None = None
) -> str:
    """The value as indexed: NHS numbers only ever as their blind index, keyed per tenant (the
    resource's owner when indexing, the caller when searching: nobody else's index matches)."""
    if name == "identifier" and system == NHS_NUMBER_SYSTEM:
        key = ctx.settings.blind_index_key.get_secret_value().encode()
        return tenant_blind_index(key, tenant or ctx.principal.org_id, NHS_NUMBER_INDEX, value)
    return value


def index_values(
    ctx: Context, rtype: str, data: dict[str, Any], tenant: str
) -> list[dict[str, Any]]:
    """The column values of each search index row, without the resource's id and type (the
    repository adds them)."""
    return [_index_value(ctx, rtype, entry, tenant) for entry in index_entries(rtype, data)]


def _index_value(ctx: Context, rtype: str, entry: IndexEntry, tenant: str) -> dict[str, Any]:
    value = entry.value
    if value is not None:
        value = token_value(ctx, rtype, entry.name, entry.system, value, tenant)[:255]
    # Cut to the column as PostgreSQL's cast to VARCHAR(255)[] used to cut it: the write queue
    # now stores with a check that refuses a longer value (write_queue.insert_rows).
    system = entry.system if entry.system is None else entry.system[:255]
    return {
        "name": entry.name,
        "system": system,
        "value": value,
        "start": entry.start,
        "end": entry.end,
    }


def stamp(data: dict[str, Any], rid: str, version_id: int, when: datetime) -> bytes:
    """Server-owned id and meta first; everything else exactly as the client sent it."""
    meta = {
        **(data.get("meta") or {}),
        "versionId": str(version_id),
        "lastUpdated": fhir_instant(when),
    }
    head = {"resourceType": data["resourceType"], "id": rid, "meta": meta}
    rest = {k: v for k, v in data.items() if k not in head}
    data.clear()
    data.update(head)
    data.update(rest)
    return orjson.dumps(data)


@dataclass(frozen=True, slots=True)
class SearchPage:
    """`matches`: the page's readable matches; `included`: what `_include` brought in;
    `unreadable`: matches and includes whose stored body did not open, left out of both
    (store/unreadable.py)."""

    matches: list[StoredResource]
    has_next: bool
    included: list[StoredResource]
    unreadable: list[StoredResource]


def search(
    ctx: Context,
    rtype: str,
    query: repository.Query,
    *,
    count: int,
    offset: int,
    newest_first: bool,
    includes: list[tuple[str, str]],
) -> SearchPage:
    """One page of matches and its includes.

    Includes go through the same tenancy filter as matches: `_include` never reaches rows the
    caller could not read directly. A row that does not open fails alone: it is left out and
    reported, and the rest of the page is answered.
    """
    found, more = repository.search_page(
        ctx.session,
        ctx.principal,
        rtype,
        query,
        count=count,
        offset=offset,
        newest_first=newest_first,
    )
    rows, bad = unreadable.partition(found)
    targets: list[Ref] = []
    for source, param in includes:
        targets += repository.references_from(ctx.session, source, [r.id for r in rows], param)
    included, bad_included = unreadable.partition(
        repository.read_many(ctx.session, ctx.principal, targets)
    )
    seen = {row.id for row in rows}
    included = [row for row in included if row.id not in seen]
    return SearchPage(rows, more, included, bad + bad_included)
