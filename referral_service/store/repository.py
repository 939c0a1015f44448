"""Every query on the resource store. Tenancy is part of every read query (`readable`)."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from psycopg import AsyncConnection
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    false,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import (
    InstrumentedAttribute,
    Session,
    aliased,
)
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.sql.elements import BindParameter

from fhir_adapters.codes import REFERRAL_TASK_STATUSES
from fhir_adapters.search_params import stored_name
from referral_service.keys import ring
from referral_service.kit.prepared import Prepared
from referral_service.kit.refs import Ref
from referral_service.principal import Principal
from referral_service.store import sealing, unreadable, write_queue
from referral_service.store.models import (
    ResourceGrant,
    ResourceVersion,
    SearchIndex,
    StoredResource,
)


def readable(principal: Principal, org: Any = None) -> ColumnElement[bool]:
    """Rows the caller may see at all: its own organisation's data, and what was shared with it.
    `org` stands for the caller's organisation in a statement built once (a bind parameter)."""
    if principal.system:
        return true()
    return _visible_to(principal.org_id if org is None else org)


def _visible_to(org: Any) -> ColumnElement[bool]:
    """Owned by `org`, or granted to it: the grant looked up row by row, by its index.

    The `OFFSET 0` keeps PostgreSQL from turning the EXISTS into a hashed subplan, which reads
    every grant the organisation holds to build a hash table, whatever the rows in question.
    Its plans chose that whenever the organisation's grants were estimated many (a generic plan
    divides the grants evenly between organisations): a time bank's batch, checking 40 shared
    resources it refers to, scanned all 69,400 grants, 5.6 ms a batch and growing with the
    table, against 40 index probes of about a microsecond each now. A row of the caller's own
    organisation never asks."""
    granted = (
        select(literal_column("1"))
        .where(ResourceGrant.resource_id == StoredResource.id, ResourceGrant.org_id == org)
        .offset(literal_column("0"))
        .exists()
    )
    return or_(StoredResource.org_id == org, granted)


def grant(session: Session, resource_id: str, org_ids: Iterable[str]) -> set[str]:
    """Idempotent: granting again what is already granted changes nothing. Returns the
    organisations newly granted. Call it through `service.grant`, which records the change."""
    wanted = set(org_ids)
    if not wanted:
        return set()
    held = set(
        session.scalars(
            select(ResourceGrant.org_id).where(
                ResourceGrant.resource_id == resource_id, ResourceGrant.org_id.in_(wanted)
            )
        )
    )
    added = wanted - held
    if added:
        rows = [{"resource_id": resource_id, "org_id": org_id} for org_id in sorted(added)]
        session.execute(insert(ResourceGrant), rows)
    return added


def revoke(session: Session, resource_id: str, org_id: str) -> None:
    session.execute(
        delete(ResourceGrant).where(
            ResourceGrant.resource_id == resource_id, ResourceGrant.org_id == org_id
        )
    )


@dataclass(frozen=True, slots=True)
class TokenMatch:
    name: str
    value: str | None
    system: str | None = None
    system_given: bool = False
    # Matches only this organisation's own resources: the parameter reads an element the caller
    # is not shown in resources shared with it.
    own_only: str | None = None


@dataclass(frozen=True, slots=True)
class DateMatch:
    """`name` is a date search parameter, or `_lastUpdated`; start/end bound the search value."""

    name: str
    prefix: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class IdMatch:
    value: str


Match = TokenMatch | DateMatch | IdMatch
# A search index row's values without its resource's id and type (`service.index_values`).
IndexRow = dict[str, Any]
# A query is an AND of clauses; each clause is an OR of matches (comma-separated values).
Query = Sequence[Sequence[Match]]


# Reads open sealed bodies tolerantly (store/unreadable.py): one bad row fails only itself.
_TOLERANT = {unreadable.SKIP_UNREADABLE: True}


def get(session: Session, principal: Principal, rtype: str, rid: str) -> StoredResource | None:
    """The row, None when not visible, or `Unreadable` when its body does not open."""
    stmt = select(StoredResource).where(
        StoredResource.type == rtype, StoredResource.id == rid, readable(principal)
    )
    rows = session.scalars(stmt.execution_options(**_TOLERANT)).all()
    return unreadable.first_readable(session, rows)


_RESOURCE_COLUMNS = (
    StoredResource.id,
    StoredResource.type,
    StoredResource.version_id,
    StoredResource.last_updated,
    StoredResource.org_id,
    StoredResource.body,
)


