"""Every query on the resource store. Tenancy is part of every read query (`readable`)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
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
    not_,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import (
    InstrumentedAttribute,
    Session,
    aliased,
)
from sqlalchemy.orm.attributes import set_committed_value

from referral_service.keys import ring
from referral_service.kit.refs import Ref
from referral_service.principal import Principal
from referral_service.store import sealing, unreadable, write_queue
from referral_service.store.models import (
    ResourceGrant,
    ResourceVersion,
    SearchIndex,
    StoredResource,
)


def readable(principal: Principal) -> ColumnElement[bool]:
    """Rows the caller may see at all: its own organisation's data, and what was shared with it."""
    if principal.system:
        return true()
    granted = exists().where(
        ResourceGrant.resource_id == StoredResource.id, ResourceGrant.org_id == principal.org_id
    )
    return or_(StoredResource.org_id == principal.org_id, granted)


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


def read(session: Session, principal: Principal, rtype: str, rid: str) -> StoredResource | None:
    """`get` for a read that changes nothing: one Core query that brings the live data keys too,
    and the row comes back out of the session (sealing.opened_resources); `Unreadable` when its
    body does not open."""
    stmt = sealing.with_live_keys(
        select(*_RESOURCE_COLUMNS).where(
            StoredResource.type == rtype, StoredResource.id == rid, readable(principal)
        )
    )
    connection = session.connection()
    found = sealing.opened_resources(connection, connection.execute(stmt).all())
    if any(unreadable.is_unreadable(row) for row in found):
        raise unreadable.Unreadable
    return found[0] if found else None


_RESOURCE_COLUMNS = (
    StoredResource.id,
    StoredResource.type,
    StoredResource.version_id,
    StoredResource.last_updated,
    StoredResource.org_id,
    StoredResource.body,
)


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


def versions(
    session: Session, principal: Principal, rtype: str, rid: str, version_id: int | None = None
) -> list[ResourceVersion]:
    """All versions (newest first), or the one asked for; empty when not visible; `Unreadable`
    when one of them does not open. A version is read under its resource's tenant only (its
    sealed body is bound to its own `org_id`)."""
    stmt = (
        select(ResourceVersion)
        .join(StoredResource, StoredResource.id == ResourceVersion.resource_id)
        .where(
            StoredResource.type == rtype,
            StoredResource.id == rid,
            ResourceVersion.org_id == StoredResource.org_id,
            readable(principal),
        )
        .order_by(ResourceVersion.version_id.desc())
    )
    if version_id is not None:
        stmt = stmt.where(ResourceVersion.version_id == version_id)
    found, bad = unreadable.split(session, session.scalars(stmt.execution_options(**_TOLERANT)))
    if bad:
        raise unreadable.Unreadable
    return found


