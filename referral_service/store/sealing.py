"""Resource bodies are sealed at rest: the ORM and the repository see plaintext, the database only
ciphertext. Associated data binds each value to its table, row, version and tenant (the
organisation whose data it is, which decides who may read it), so a body copied into another row
(or another version of the same row), or a row moved to another organisation, fails to decrypt.
Grants are not bound: see docs/security.md, "At rest"."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, event
from sqlalchemy.orm import Mapper, QueryContext
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class

from referral_service.keys import ring, sealed
from referral_service.store.models import ResourceVersion, StoredResource
from referral_service.store.unreadable import OPEN_ERRORS, log_failure, mark, tolerant


def bound(**fields: object) -> bytes:
    """Associated data naming what a value belongs to; unambiguous, because ids, types, numbers
    and names never contain NUL."""
    return b"\x00".join(f"{name}={value}".encode() for name, value in fields.items())


def resource_aad(resource_id: str, rtype: str, version_id: int, tenant: str) -> bytes:
    """`bound(table="resource", id=..., type=..., version=..., tenant=...)`, written out: it is
    made for every row a read opens (50 a search page), at a fifth of `bound`'s cost."""
    return (
        f"table=resource\x00id={resource_id}\x00type={rtype}\x00version={version_id}"
        f"\x00tenant={tenant}"
    ).encode()


def version_aad(resource_id: str, version_id: int, tenant: str) -> bytes:
    """`bound(table="resource_version", id=..., version=..., tenant=...)`, written out as
    `resource_aad` is: every resource written makes one (0.5 µs against 3.3)."""
    return (
        f"table=resource_version\x00id={resource_id}\x00version={version_id}\x00tenant={tenant}"
    ).encode()


def legacy_resource_aad(resource_id: str, version_id: int) -> bytes:
    """Format 1 (before the tenant was bound): still opens until re-encryption re-seals it."""
    return f"resource:body:{resource_id}:{version_id}".encode()


def legacy_version_aad(resource_id: str, version_id: int) -> bytes:
    return f"resource_version:body:{resource_id}:{version_id}".encode()


def seal_resource(
    connection: Connection, row: StoredResource, version_id: int, body: bytes
) -> bytes:
    """For the repository's Core UPDATE, which bypasses the ORM events below."""
    return ring.seal(connection, resource_aad(row.id, row.type, version_id, row.org_id), body)


# -- reads without the ORM's load events ----------------------------------------------------------

LIVE_KEYS = "spis_live_keys"


def with_live_keys(stmt: Select[*tuple[Any, ...]]) -> Select[*tuple[Any, ...]]:
    """A Core select of resource columns, plus the live data keys (`ring.live_ids_column`), so that
    opening the rows it finds costs no query of its own."""
    return stmt.add_columns(ring.live_ids_column().label(LIVE_KEYS))


def opened_resources(
    connection: Connection, found: Sequence[Sequence[Any]]
) -> list[StoredResource]:
    """The rows of a `with_live_keys` select of `resource` (its columns id, type, version_id,
    last_updated, org_id, body in this order, then the live keys: SQLAlchemy rows or the driver's
    tuples) as StoredResources with their bodies opened. They are never in the session (nothing
    to load, flush or expire: for reads only). A body that does not open is logged, and its row
    comes back marked (`unreadable.is_unreadable`) with no body, as a tolerant ORM load leaves
    it."""
    if found:
        ring.note_live(connection, found[0][-1])
    return [_opened(connection, row) for row in found]


def _opened(connection: Connection, found: Sequence[Any]) -> StoredResource:
    values, sealed_body, aad, legacy = _resource_parts(found)
    return _loaded(connection, _new_resource(), values, sealed_body, aad, legacy)


def opened_resources_known(
    engine: Engine, found: Sequence[Sequence[Any]]
) -> list[StoredResource] | None:
    """`opened_resources` without a connection (the async reads): None, and nothing logged, when
    a row would need one (its key is not cached: `ring.open_known`) or does not open; the caller
    then reads them the ordinary way, which fetches the key, or logs and marks the row."""
    if not found:
        return []
    live = ring.live_listed(found[0][-1])
    rows = []
    for each in found:
        values, sealed_body, aad, legacy = _resource_parts(each)
        try:
            body = ring.open_known(engine, live, aad, sealed_body, legacy)
        except OPEN_ERRORS:
            return None
        if body is None:
            return None
        row = _new_resource()
        row.__dict__.update(values, body=body)
        rows.append(row)
    return rows


def _resource_parts(found: Sequence[Any]) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    rid, rtype, version_id, last_updated, tenant, sealed_body = found[:6]
    values = {
        "id": rid,
        "type": rtype,
        "version_id": version_id,
        "last_updated": last_updated,
        "org_id": tenant,
    }
    aad = resource_aad(rid, rtype, version_id, tenant)
    return values, sealed_body, aad, legacy_resource_aad(rid, version_id)


