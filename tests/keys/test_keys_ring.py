"""The key ring within one transaction: a rotation committed meanwhile by another process does not
make its new values unreadable, and which key seals is decided once per transaction."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.keys import ring
from referral_service.keys.service import rotate
from referral_service.store.models import StoredResource
from tests.fixtures.referrals import make_referral
from tests.fixtures.systems import TestSystem


def test_a_transaction_reads_values_sealed_under_a_key_made_after_it_began(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    first = make_referral(client, practice_headers, practice.org_id, referral_id="R-1")
    with session_factory() as reader:
        assert b"Okafor" in reader.get_one(StoredResource, first.patient.split("/")[1]).body
        sealing_key = ring.current_id(reader.connection())
        with session_factory() as other, other.begin():
            rotate(other)
        second = make_referral(
            client, practice_headers, practice.org_id, referral_id="R-2", nhs_number="9000000009"
        )
        # same transaction: still sealing under the key it read, yet the new key's values open
        assert ring.current_id(reader.connection()) == sealing_key
        assert b"Okafor" in reader.get_one(StoredResource, second.patient.split("/")[1]).body
    with session_factory() as later:
        assert ring.current_id(later.connection()) == sealing_key + 1


def test_transactions_sealing_at_once_do_not_wait_for_each_other(
    session_factory: sessionmaker[Session],
) -> None:
    """Reading the current key shares its row (FOR KEY SHARE): a second sealing transaction
    reads it at once while the first is still open. Only retirement (FOR UPDATE) waits."""
    with session_factory() as made, made.begin():
        key_id = ring.current_id(made.connection())  # the first key, made on first use
    with session_factory() as first, session_factory() as second:
        assert ring.current_id(first.connection()) == key_id
        second.execute(text("SET LOCAL lock_timeout = '2s'"))
        assert ring.current_id(second.connection()) == key_id
        with session_factory() as retiring:
            retiring.execute(text("SET LOCAL lock_timeout = '200ms'"))
            with pytest.raises(OperationalError, match="lock timeout"):
                ring.lock_older_keys(retiring.connection(), key_id + 1)


def test_a_value_opens_without_a_connection_only_under_a_live_key_this_process_holds(
    pg_engine: Engine, session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`open_known` (the async reads): the value, or None where `open_value` would need the
    database (a key not cached here, or not among the live keys the read found)."""
    with session_factory() as session, session.begin():
        key_id = ring.current_id(session.connection())
        sealed = ring.seal(session.connection(), b"aad", b"plain")  # caches the key's material
    live = frozenset({key_id})
    assert ring.open_known(pg_engine, live, b"aad", sealed, b"old") == b"plain"
    assert ring.open_known(pg_engine, frozenset({key_id + 1}), b"aad", sealed, b"old") is None
    with pytest.raises(InvalidTag):
        ring.open_known(pg_engine, live, b"other", sealed, b"old")
    monkeypatch.setattr(ring, "_material", {})
    monkeypatch.setattr(ring, "_ciphers", {})
    assert ring.open_known(pg_engine, live, b"aad", sealed, b"old") is None


def test_each_key_is_set_up_once_and_forgotten_with_its_kek(
    session_factory: sessionmaker[Session],
) -> None:
    """Opening a value uses the key's AESGCM made the first time (ring._cipher), the same one for
    every later value under that key; registering the database's KEK again forgets it, as it
    forgets the unwrapped key, so that no value opens under key material of the old KEK."""
    from referral_service.kit import envelope
    from tests.conftest import TEST_KEK

    with session_factory() as session:
        connection = session.connection()
        # Earlier tests' databases had keys of the same ids (the process keeps their material).
        ring.register(connection.engine, TEST_KEK)
        key_id, key = ring.current(connection)
        aad = b"table=test\x00id=1"
        sealed = envelope.seal(key_id, key, b"plain", aad)
        assert ring.open_value(connection, aad, sealed, b"legacy") == b"plain"
        cipher = ring._cipher(connection, key_id)
        assert ring.open_value(connection, aad, sealed, b"legacy") == b"plain"
        assert ring._cipher(connection, key_id) is cipher
        with pytest.raises(InvalidTag):  # the associated data still decides, as before
            ring.open_value(connection, b"table=test\x00id=2", sealed, b"legacy")
        engine = connection.engine
        ring.register(engine, TEST_KEK)
        assert not [k for k in ring._ciphers if k[0] == ring._name(engine)]
        assert ring.open_value(connection, aad, sealed, b"legacy") == b"plain"
        assert ring._cipher(connection, key_id) is not cipher


def test_the_resource_associated_data_is_the_bound_fields() -> None:
    """`resource_aad` and `version_aad`, written out for speed, are byte for byte what `bound`
    makes: values sealed before they were written out still open."""
    from referral_service.store.sealing import bound, resource_aad, version_aad

    for rid, rtype, version, tenant in [
        ("a1", "Task", 1, "org-1"),
        ("0b9c-x.y", "Patient", 1234567, "5c1e8a0e-9d7b-4c55-9a43-2f1f3b0e8d11"),
    ]:
        expected = bound(table="resource", id=rid, type=rtype, version=version, tenant=tenant)
        assert resource_aad(rid, rtype, version, tenant) == expected
        in_version = bound(table="resource_version", id=rid, version=version, tenant=tenant)
        assert version_aad(rid, version, tenant) == in_version


def test_sealing_uses_the_current_keys_one_cipher_with_a_fresh_nonce_each_time(
    session_factory: sessionmaker[Session],
) -> None:
    """`ring.seal` seals with the current key's AESGCM made once (`_cipher`), forgotten with the
    KEK as the reads' is: what it seals opens with the key material itself, under its associated
    data only, and two seals of one value differ (a nonce each)."""
    from referral_service.kit import envelope
    from tests.conftest import TEST_KEK

    with session_factory() as session:
        connection = session.connection()
        ring.register(connection.engine, TEST_KEK)
        key_id, key = ring.current(connection)
        aad = b"table=test\x00id=3"
        first, second = ring.seal(connection, aad, b"plain"), ring.seal(connection, aad, b"plain")
        cipher = ring._cipher(connection, key_id)
        assert envelope.key_id_of(first) == key_id
        assert first != second
        assert envelope.open_sealed(key, first, aad) == envelope.open_sealed(key, second, aad)
        assert envelope.open_sealed(key, first, aad) == b"plain"
        with pytest.raises(InvalidTag):
            envelope.open_sealed(key, first, b"table=test\x00id=4")
        ring.seal(connection, aad, b"again")
        assert ring._cipher(connection, key_id) is cipher
        ring.register(connection.engine, TEST_KEK)
        assert envelope.open_sealed(key, ring.seal(connection, aad, b"later"), aad) == b"later"
        assert ring._cipher(connection, key_id) is not cipher
