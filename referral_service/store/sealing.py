"""Resource bodies are sealed at rest: the ORM and the repository see plaintext, the database only
ciphertext. Associated data binds each value to its table, row and version, so a body copied into
another row (or another version of the same row) fails to decrypt."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import Mapper, QueryContext
from sqlalchemy.orm.attributes import set_committed_value

from referral_service.keys import ring
from referral_service.store.models import ResourceVersion, StoredResource
from referral_service.store.unreadable import tolerant


def resource_aad(resource_id: str, version_id: int) -> bytes:
    return f"resource:body:{resource_id}:{version_id}".encode()


def version_aad(resource_id: str, version_id: int) -> bytes:
    return f"resource_version:body:{resource_id}:{version_id}".encode()


def seal_resource(connection: Connection, resource_id: str, version_id: int, body: bytes) -> bytes:
    """For the repository's Core UPDATE, which bypasses the ORM events below."""
    return ring.seal(connection, resource_aad(resource_id, version_id), body)


def _aad(target: StoredResource | ResourceVersion) -> bytes:
    if isinstance(target, StoredResource):
        return resource_aad(target.id, target.version_id)
    return version_aad(target.resource_id, target.version_id)


def _seal(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    target.__dict__["_spis_plain"] = target.body
    target.body = ring.seal(connection, _aad(target), target.body)


def _restore(_mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
    set_committed_value(target, "body", target.__dict__.pop("_spis_plain"))


def _open(target: Any, context: QueryContext, *_: Any) -> None:
    connection = context.session.connection() if context.session is not None else None
    if connection is not None and target.__dict__.get("body") is not None:
        set_committed_value(target, "body", ring.open_value(connection, _aad(target), target.body))


for model in (StoredResource, ResourceVersion):
    event.listen(model, "before_insert", _seal)
    event.listen(model, "before_update", _seal)
    event.listen(model, "after_insert", _restore)
    event.listen(model, "after_update", _restore)
    event.listen(model, "load", tolerant(_open, "body"))
    event.listen(model, "refresh", tolerant(_open, "body"))


def seal_text(model: type[Any], attribute: str) -> None:
    """Seal one text attribute of another model the same way (a name, a free-text description):
    the ORM sees the string, the database a value bound to `<table>:<attribute>:<id>`."""
    table = model.__tablename__

    def aad(target: Any) -> bytes:
        return f"{table}:{attribute}:{target.id}".encode()

    def before(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
        plain = getattr(target, attribute)
        target.__dict__[f"_spis_plain_{attribute}"] = plain
        setattr(target, attribute, ring.seal(connection, aad(target), plain.encode()))

    def after(_mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
        set_committed_value(target, attribute, target.__dict__.pop(f"_spis_plain_{attribute}"))

    def opened(target: Any, context: QueryContext, *_: Any) -> None:
        sealed = target.__dict__.get(attribute)
        if context.session is not None and sealed is not None:
            plain = ring.open_value(context.session.connection(), aad(target), sealed).decode()
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
