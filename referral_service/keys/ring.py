"""The data-key ring.

Which key is current is read from the database once per transaction (one indexed row, the
highest live key id) and never cached across transactions, so a rotation made by any process is
seen by every other process's next transaction. Reading it takes a FOR KEY SHARE lock on that
key's row until the transaction ends. Such locks never wait for each other, so sealing
transactions run side by side. Retiring a key (`lock_older_keys`, then `retire`) takes FOR UPDATE
on it, so it waits for every transaction that may still seal under it. Unwrapped key material is
cached per process (a key id always names the same key); which keys are still live is also read
once per transaction (by a read, in the same statement as the rows it opens: `live_ids_column`).

The KEK for each database is registered by whoever builds its engine.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    ScalarSelect,
    String,
    bindparam,
    cast,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from referral_service.keys.models import DataKey
from referral_service.kit import envelope
from referral_service.kit.clock import utcnow
from referral_service.kit.prepared import Prepared

_lock = threading.Lock()
_keks: dict[str, bytes] = {}
_material: dict[str, dict[int, bytes]] = {}
# The AESGCM of each unwrapped key, by (database, key id): made once, as the key material is
# unwrapped once. An AESGCM holds only its key; each decrypt is independent (thread-safe).
_ciphers: dict[tuple[str, int], AESGCM] = {}
# Per-transaction facts kept on the connection; cleared whenever a transaction begins or ends.
_CURRENT = "spis_current_data_key"
_LIVE = "spis_live_data_keys"


@event.listens_for(Engine, "begin")
@event.listens_for(Engine, "commit")
@event.listens_for(Engine, "rollback")
def _forget(connection: Connection, *_: Any) -> None:
    if connection.invalidated:
        # A dropped connection is discarded with what it knew; touching it would raise an error
        # that hides the OperationalError the caller must see (503, or a job retried).
        return
    connection.info.pop(_CURRENT, None)
    connection.info.pop(_LIVE, None)


# Rendering an engine's URL costs more than opening a value: each engine's is kept.
_names: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _name(engine: Engine) -> str:
    name = _names.get(engine)
    if name is None:
        name = _names[engine] = engine.url.render_as_string(hide_password=False)
    return name


def register(engine: Engine, kek_secret: str) -> None:
    with _lock:
        _keks[_name(engine)] = envelope.derive_kek(kek_secret)
        _material.pop(_name(engine), None)
        for known in [k for k in _ciphers if k[0] == _name(engine)]:
            del _ciphers[known]


def _kek(connection: Connection) -> bytes:
    try:
        return _keks[_name(connection.engine)]
    except KeyError:
        # Never guessed from the environment: the process that opened the database says which
        # KEK it runs with (db.open_database; the migration environment for `spis migrate`).
        raise RuntimeError(
            "no KEK is registered for this database engine: open it with db.open_database"
        ) from None


def _key(connection: Connection, key_id: int) -> bytes:
    """The unwrapped key; KeyError when no such key exists."""
    name = _name(connection.engine)
    known = _material.get(name, {})
    if key_id not in known:
        wrapped = connection.scalar(select(DataKey.wrapped).where(DataKey.id == key_id))
        if wrapped is None:
            raise KeyError(key_id)
        unwrapped = envelope.unwrap(_kek(connection), wrapped)
        with _lock:
            _material.setdefault(name, {})[key_id] = unwrapped
        return unwrapped
    return known[key_id]


# Every transaction that seals asks once; built once and sent by the driver (kit/prepared.py):
# building and executing it through SQLAlchemy cost about five times what it costs PostgreSQL.
_READ_CURRENT = Prepared(
    select(DataKey.id)
    .where(DataKey.retired_at.is_(None))
    .order_by(DataKey.id.desc())
    .limit(bindparam("one", type_=Integer()))
    .with_for_update(read=True, key_share=True)
)


def _read_current(connection: Connection) -> int | None:
    found = _READ_CURRENT.rows(connection, {"one": 1})
    return int(found[0][0]) if found else None


def current_id(connection: Connection) -> int:
    """The key new values are sealed under in this transaction (the first key is made on first
    use). After a concurrent retirement the locked row may drop out: read again."""
    cached: int | None = connection.info.get(_CURRENT)
    if cached is not None:
        return cached
    key_id = _read_current(connection)
    for _ in range(3):
        if key_id is not None:
            break
        if connection.scalar(select(DataKey.id).limit(1)) is None:
            add_key(connection)
        key_id = _read_current(connection)
    if key_id is None:
        raise RuntimeError("no live data key could be read")
    connection.info[_CURRENT] = key_id
    return key_id


def current(connection: Connection) -> tuple[int, bytes]:
    key_id = current_id(connection)
    return key_id, _key(connection, key_id)


def live_ids(connection: Connection, *, refresh: bool = False) -> frozenset[int]:
    cached: frozenset[int] | None = None if refresh else connection.info.get(_LIVE)
    if cached is None:
        cached = frozenset(
            connection.scalars(select(DataKey.id).where(DataKey.retired_at.is_(None)))
        )
        connection.info[_LIVE] = cached
    return cached


def live_ids_column() -> ScalarSelect[str | None]:
    """The live key ids as one value (`"1,2"`), to select beside the rows a read opens, then hand
    to `note_live`: the read learns which keys are live in the same statement, and saves the
    round trip `live_ids` would make. Uncorrelated: evaluated once per statement."""
    listed = func.aggregate_strings(cast(DataKey.id, String), ",")
    return select(listed).where(DataKey.retired_at.is_(None)).scalar_subquery()


def note_live(connection: Connection, listed: str | None) -> None:
    """What `live_ids_column` read, as this transaction's live keys."""
    connection.info[_LIVE] = live_listed(listed)