def _read_statement(org_id: BindParameter[str] | None) -> Prepared:
    by_id = (StoredResource.type == bindparam("rtype"), StoredResource.id == bindparam("rid"))
    tenancy = () if org_id is None else (_visible_to(org_id),)
    statement = sealing.with_live_keys(select(*_RESOURCE_COLUMNS).where(*by_id, *tenancy))
    return Prepared(statement, binary_rows=True)  # the sealed body: bytes, not hex text


# Built once (the hottest query there is), one per shape of caller: SPIS itself sees every
# tenant's rows; any other caller its own and those shared with it, as `readable` says.
_READ_AS_SYSTEM = _read_statement(None)
_READ_AS_ORG = _read_statement(bindparam("org_id"))


def read(session: Session, principal: Principal, rtype: str, rid: str) -> StoredResource | None:
    """`get` for a read that changes nothing: one query, built once and sent by the driver
    (kit/prepared.py), that brings the live data keys too; the row comes back out of the session
    (sealing.opened_resources). `Unreadable` when its body does not open."""
    connection = session.connection()
    if principal.system:
        found = _READ_AS_SYSTEM.rows(connection, {"rtype": rtype, "rid": rid})
    else:
        params = {"rtype": rtype, "rid": rid, "org_id": principal.org_id}
        found = _READ_AS_ORG.rows(connection, params)
    opened = sealing.opened_resources(connection, found)
    if any(unreadable.is_unreadable(row) for row in opened):
        raise unreadable.Unreadable
    return opened[0] if opened else None


async def read_known(
    connection: AsyncConnection[Any], engine: Engine, principal: Principal, rtype: str, rid: str
) -> list[StoredResource] | None:
    """`read` on an async connection (db.AsyncReads), the same statement: the rows found (none,
    or the one), or None when `read` must answer instead (a key not cached, a body that does not
    open)."""
    if principal.system:
        found = await _READ_AS_SYSTEM.fetch(connection, {"rtype": rtype, "rid": rid})
    else:
        params = {"rtype": rtype, "rid": rid, "org_id": principal.org_id}
        found = await _READ_AS_ORG.fetch(connection, params)
    return sealing.opened_resources_known(engine, found)


def get_for_update(
    session: Session, principal: Principal, rtype: str, rid: str
) -> StoredResource | None:
    stmt = (
        select(StoredResource)
        .where(StoredResource.type == rtype, StoredResource.id == rid, readable(principal))
        .with_for_update()
        .execution_options(**_TOLERANT)
    )
    return unreadable.first_readable(session, session.scalars(stmt).all())


_VERSION_COLUMNS = (
    ResourceVersion.resource_id,
    ResourceVersion.version_id,
    ResourceVersion.last_updated,
    ResourceVersion.org_id,
    ResourceVersion.body,
)


def _older_statement(*, one: bool) -> Prepared:
    """A resource's superseded versions below `below` (its current version number), newest
    first, each read under its resource's tenant only (its sealed body is bound to its own
    `org_id`); `one`: only version `version_id`. The caller has read the current row, which
    decides whether the caller may see the resource at all."""
    chosen = (ResourceVersion.version_id == bindparam("version_id"),) if one else ()
    stmt = (
        select(*_VERSION_COLUMNS)
        .where(
            ResourceVersion.resource_id == bindparam("rid"),
            ResourceVersion.org_id == bindparam("org_id"),
            ResourceVersion.version_id < bindparam("below"),
            *chosen,
        )
        .order_by(ResourceVersion.version_id.desc())
    )
    return Prepared(sealing.with_live_keys(stmt), binary_rows=True)


_OLDER = {one: _older_statement(one=one) for one in (True, False)}
_NEW_VERSION = manager_of_class(ResourceVersion).new_instance


def versions(
    session: Session, principal: Principal, rtype: str, rid: str, version_id: int | None = None
) -> list[ResourceVersion]:
    """All versions (newest first), or the one asked for; empty when not visible; `Unreadable`
    when one of them does not open. Out of the session, as `read`'s row. The one-call form, for
    a caller with no row in hand; vread and history read first and ask `versions_of` the row
    they read, which needs no statement for the current version."""
    current = read(session, principal, rtype, rid)
    return [] if current is None else versions_of(session, current, version_id)