def insert_resource(
    session: Session, row: StoredResource, index: Iterable[IndexRow], grants: Iterable[str] = ()
) -> None:
    """Queued, not sent (store/write_queue.py): a whole Bundle's rows go in one INSERT per table
    before the next statement, as the unit of work's autoflush would send them, for a fraction of
    its cost. Bodies are sealed here. The row joins the session as persistent, so that reading
    it back by id in this transaction (`session.get`) needs no query."""
    connection = session.connection()
    # Sealing may read the current key: a statement, which sends the queue. Seal, then queue.
    sealed = sealing.seal_resource(connection, row, row.version_id, row.body)
    version = _version_row(connection, row)
    queued = write_queue.queue(connection)
    queued.resources.append(
        {
            "id": row.id,
            "type": row.type,
            "version_id": row.version_id,
            "last_updated": row.last_updated,
            "org_id": row.org_id,
            "body": sealed,
        }
    )
    queued.versions.append(version)
    rows = _index_rows(row, index)
    queued.index.extend(rows)
    queued.grants.extend({"resource_id": row.id, "org_id": org} for org in sorted(set(grants)))
    write_queue.queued_version(session, row.type, row.id, rows)
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
    holds the new version (as a reload would, without one); its version and index rows are
    queued as `insert_resource` queues them."""
    version_id = row.version_id + 1
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
    version = _version_row(connection, row)
    queued = write_queue.queue(connection)
    queued.versions.append(version)
    rows = _index_rows(row, index)
    queued.index.extend(rows)
    write_queue.queued_version(session, row.type, row.id, rows)
    return True


def _version_row(connection: Connection, row: StoredResource) -> dict[str, object]:
    aad = sealing.version_aad(row.id, row.version_id, row.org_id)
    return {
        "resource_id": row.id,
        "version_id": row.version_id,
        "last_updated": row.last_updated,
        "org_id": row.org_id,
        "body": ring.seal(connection, aad, row.body),
    }


def _index_rows(row: StoredResource, index: Iterable[IndexRow]) -> list[dict[str, object]]:
    return [{"resource_id": row.id, "resource_type": row.type, **values} for values in index]


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
    stmt = sealing.with_live_keys(
        select(*_RESOURCE_COLUMNS)
        .where(
            StoredResource.type == rtype, readable(principal), *(_clause(rtype, c) for c in query)
        )
        .order_by(*_page_order(newest_first))
        .limit(count + 1)
        .offset(offset)
    )
    connection = session.connection()
    found = connection.execute(stmt).all()
    return sealing.opened_resources(connection, found[:count]), len(found) > count


def match_token(
    session: Session, principal: Principal, rtype: str, match: TokenMatch
) -> tuple[StoredResource | None, bool] | None:
    """A conditional create's or reference's one token match (`identifier=system|value`): the
    newest match, opened and out of the session as `search_page` gives it, and whether there are
    more; None when the match is of another shape (then use `search_page`). The same rows as
    `search_page` with that one match, tenancy inside the query; only the statement is built
    once, with bind parameters: building it per intake cost more client CPU than running it."""
    if match.value is None or match.own_only is not None:
        return None
    if match.system_given and match.system is None:
        return None
    stmt = _token_statement(principal.system, match.system_given)
    params: dict[str, str | None] = {
        "rtype": rtype,
        "name": match.name,
        "value": match.value,
        "org": principal.org_id,
    }
    if match.system_given:
        params["system"] = match.system
    connection = session.connection()
    found = connection.execute(stmt, params).all()
    opened = sealing.opened_resources(connection, found[:1])
    return (opened[0] if opened else None), len(found) > 1


@functools.cache
def _token_statement(system_caller: bool, with_system: bool) -> Select[Any]:
    rtype, org = bindparam("rtype", type_=String()), bindparam("org", type_=String())
    indexed = [
        SearchIndex.resource_id == StoredResource.id,
        SearchIndex.resource_type == rtype,
        SearchIndex.name == bindparam("name", type_=String()),
        SearchIndex.value == bindparam("value", type_=String()),
    ]
    if with_system:
        indexed.append(SearchIndex.system == bindparam("system", type_=String()))
    where = [StoredResource.type == rtype, exists().where(and_(*indexed))]
    if not system_caller:  # as `readable`, the caller's organisation a parameter
        granted = exists().where(
            ResourceGrant.resource_id == StoredResource.id, ResourceGrant.org_id == org
        )
        where.append(or_(StoredResource.org_id == org, granted))
    return sealing.with_live_keys(
        select(*_RESOURCE_COLUMNS).where(*where).order_by(*_page_order(True)).limit(2)
    )


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
                index.name == name,
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
    updated = StoredResource.last_updated
    return (updated.desc() if newest_first else updated.asc(), StoredResource.id.asc())


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


def references_from(session: Session, resource_ids: Sequence[str], name: str) -> list[Ref]:
    """The references of one reference parameter across some resources (for _include); a value
    that is not a local `Type/id` names nothing that could be included."""
    if not resource_ids:
        return []
    stmt = select(SearchIndex.value).where(
        SearchIndex.resource_id.in_(resource_ids), SearchIndex.name == name
    )
    return [ref for value in session.scalars(stmt) if value and (ref := _local_ref(value))]


def _local_ref(value: str) -> Ref | None:
    try:
        return Ref.parse(value)
    except ValueError:
        return None


def _clause(rtype: str, alternatives: Sequence[Match]) -> ColumnElement[bool]:
    return or_(false(), *(_match(rtype, m) for m in alternatives))


def _match(rtype: str, match: Match) -> ColumnElement[bool]:
    if isinstance(match, IdMatch):
        return StoredResource.id == match.value
    if isinstance(match, DateMatch) and match.name == "_lastUpdated":
        col = StoredResource.last_updated
        return _date_condition(match, col, col)
    conditions: list[ColumnElement[bool]] = [
        SearchIndex.resource_id == StoredResource.id,
        SearchIndex.resource_type == rtype,
        SearchIndex.name == match.name,
    ]
    if isinstance(match, TokenMatch):
        if match.own_only is not None:
            conditions.append(StoredResource.org_id == match.own_only)
        if match.value is not None:
            conditions.append(SearchIndex.value == match.value)
        if match.system_given:
            conditions.append(
                SearchIndex.system.is_(None)
                if match.system is None
                else SearchIndex.system == match.system
            )
    else:
        conditions.append(_date_condition(match, SearchIndex.start, SearchIndex.end))
    return exists().where(and_(*conditions))


def _date_condition(
    match: DateMatch,
    lo: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
    hi: InstrumentedAttribute[datetime] | InstrumentedAttribute[datetime | None],
) -> ColumnElement[bool]:
    """FHIR date prefixes over ranges: stored value [lo, hi], search value [start, end]."""
    start, end = match.start, match.end
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
    return int(session.scalar(stmt) or 0)