def opened_versions(
    connection: Connection, found: Sequence[Sequence[Any]]
) -> list[ResourceVersion]:
    """`opened_resources` for a `with_live_keys` select of `resource_version` (its columns
    resource_id, version_id, last_updated, org_id, body in this order, then the live keys)."""
    if found:
        ring.note_live(connection, found[0][-1])
    return [_opened_version(connection, row) for row in found]


def _opened_version(connection: Connection, found: Sequence[Any]) -> ResourceVersion:
    rid, version_id, last_updated, tenant, sealed_body = found[:5]
    values = {
        "resource_id": rid,
        "version_id": version_id,
        "last_updated": last_updated,
        "org_id": tenant,
    }
    aad = version_aad(rid, version_id, tenant)
    legacy = legacy_version_aad(rid, version_id)
    return _loaded(connection, _new_version(), values, sealed_body, aad, legacy)


# Instances made as an ORM load makes them: no __init__, no change events, the values put
# straight into the instance's dict (several times cheaper than the constructor).
_new_resource = manager_of_class(StoredResource).new_instance
_new_version = manager_of_class(ResourceVersion).new_instance
Loaded = TypeVar("Loaded", StoredResource, ResourceVersion)


def _loaded(
    connection: Connection,
    row: Loaded,
    values: dict[str, Any],
    sealed_body: bytes,
    aad: bytes,
    legacy_aad: bytes,
) -> Loaded:
    row.__dict__.update(values, body=sealed_body)
    try:
        row.__dict__["body"] = ring.open_value(connection, aad, sealed_body, legacy_aad)
    except OPEN_ERRORS as exc:
        log_failure(row, exc)
        mark(row, "body")
    return row


def _aad(target: StoredResource | ResourceVersion) -> bytes:
    if isinstance(target, StoredResource):
        return resource_aad(target.id, target.type, target.version_id, target.org_id)
    return version_aad(target.resource_id, target.version_id, target.org_id)


def _legacy_aad(target: StoredResource | ResourceVersion) -> bytes:
    if isinstance(target, StoredResource):
        return legacy_resource_aad(target.id, target.version_id)
    return legacy_version_aad(target.resource_id, target.version_id)


def _seal(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    target.__dict__["_spis_plain"] = target.body
    target.body = ring.seal(connection, _aad(target), target.body)


def _restore(_mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
    set_committed_value(target, "body", target.__dict__.pop("_spis_plain"))


def _open(target: Any, context: QueryContext, *_: Any) -> None:
    connection = context.session.connection() if context.session is not None else None
    sealed = target.__dict__.get("body")
    if connection is not None and sealed is not None:
        plain = ring.open_value(connection, _aad(target), sealed, _legacy_aad(target))
        set_committed_value(target, "body", plain)


for model in (StoredResource, ResourceVersion):
    event.listen(model, "before_insert", _seal)
    event.listen(model, "before_update", _seal)
    event.listen(model, "after_insert", _restore)
    event.listen(model, "after_update", _restore)
    event.listen(model, "load", tolerant(_open, "body"))
    event.listen(model, "refresh", tolerant(_open, "body"))
    sealed.register(model, "body")


def seal_text(model: type[Any], attribute: str, *owners: str) -> None:
    """Seal one text attribute of another model the same way (a name, a free-text description):
    the ORM sees the string, the database a value bound to its table, attribute and id and to the
    `owners` columns (the tenant's `org_id`, a listing's member). None stays NULL."""
    table = model.__tablename__

    def aad(target: Any) -> bytes:
        fields = {name: getattr(target, name) for name in ("id", *owners)}
        return bound(table=table, column=attribute, **fields)

    def legacy_aad(target: Any) -> bytes:
        return f"{table}:{attribute}:{target.id}".encode()

    def before(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
        plain = getattr(target, attribute)
        if plain is None:  # an optional text left empty: NULL, nothing to seal
            return
        target.__dict__[f"_spis_plain_{attribute}"] = plain
        setattr(target, attribute, ring.seal(connection, aad(target), plain.encode()))

    def after(_mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
        key = f"_spis_plain_{attribute}"
        if key in target.__dict__:
            set_committed_value(target, attribute, target.__dict__.pop(key))

    def opened(target: Any, context: QueryContext, attrs: Iterable[str] | None = None) -> None:
        if attrs is not None and attribute not in attrs:
            return  # a refresh of other columns: this one is already open
        sealed = target.__dict__.get(attribute)
        if context.session is not None and isinstance(sealed, bytes):
            connection = context.session.connection()
            plain = ring.open_value(connection, aad(target), sealed, legacy_aad(target)).decode()
            set_committed_value(target, attribute, plain)

    for name, handler in (
        ("before_insert", before),
        ("before_update", before),
        ("after_insert", after),
        ("after_update", after),
        ("load", tolerant(opened, attribute)),
        ("refresh", tolerant(opened, attribute)),
    ):
        event.listen(model, name, handler)
    sealed.register(model, attribute)