def versions_of(
    session: Session, current: StoredResource, version_id: int | None = None
) -> list[ResourceVersion]:
    """`versions` of a row the caller has read (`read`): the current version is that row, so
    asking for it costs no statement; the superseded ones are in `resource_version`, which holds
    only those (a version is written there when a newer one replaces it)."""
    if version_id is not None and version_id >= current.version_id:
        return [_as_version(current)] if version_id == current.version_id else []
    if current.version_id == 1:  # nothing superseded (a version 0 is no version)
        return [] if version_id is not None else [_as_version(current)]
    params: dict[str, object] = {
        "rid": current.id,
        "org_id": current.org_id,
        "below": current.version_id,
    }
    if version_id is not None:
        params["version_id"] = version_id
    connection = session.connection()
    found = _OLDER[version_id is not None].rows(connection, params)
    opened = sealing.opened_versions(connection, found)
    if any(unreadable.is_unreadable(row) for row in opened):
        raise unreadable.Unreadable
    return opened if version_id is not None else [_as_version(current), *opened]


def _as_version(row: StoredResource) -> ResourceVersion:
    version = _NEW_VERSION()
    version.__dict__.update(
        resource_id=row.id,
        version_id=row.version_id,
        last_updated=row.last_updated,
        org_id=row.org_id,
        body=row.body,
    )
    return version


_NEW_ROW = manager_of_class(StoredResource).new_instance


def new_row(
    rid: str, rtype: str, version_id: int, when: datetime, tenant: str, body: bytes
) -> StoredResource:
    """A new resource's row for `insert_resource`, made as an ORM load makes one: no
    constructor, no change events (`write_queue.hold` would reset their history anyway). About
    2 µs instead of 10: a batch of 100 questionnaires makes 200."""
    row = _NEW_ROW()
    values = {"id": rid, "type": rtype, "version_id": version_id, "last_updated": when}
    row.__dict__.update(values, org_id=tenant, body=body)
    return row


def insert_resource(
    session: Session, row: StoredResource, index: Iterable[IndexRow], grants: Iterable[str] = ()
) -> None:
    """Queued, not sent (store/write_queue.py): a whole Bundle's rows go in one INSERT per table
    before the next statement, as the unit of work's autoflush would send them, for a fraction of
    its cost. Bodies are sealed here. The row joins the session as persistent, so that reading
    it back by id in this transaction (`session.get`) needs no query. A new resource has no
    `resource_version` row: that table holds superseded versions only (`update_resource`)."""
    connection = session.connection()
    # Each read of a row's attribute goes through the ORM's descriptor: once each, here.
    rid, rtype, version_id, when = row.id, row.type, row.version_id, row.last_updated
    tenant, body = row.org_id, row.body
    # Sealing may read the current key: a statement, which sends the queue. Seal, then queue.
    sealed = ring.seal(connection, sealing.resource_aad(rid, rtype, version_id, tenant), body)
    queued = write_queue.queue(connection)
    queued.resources.append(
        {
            "id": rid,
            "type": rtype,
            "version_id": version_id,
            "last_updated": when,
            "org_id": tenant,
            "body": sealed,
        }
    )
    rows = _index_rows(rid, rtype, index)
    queued.index.extend(rows)
    queued.grants.extend({"resource_id": rid, "org_id": org} for org in sorted(set(grants)))
    write_queue.queued_version(session, rtype, rid, rows)
    write_queue.hold(session, row)


def insert_many(
    session: Session,
    resources: list[dict[str, object]],
    versions: list[dict[str, object]],
    index: list[dict[str, object]],
    grants: list[dict[str, object]],
) -> None:
    """Rows `bulk.py` built (bodies already sealed), parents first, for synthetic and bulk loads
    only: the request path inserts through `insert_resource`. PostgreSQL takes them with COPY
    (about half as fast again as executemany, DESIGN §13); other databases with Core executemany.
    Every dict of one list has the same keys."""
    write_queue.send(session.connection())  # COPY is no statement the queue would see
    copy = session.get_bind().dialect.name == "postgresql"
    for model, rows in (
        (StoredResource, resources),
        (ResourceVersion, versions),
        (SearchIndex, index),
        (ResourceGrant, grants),
    ):
        table = cast(Table, model.__table__)
        if rows and copy:
            _copy_rows(session, table.name, rows)
        elif rows:  # the Table, not the entity: Core executemany, not the ORM's bulk path
            session.execute(insert(table), rows)


