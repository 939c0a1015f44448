"""Sealing a text column that may be empty (a person's TOTP secrets).

The same envelope as `store.sealing.seal_text` (AES-256-GCM under the current data key, bound to
the table, column, row and owner columns, registered with `keys.sealed` so rotation re-seals it),
except that None stays NULL: a person without a second factor has no secret to seal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import Mapper, QueryContext
from sqlalchemy.orm.attributes import set_committed_value

from referral_service.keys import ring, sealed
from referral_service.store.sealing import bound
from referral_service.store.unreadable import tolerant


def seal_optional_text(model: type[Any], attribute: str, *owners: str) -> None:
    table = model.__tablename__
    plain_key = f"_spis_plain_{attribute}"

    def aad(target: Any) -> bytes:
        fields = {name: getattr(target, name) for name in ("id", *owners)}
        return bound(table=table, column=attribute, **fields)

    def before(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
        plain = getattr(target, attribute)
        if isinstance(plain, str):
            target.__dict__[plain_key] = plain
            setattr(target, attribute, ring.seal(connection, aad(target), plain.encode()))

    def after(_mapper: Mapper[Any], _connection: Connection, target: Any) -> None:
        if plain_key in target.__dict__:
            set_committed_value(target, attribute, target.__dict__.pop(plain_key))

    def opened(target: Any, context: QueryContext, attrs: Iterable[str] | None = None) -> None:
        if attrs is not None and attribute not in attrs:
            return  # a refresh of other columns: this one is already open
        value = target.__dict__.get(attribute)
        if context.session is not None and isinstance(value, bytes):
            connection = context.session.connection()
            # No value was ever sealed in the older format: its associated data is the same.
            plain = ring.open_value(connection, aad(target), value, aad(target)).decode()
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
