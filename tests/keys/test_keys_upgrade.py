"""Upgrading a database the previous release wrote (`spis migrate`, its own process, on
PostgreSQL): NHS-number index values are re-keyed per tenant in place and still find the patient,
versions learn their tenant, and bodies sealed in format 1 still open."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, text

from fhir_adapters.codes import NHS_NUMBER_SYSTEM
from referral_service.db import make_engine, make_sessionmaker
from referral_service.keys import ring
from referral_service.kit import envelope
from referral_service.kit.crypto import blind_index, tenant_blind_index
from referral_service.migrate import upgrade
from referral_service.store import sealing
from referral_service.store.models import ResourceVersion, StoredResource
from tests.conftest import TEST_KEK, new_database
from tests.fixtures.server import REPO_ROOT

NHS = "9434765919"
BLIND_KEY = secrets.token_urlsafe(48)
PREVIOUS = "20261125_0007"


@pytest.fixture
def old_database() -> Iterator[str]:
    """A database at the previous release's schema."""
    with new_database("spis_test_upgrade") as url:
        upgrade(url, PREVIOUS)
        yield url


def legacy_sealed(key: bytes, aad: bytes, plaintext: bytes) -> bytes:
    nonce = os.urandom(envelope.NONCE_BYTES)
    header = envelope.HEADER.pack(envelope.LEGACY_FORMAT, 1)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def write_as_previous_release(engine: Engine, orgs: list[str]) -> None:
    """Two practices with the same patient, as the previous release stored them."""
    data_key = envelope.new_data_key()
    old_index = blind_index(BLIND_KEY.encode(), "nhs-number", NHS)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO data_key (id, wrapped, created_at) VALUES (1, :w, :now)"),
            {"w": envelope.wrap(envelope.derive_kek(TEST_KEK), data_key), "now": now},
        )
        for n, org in enumerate(orgs):
            rid, body = f"pt-{n}", f'{{"resourceType":"Patient","id":"pt-{n}"}}'.encode()
            conn.execute(
                text(
                    "INSERT INTO organisation (id, kind, name, ods_code, created_at) "
                    "VALUES (:id, 'practice', 'Practice', :ods, :now)"
                ),
                {"id": org, "ods": f"F8{n}001", "now": now},
            )
            conn.execute(
                text(
                    "INSERT INTO resource (id, type, version_id, last_updated, org_id, body) "
                    "VALUES (:id, 'Patient', 2, :now, :org, :body)"
                ),
                {
                    "id": rid,
                    "org": org,
                    "now": now,
                    "body": legacy_sealed(data_key, sealing.legacy_resource_aad(rid, 2), body),
                },
            )
            for version in (1, 2):  # that release kept the current version here too
                conn.execute(
                    text(
                        "INSERT INTO resource_version (resource_id, version_id, last_updated, body)"
                        " VALUES (:id, :version, :now, :body)"
                    ),
                    {
                        "id": rid,
                        "version": version,
                        "now": now,
                        "body": legacy_sealed(
                            data_key, sealing.legacy_version_aad(rid, version), body
                        ),
                    },
                )
            conn.execute(
                text(
                    "INSERT INTO search_index (resource_id, resource_type, name, system, value) "
                    "VALUES (:id, 'Patient', 'identifier', :system, :value)"
                ),
                {"id": rid, "system": NHS_NUMBER_SYSTEM, "value": old_index},
            )


def spis_migrate(url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIS_")}
    env.update(
        {
            "SPIS_ENVIRONMENT": "test",
            "SPIS_DATABASE_URL": url,
            "SPIS_BLIND_INDEX_KEY": BLIND_KEY,
            "SPIS_KEK": TEST_KEK,
            "SPIS_VAR_DIR": str(tmp_path / "var"),
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "referral_service.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_upgrade_rekeys_the_index_per_tenant_and_old_bodies_still_open(
    old_database: str, tmp_path: Path
) -> None:
    orgs = [f"org-{secrets.token_hex(4)}" for _ in range(2)]
    engine = make_engine(old_database)
    try:
        write_as_previous_release(engine, orgs)
        spis_migrate(old_database, tmp_path)

        with engine.connect() as conn:
            index = dict(
                conn.execute(
                    text(
                        "SELECT r.org_id, i.value FROM search_index i "
                        "JOIN resource r ON r.id = i.resource_id"
                    )
                ).all()
            )
            versions = conn.execute(
                text(
                    "SELECT resource_id, version_id, org_id FROM resource_version"
                    " ORDER BY resource_id, version_id"
                )
            ).all()
        for org in orgs:  # what a search by this practice computes now
            assert index[org] == tenant_blind_index(BLIND_KEY.encode(), org, "nhs-number", NHS)
        assert index[orgs[0]] != index[orgs[1]]
        # The superseded versions, now naming their tenant; the current versions' copies are gone.
        assert versions == [("pt-0", 1, orgs[0]), ("pt-1", 1, orgs[1])]

        ring.register(engine, TEST_KEK)
        with make_sessionmaker(engine)() as session:
            assert b'"pt-0"' in session.get_one(StoredResource, "pt-0").body
            version = session.get_one(ResourceVersion, {"resource_id": "pt-1", "version_id": 1})
            assert b'"pt-1"' in version.body
    finally:
        engine.dispose()