def _copy_rows(session: Session, table: str, rows: list[dict[str, object]]) -> None:
    columns = list(rows[0])
    names = ", ".join(f'"{name}"' for name in columns)
    # The session's own connection: the rows join its transaction.
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([row[name] for name in columns])


def refresh_statistics(session: Session) -> None:
    """ANALYZE, after a bulk load: the query planner learns the new row counts now rather than
    when autovacuum gets to them, so the first queries do not plan for empty tables."""
    session.execute(text("ANALYZE"))


def update_resource(
    session: Session, row: StoredResource, body: bytes, when: datetime, index: Iterable[IndexRow]
) -> bool:
    """Optimistic: succeeds only if nobody else wrote a newer version meanwhile. `row` then
    holds the new version (as a reload would, without one); the version it replaced goes to
    `resource_version`, and the new index rows are queued as `insert_resource` queues them."""
    version_id = row.version_id + 1
    replaced = (row.version_id, row.last_updated, row.body)
    connection = session.connection()
    sealed = sealing.seal_resource(connection, row, version_id, body)
    result = session.execute(
        update(StoredResource)
        .where(StoredResource.id == row.id, StoredResource.version_id == row.version_id)
        .values(version_id=version_id, last_updated=when, body=sealed)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(delete(SearchIndex).where(SearchIndex.resource_id == row.id))
    for name, value in (("version_id", version_id), ("last_updated", when), ("body", body)):
        set_committed_value(row, name, value)
    version = _version_row(connection, row.id, *replaced, row.org_id)
    queued = write_queue.queue(connection)
    queued.versions.append(version)
    rows = _index_rows(row.id, row.type, index)
    queued.index.extend(rows)
    write_queue.queued_version(session, row.type, row.id, rows)
    return True


def _version_row(
    connection: Connection, rid: str, version_id: int, when: datetime, body: bytes, tenant: str
) -> dict[str, object]:
    aad = sealing.version_aad(rid, version_id, tenant)
    return {
        "resource_id": rid,
        "version_id": version_id,
        "last_updated": when,
        "org_id": tenant,
        "body": ring.seal(connection, aad, body),
    }


def _index_rows(rid: str, rtype: str, index: Iterable[IndexRow]) -> list[dict[str, object]]:
    return [
        {"resource_id": rid, "position": n, "resource_type": rtype, **values}
        for n, values in enumerate(index)
    ]


def search(
    session: Session,
    principal: Principal,
    rtype: str,
    query: Query,
    *,
    limit: int,
    offset: int,
    newest_first: bool = True,
) -> list[StoredResource]:
    """Matching rows, in the session (for the services that act on what they find); a body that
    does not open fails the query. A FHIR search's page is `search_page`."""
    stmt = (
        select(StoredResource)
        .where(
            StoredResource.type == rtype, readable(principal), *(_clause(rtype, c) for c in query)
        )
        .order_by(*_page_order(newest_first))
        .limit(limit)
        .offset(offset)
    )
    with planned_for_its_values(session.connection()):
        return list(session.scalars(stmt))


def search_page(
    session: Session,
    principal: Principal,
    rtype: str,
    query: Query,
    *,
    count: int,
    offset: int,
    newest_first: bool = True,
) -> tuple[list[StoredResource], bool]:
    """A page of a FHIR search without the ORM, as `read`: up to `count` rows out of the session,
    those whose body does not open marked (`unreadable.partition`), and whether more match.
    One statement: the look-ahead row and the live data keys come with the page."""
    connection = session.connection()
    fixed = fixed_page(connection.dialect, principal, rtype, query, newest_first, count, offset)
    if fixed is not None:
        found = fixed.rows(connection, {})
        return sealing.opened_resources(connection, found[:count]), len(found) > count
    shape = (rtype, principal.system, _query_shape(query), newest_first)
    page = _PAGES.get(shape)
    if page is None:
        page = _Page.of(_page_statement(principal, rtype, query, newest_first))
        if len(_PAGES) >= _MAX_PAGES:
            _PAGES.clear()
        _PAGES[shape] = page
    params = {**page.fixed, **_query_values(query), "page_org": principal.org_id}
    params.update(page_limit=count + 1, page_offset=offset)
    found = page.statement.rows(connection, params)
    return sealing.opened_resources(connection, found[:count]), len(found) > count


async def fixed_page_known(
    connection: AsyncConnection[Any], engine: Engine, page: Prepared, count: int
) -> tuple[list[StoredResource], bool] | None:
    """`search_page` on an async connection (db.AsyncReads), for a page that is a server-side
    prepared statement (`fixed_page`: `Task?status=requested`, which every practice polls), the
    same statement: its rows and whether more match, or None when `search_page` must answer
    instead (a key not cached, a body that does not open)."""
    found = await page.fetch(connection, {})
    opened = sealing.opened_resources_known(engine, found[:count])
    return None if opened is None else (opened, len(found) > count)


# A search page's statement by the shape of its query (`_query_shape`), its values bind
# parameters (`_query_values`): building and compiling it cost more than the rest of the page's
# Python. Shapes are few (a type and its parameters), but a client chooses them: bounded. Sent by
# the driver (kit/prepared.py: a third of the client CPU of SQLAlchemy's execute), and never as a
# server-side prepared statement (`server_prepared=False`, as `planned_for_its_values`).
_PAGES: dict[tuple[object, ...], _Page] = {}
_MAX_PAGES = 512


# Search parameters whose every value SPIS knows (a closed code set, FHIR's required binding):
# a page that matches only such values is the one kind of page that is a server-side prepared
# statement (`fixed_page`).
FIXED_CODES: dict[tuple[str, str], frozenset[str]] = {
    ("Task", "status"): frozenset(str(code) for code in REFERRAL_TASK_STATUSES),
}
# A tenant's id as SPIS makes them (a UUID): the one value from outside the query written into a
# fixed page's SQL.
_ORG_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FIXED_PAGES: dict[tuple[object, ...], Prepared] = {}


def fixed_page(
    dialect: Dialect,
    principal: Principal,
    rtype: str,
    query: Query,
    newest_first: bool,
    count: int,
    offset: int,
) -> Prepared | None:
    """The page as a server-side prepared statement with every value written in it, when every
    value is SPIS's own: each match a code of `FIXED_CODES` (the constant, not the client's
    text), the caller's organisation a UUID, the page's size and offset numbers. None
    otherwise, and on any database but PostgreSQL.

    Planning the page cost PostgreSQL as much as running it (~0.4 ms), and a practice polls the
    same page (`Task?status=requested`) over and over. With no parameter, the plan PostgreSQL
    keeps is the one made for exactly these values (no generic plan that ignores them, the
    reason `planned_for_its_values` exists), made again after an ANALYZE of its tables, and at
    the latest when the pool recycles the connection (db.make_engine). psycopg keeps up to 100
    per connection and forgets the least used."""
    if dialect.name != "postgresql" or principal.system:
        return None
    if not _ORG_ID.fullmatch(principal.org_id) or not query:
        return None
    fixed: list[tuple[TokenMatch, ...]] = []
    for clause in query:
        matches = tuple(_fixed_match(rtype, match) for match in clause)
        if not all(matches):
            return None
        fixed.append(cast(tuple[TokenMatch, ...], matches))
    key = (rtype, principal.org_id, tuple(fixed), newest_first, count, offset)
    statement = _FIXED_PAGES.get(key)
    if statement is None:
        stmt = sealing.with_live_keys(
            select(*_RESOURCE_COLUMNS)
            .where(
                StoredResource.type == rtype,
                readable(principal),
                *(_clause(rtype, c) for c in fixed),
            )
            .order_by(*_page_order(newest_first))
            .limit(count + 1)
            .offset(offset)
        )
        sql = stmt.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        # No colon in the SQL names a parameter; the rows come in binary (kit/prepared.py).
        statement = Prepared(text(str(sql).replace(":", r"\:")), binary_rows=True)
        if len(_FIXED_PAGES) >= _MAX_PAGES:
            _FIXED_PAGES.clear()
        _FIXED_PAGES[key] = statement
    return statement


def _fixed_match(rtype: str, match: Match) -> TokenMatch | None:
    """The match with the code of `FIXED_CODES` it asks for (the set's own string, not the
    client's); None if it asks for anything else."""
    if not isinstance(match, TokenMatch) or match.system_given or match.own_only is not None:
        return None
    codes = FIXED_CODES.get((rtype, match.name))
    if codes is None or match.value not in codes:
        return None
    return TokenMatch(match.name, next(code for code in codes if code == match.value))


@dataclass(frozen=True, slots=True)
class _Page:
    """A page's statement, and the values its shape fixes (the type, each parameter's name), by
    their bind parameters' names: given with the query's own values on every run."""

    statement: Prepared
    fixed: dict[str, Any]

    @classmethod
    def of(cls, stmt: Select[Any]) -> _Page:
        compiled = stmt.compile()
        required = {compiled.bind_names[b] for b in compiled.binds.values() if b.required}
        fixed = {k: v for k, v in compiled.params.items() if k not in required}
        return cls(Prepared(stmt, server_prepared=False, binary_rows=True), fixed)


def _page_statement(
    principal: Principal, rtype: str, query: Query, newest_first: bool
) -> Select[Any]:
    """Every value a bind parameter that must be given (none is baked in from this query)."""
    clauses = [
        _clause(rtype, c, [_placeholders(f"q{i}_{j}", m) for j, m in enumerate(c)])
        for i, c in enumerate(query)
    ]
    stmt = (
        select(*_RESOURCE_COLUMNS)
        .where(
            StoredResource.type == rtype,
            readable(principal, bindparam("page_org", type_=String)),
            *clauses,
        )
        .order_by(*_page_order(newest_first))
        .limit(bindparam("page_limit", type_=Integer))
        .offset(bindparam("page_offset", type_=Integer))
    )
    return sealing.with_live_keys(stmt)


def _query_shape(query: Query) -> tuple[object, ...]:
    """What decides a query's SQL: each match's kind, parameter and which values it binds."""
    return tuple(tuple(_match_shape(m) for m in clause) for clause in query)


def _match_shape(match: Match) -> tuple[object, ...]:
    names = tuple(_bound(match))
    if isinstance(match, IdMatch):
        return ("id", names)
    if isinstance(match, DateMatch):
        return ("date", match.name, match.prefix, names)
    return ("token", match.name, match.system_given, names)


def _query_values(query: Query) -> dict[str, Any]:
    """The bind parameters of `_page_statement` for this query's values."""
    return {
        f"q{i}_{j}_{name}": value
        for i, clause in enumerate(query)
        for j, match in enumerate(clause)
        for name, value in _bound(match).items()
    }


def _placeholders(key: str, match: Match) -> dict[str, Any]:
    return {name: bindparam(f"{key}_{name}", required=True) for name in _bound(match)}


@contextmanager
def planned_for_its_values(connection: Connection) -> Iterator[None]:
    """Statements run inside are never server-side prepared statements. psycopg prepares a
    statement it has run five times on a connection, and after five more runs PostgreSQL may
    plan it once for any values (a generic plan). How many rows a search value matches decides
    whether walking the page order or looking the value up first is right: a generic plan of a
    search page ignored it and ran ten times slower (3 ms -> 30 ms). Planning each run costs
    ~0.3 ms instead. Nothing to do on SQLite, which prepares nothing across statements."""
    driver: Any = connection.connection.driver_connection
    if not hasattr(driver, "prepare_threshold"):
        yield
        return
    threshold = driver.prepare_threshold
    driver.prepare_threshold = None
    try:
        yield
    finally:
        driver.prepare_threshold = threshold


def match_token(
    session: Session, principal: Principal, rtype: str, match: TokenMatch
) -> tuple[StoredResource | None, bool] | None:
    """A conditional create's or reference's one token match (`identifier=system|value`): the
    newest match, opened and out of the session as `search_page` gives it, and whether there are
    more; None when the match is of another shape (then use `search_page`). The same rows as
    `search_page` with that one match, tenancy inside the query; only the statement is built
    once, with bind parameters: building it per intake cost more client CPU than running it.
    It is never a server-side prepared statement (`Prepared(server_prepared=False)`, sent by the
    driver, planned for its values each time): PostgreSQL keeps a prepared statement's generic
    plan for the connection's life, and the bench's connections made it on nearly empty tables,
    so each match walked every Patient newest first and scanned search_index for each (4.4 ms a
    match at 20,000 Patients, and growing; 0.15 ms planned each time). Nothing re-plans it until
    an ANALYZE, and autovacuum can be off or behind."""
    if match.value is None or match.own_only is not None:
        return None
    if match.system_given and match.system is None:
        return None
    stmt = _token_statement(principal.system, match.system_given)
    params: dict[str, str | int | None] = {
        "rtype": rtype,
        "name": stored_name(rtype, match.name),
        "value": match.value,
        "org": principal.org_id,
        "two": 2,
    }
    if match.system_given:
        params["system"] = match.system
    connection = session.connection()
    found = stmt.rows(connection, params)
    opened = sealing.opened_resources(connection, found[:1])
    return (opened[0] if opened else None), len(found) > 1


@functools.cache
def _token_statement(system_caller: bool, with_system: bool) -> Prepared:
    """The resources with the value are looked up first, in a MATERIALIZED CTE that no plan
    folds into the page order: an identifier is rare by its nature, whatever the statistics say.
    Run planned for its values (`match_token`): a generic plan made while the tables were small
    scanned them whole for every match once they had grown."""
    rtype, org = bindparam("rtype", type_=String()), bindparam("org", type_=String())
    indexed = [
        SearchIndex.resource_type == rtype,
        SearchIndex.name == bindparam("name", type_=String()),
        SearchIndex.value == bindparam("value", type_=String()),
    ]
    if with_system:
        indexed.append(SearchIndex.system == bindparam("system", type_=String()))
    matched = (
        select(SearchIndex.resource_id)
        .where(*indexed)
        .distinct()
        .cte("matched")
        .prefix_with("MATERIALIZED")
    )
    where = [StoredResource.type == rtype]
    if not system_caller:  # as `readable`, the caller's organisation a parameter
        where.append(_visible_to(org))
    stmt = sealing.with_live_keys(
        select(*_RESOURCE_COLUMNS)
        .join(matched, matched.c.resource_id == StoredResource.id)
        .where(*where)
        .order_by(*_page_order(True))
        .limit(bindparam("two", 2, type_=Integer))
    )
    return Prepared(stmt, server_prepared=False)


def search_by_values(
    session: Session,
    principal: Principal,
    rtype: str,
    name: str,
    values: Sequence[str],
    query: Query,
    *,
    limit: int,
) -> dict[str, list[StoredResource]] | None:
    """`search` for several values of one token parameter in one statement: per value, the rows
    `search(rtype, [[TokenMatch(name, value)], *query])` finds, newest first, opened and out of
    the session. None when some value has `limit` rows or more (then search value by value, as
    the limit says) or when a row does not open (the per-value `search` fails on it)."""
    if not values:
        return {}
    index = aliased(SearchIndex)  # the query's own EXISTS clauses read search_index too
    stmt = sealing.with_live_keys(
        select(*_RESOURCE_COLUMNS, index.value.label("matched"))
        .join(
            index,
            and_(
                index.resource_id == StoredResource.id,
                index.resource_type == rtype,
                index.name == stored_name(rtype, name),
                index.value.in_(sorted(set(values))),
            ),
        )
        .where(
            StoredResource.type == rtype, readable(principal), *(_clause(rtype, c) for c in query)
        )
        .order_by(*_page_order(True))
    )
    connection = session.connection()
    found = connection.execute(stmt).all()
    opened = sealing.opened_resources(connection, found)
    if any(unreadable.is_unreadable(row) for row in opened):
        return None
    grouped: dict[str, list[StoredResource]] = {value: [] for value in values}
    for row, resource in zip(found, opened, strict=True):
        rows = grouped[row.matched]
        if not any(r.id == resource.id for r in rows):
            rows.append(resource)
    if any(len(rows) >= limit for rows in grouped.values()):
        return None
    return grouped


def _page_order(newest_first: bool) -> tuple[ColumnElement[Any], ...]:
    """Newest first, ties by id descending: the exact reverse of oldest first, so that either
    walks `ix_resource_type_updated` (type, last_updated, id) in order, forwards or backwards,
    and stops at the page's end instead of sorting every match."""
    updated, rid = StoredResource.last_updated, StoredResource.id
    return (updated.desc(), rid.desc()) if newest_first else (updated.asc(), rid.asc())


def read_many(session: Session, principal: Principal, refs: Iterable[Ref]) -> list[StoredResource]:
    """The readable rows among `refs`, as `search_page` (for a search's `_include`)."""
    wanted = {(ref.rtype, ref.id) for ref in refs}
    if not wanted:
        return []
    stmt = sealing.with_live_keys(
        select(*_RESOURCE_COLUMNS).where(
            StoredResource.id.in_({rid for _, rid in wanted}), readable(principal)
        )
    )
    connection = session.connection()
    found = [row for row in connection.execute(stmt) if (row.type, row.id) in wanted]
    return sealing.opened_resources(connection, found)


def find_by_token(
    session: Session,
    principal: Principal,
    rtype: str,
    name: str,
    system: str | None,
    value: str,
    limit: int = 2,
) -> list[StoredResource]:
    match = TokenMatch(name=name, value=value, system=system, system_given=system is not None)
    return search(session, principal, rtype, [[match]], limit=limit, offset=0)


def references_from(
    session: Session, rtype: str, resource_ids: Sequence[str], name: str
) -> list[Ref]:
    """The references of one reference parameter across some resources of `rtype` (for
    _include); a value that is not a local `Type/id` names nothing that could be included. A
    parameter stored as another's rows (`stored_name`: `patient` as `subject`) is the Patients
    among them."""
    if not resource_ids:
        return []
    stored = stored_name(rtype, name)
    stmt = select(SearchIndex.value).where(
        SearchIndex.resource_id.in_(resource_ids), SearchIndex.name == stored
    )
    refs = [ref for value in session.scalars(stmt) if value and (ref := _local_ref(value))]
    return refs if stored == name else [ref for ref in refs if ref.rtype == "Patient"]


def _local_ref(value: str) -> Ref | None:
    try:
        return Ref.parse(value)
    except ValueError:
        return None


def _clause(
    rtype: str, alternatives: Sequence[Match], values: Sequence[Mapping[str, Any]] | None = None
) -> ColumnElement[bool]:
    """`values`: what each match compares with, by `_bound`'s names; its own values if None."""
    bound = [_bound(m) for m in alternatives] if values is None else values
    return or_(false(), *(_match(rtype, m, v) for m, v in zip(alternatives, bound, strict=True)))


def _bound(match: Match) -> dict[str, Any]:
    """The values a match compares with, by name: the one list of them `_match` and a page's
    bind parameters (`_query_values`) both read, so the two cannot disagree."""
    if isinstance(match, IdMatch):
        return {"id": match.value}
    if isinstance(match, DateMatch):
        return {"start": match.start, "end": match.end}
    values: dict[str, Any] = {}
    if match.own_only is not None:
        values["own"] = match.own_only
    if match.value is not None:
        values["value"] = match.value
    if match.system_given and match.system is not None:
        values["system"] = match.system
    return values


def _match(rtype: str, match: Match, values: Mapping[str, Any]) -> ColumnElement[bool]:
    if isinstance(match, IdMatch):
        rid: str = values["id"]  # a str, or a bind parameter standing for one
        return StoredResource.id == rid
    if isinstance(match, DateMatch) and match.name == "_lastUpdated":
        col = StoredResource.last_updated
        return _date_condition(match, values, col, col)
    conditions: list[ColumnElement[bool]] = [
        SearchIndex.resource_id == StoredResource.id,
        SearchIndex.resource_type == rtype,
        SearchIndex.name == stored_name(rtype, match.name),
    ]
    if isinstance(match, TokenMatch):
        if "own" in values:
            conditions.append(StoredResource.org_id == values["own"])
        if "value" in values:
            conditions.append(SearchIndex.value == values["value"])
        if match.system_given:
            conditions.append(
                SearchIndex.system == values["system"]
                if "system" in values
                else SearchIndex.system.is_(None)
            )
    else:
        conditions.append(_date_condition(match, values, SearchIndex.start, SearchIndex.end))
    return exists().where(and_(*conditions))


def _date_condition(
    match: DateMatch,
    values: Mapping[str, Any],
    lo: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    hi: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
) -> ColumnElement[bool]:
    """FHIR date prefixes over ranges: stored value [lo, hi], search value [start, end]."""
    start, end = values["start"], values["end"]
    conditions: dict[str, ColumnElement[bool]] = {
        "eq": and_(lo >= start, hi <= end),
        "ne": not_(and_(lo >= start, hi <= end)),
        "gt": hi > end,
        "lt": lo < start,
        "ge": hi >= start,
        "le": lo <= end,
        "sa": lo > end,
        "eb": hi < start,
        "ap": and_(lo <= end, hi >= start),
    }
    return conditions[match.prefix]


def count(session: Session, principal: Principal, rtype: str, query: Query) -> int:
    stmt = (
        select(func.count())
        .select_from(StoredResource)
        .where(
            StoredResource.type == rtype, readable(principal), *(_clause(rtype, c) for c in query)
        )
    )
    with planned_for_its_values(session.connection()):
        return int(session.scalar(stmt) or 0)
