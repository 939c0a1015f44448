"""The data-key ring: unwrapped data keys cached per database, refreshed when a value names a key
this process has not seen or when the cache is older than REFRESH_S (so a rotation elsewhere is
picked up). The KEK for each database is registered by whoever builds its engine."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.exc import IntegrityError

from referral_service.keys.models import DataKey
from referral_service.kit import envelope

REFRESH_S = 60.0
_lock = threading.Lock()
_keks: dict[str, bytes] = {}
_rings: dict[str, tuple[float, dict[int, bytes]]] = {}


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def register(engine: Engine, kek_secret: str) -> None:
    with _lock:
        _keks[_name(engine)] = envelope.derive_kek(kek_secret)
        _rings.pop(_name(engine), None)


def _kek(connection: Connection) -> bytes:
    name = _name(connection.engine)
    if name not in _keks:
        from referral_service.config import get_settings  # the process's own configuration

        register(connection.engine, get_settings().kek.get_secret_value())
    return _keks[name]


def data_keys(connection: Connection, *, refresh: bool = False) -> dict[int, bytes]:
    name = _name(connection.engine)
    cached = _rings.get(name)
    if cached and not refresh and time.monotonic() - cached[0] < REFRESH_S:
        return cached[1]
    kek = _kek(connection)
    rows = connection.execute(select(DataKey.id, DataKey.wrapped)).all()
    keys = {int(key_id): envelope.unwrap(kek, wrapped) for key_id, wrapped in rows}
    with _lock:
        _rings[name] = (time.monotonic(), keys)
    return keys


def current(connection: Connection) -> tuple[int, bytes]:
    keys = data_keys(connection)
    if not keys:
        add_key(connection)
        keys = data_keys(connection, refresh=True)
    key_id = max(keys)
    return key_id, keys[key_id]


def add_key(connection: Connection) -> int:
    """A new current data key. Two processes racing for the same id: one wins, both use it."""
    known = data_keys(connection, refresh=True)
    key_id = max(known, default=0) + 1
    wrapped = envelope.wrap(_kek(connection), envelope.new_data_key())
    try:
        with connection.begin_nested():
            connection.execute(insert(DataKey).values(id=key_id, wrapped=wrapped))
    except IntegrityError:
        pass
    data_keys(connection, refresh=True)
    return key_id


def seal(connection: Connection, aad: bytes, plaintext: bytes) -> bytes:
    key_id, key = current(connection)
    return envelope.seal(key_id, key, plaintext, aad)


def open_value(connection: Connection, aad: bytes, sealed: bytes) -> bytes:
    key_id = envelope.key_id_of(sealed)
    keys = data_keys(connection)
    if key_id not in keys:
        keys = data_keys(connection, refresh=True)
    return envelope.open_sealed(keys[key_id], sealed, aad)