def add_key(connection: Connection) -> int:
    """A new current data key. Two processes racing for the same id: one wins, both use it."""
    key_id = int(connection.scalar(select(DataKey.id).order_by(DataKey.id.desc()).limit(1)) or 0)
    key_id += 1
    wrapped = envelope.wrap(_kek(connection), envelope.new_data_key())
    try:
        with connection.begin_nested():
            connection.execute(insert(DataKey).values(id=key_id, wrapped=wrapped))
    except IntegrityError:
        pass
    _forget(connection)
    return key_id


def lock_older_keys(connection: Connection, current_key: int) -> list[int]:
    """Wait for every transaction that read an older key as current to end, and keep them from
    being read as current again until this transaction ends."""
    stmt = (
        select(DataKey.id)
        .where(DataKey.id < current_key, DataKey.retired_at.is_(None))
        .order_by(DataKey.id)
        .with_for_update()
    )
    return list(connection.scalars(stmt))


def retire(connection: Connection, key_ids: list[int]) -> None:
    if key_ids:
        connection.execute(
            update(DataKey).where(DataKey.id.in_(key_ids)).values(retired_at=utcnow())
        )
    _forget(connection)


def seal(connection: Connection, aad: bytes, plaintext: bytes) -> bytes:
    """Under the current key, with its AESGCM set up once (`_cipher`, as the reads open): making
    one for each value cost more than sealing a resource body with it (4.3 µs against 1.9 for
    1.2 kB; a batch of 100 questionnaires seals 400)."""
    key_id = current_id(connection)
    return envelope.seal_with(key_id, _cipher(connection, key_id), plaintext, aad)


def open_value(connection: Connection, aad: bytes, sealed: bytes, legacy_aad: bytes) -> bytes:
    """Open a value with the associated data of its format (`legacy_aad` for values sealed
    before the tenant was bound). Raises InvalidTag, like any value that fails its integrity
    check, for a value under a retired key: everything was re-sealed before a key was retired,
    so such a value was copied in from elsewhere (an old backup, another database)."""
    key_id = envelope.key_id_of(sealed)
    # A key made by a rotation after this transaction first looked is live too: look again.
    if key_id not in live_ids(connection) and key_id not in live_ids(connection, refresh=True):
        raise InvalidTag
    return _opened(_cipher(connection, key_id), sealed, aad, legacy_aad)


def open_known(
    engine: Engine, live: frozenset[int], aad: bytes, sealed: bytes, legacy_aad: bytes
) -> bytes | None:
    """`open_value` without a connection (the async reads, db.AsyncReads): None when it would need
    one, because the value's key is not among `live` (the live keys its statement read) or its
    material is not yet in this process's cache. Raises InvalidTag as `open_value` does."""
    key_id = envelope.key_id_of(sealed)
    if key_id not in live:
        return None
    name = _name(engine)
    cipher = _ciphers.get((name, key_id))
    if cipher is None:
        key = _material.get(name, {}).get(key_id)
        if key is None:
            return None
        cipher = _remembered(name, key_id, key)
    return _opened(cipher, sealed, aad, legacy_aad)


def _cipher(connection: Connection, key_id: int) -> AESGCM:
    """The key's AESGCM (`_key`'s material, set up once); KeyError when no such key exists."""
    name = _name(connection.engine)
    cipher = _ciphers.get((name, key_id))
    return cipher if cipher is not None else _remembered(name, key_id, _key(connection, key_id))


def _remembered(name: str, key_id: int, key: bytes) -> AESGCM:
    cipher = AESGCM(key)
    with _lock:
        _ciphers[(name, key_id)] = cipher
    return cipher


def _opened(cipher: AESGCM, sealed: bytes, aad: bytes, legacy_aad: bytes) -> bytes:
    """With the associated data of the value's format (`legacy_aad` before the tenant was bound)."""
    legacy = envelope.format_of(sealed) == envelope.LEGACY_FORMAT
    return envelope.open_with(cipher, sealed, legacy_aad if legacy else aad)


def live_listed(listed: str | None) -> frozenset[int]:
    """The key ids `live_ids_column` read."""
    return frozenset(int(key_id) for key_id in (listed or "").split(",") if key_id)
