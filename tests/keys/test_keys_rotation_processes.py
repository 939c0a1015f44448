"""Key rotation across processes: `spis keys rotate` from the command line while a separate
`spis serve` keeps taking writes over HTTP and a separate Celery worker (Redis) re-encrypts.

Afterwards the database itself is inspected: no value is left under the retired key, whichever
process wrote it and whenever, and `spis keys status` says so."""

from __future__ import annotations

import json
import os
import secrets
import struct
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.embedded import worker_env
from referral_service.organisations.models import OrgKind
from tests.conftest import TEST_KEK
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.server import REPO_ROOT, access_token, referral_bundles, running_server
from tests.fixtures.systems import TestSystem, register_system
from tests.integration.conftest import BROKER_URL, Worker, wait_for

pytestmark = pytest.mark.slow

SEALED_COLUMNS = (
    ("resource", "body"),
    ("resource_version", "body"),
    ("ledger_member", "alias"),
    ("ledger_offer", "description"),
    ("ledger_request", "description"),
)
BATCH = 25
BEFORE = 60  # referrals taken in before the rotation


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    """What the API, the worker and the command line share: database, broker, queue, secrets."""
    return Settings(
        environment="test",
        database_url=pg_url,
        broker_url=BROKER_URL,
        queue=f"spis-test-{secrets.token_hex(4)}",
        var_dir=tmp_path / "var",
        kek=SecretStr(TEST_KEK),
        blind_index_key=SecretStr(secrets.token_urlsafe(48)),
        token_secret=SecretStr(secrets.token_urlsafe(48)),
        reencrypt_batch_size=BATCH,
    )


def shared_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in worker_env(settings).items() if k.startswith("SPIS_")}
    env.pop("SPIS_PUBLIC_BASE_URL")  # the API server answers at an address of its own
    env["SPIS_REENCRYPT_BATCH_SIZE"] = str(BATCH)
    return env


def spis(settings: Settings, *args: str) -> dict[str, Any]:
    """The operator's command, as its own process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIS_")}
    env.update(shared_env(settings))
    env["PYTHONPATH"] = str(REPO_ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "referral_service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def keys_in_database(session_factory: sessionmaker[Session]) -> Counter[int]:
    """The key id in the header of every sealed value, read straight from the tables."""
    found: Counter[int] = Counter()
    with session_factory() as session:
        for table, column in SEALED_COLUMNS:
            for (value,) in session.execute(text(f'SELECT "{column}" FROM "{table}"')):
                found[struct.unpack_from(">BI", bytes(value))[1]] += 1
    return found


def key_of(session_factory: sessionmaker[Session], resource_id: str) -> int:
    with session_factory() as session:
        body = session.execute(
            text("SELECT body FROM resource WHERE id = :id"), {"id": resource_id}
        ).scalar_one()
    return int(struct.unpack_from(">BI", bytes(body))[1])


class Writer(threading.Thread):
    """A GP system sending referrals over HTTP, one after another, until told to stop."""

    def __init__(self, base_url: str, practice: TestSystem) -> None:
        super().__init__(daemon=True)
        self.base_url, self.practice = base_url, practice
        self.stop = threading.Event()
        self.sent = 0
        self.errors: list[str] = []

    def run(self) -> None:
        token = access_token(self.base_url, self.practice)
        headers = {"Authorization": f"Bearer {token}", **FHIR_JSON}
        bundles = referral_bundles(
            self.practice.org_id, 400, prefix="DURING", nhs_start=999_100_000
        )
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=60) as http:
            for bundle in bundles:
                if self.stop.is_set():
                    return
                response = http.post("/fhir", json=bundle)
                if response.status_code != 200:
                    self.errors.append(f"{response.status_code} {response.text[:200]}")
                self.sent += 1


@pytest.fixture
def api(settings: Settings, session_factory: sessionmaker[Session]) -> Iterator[str]:
    with running_server(settings.database_url, env=shared_env(settings)) as base_url:
        yield base_url


def test_rotation_is_seen_by_every_process_and_leaves_nothing_under_the_old_key(
    settings: Settings, session_factory: sessionmaker[Session], api: str
) -> None:
    practice = register_system(
        session_factory, OrgKind.PRACTICE, name="Rotating Practice", ods="F84099"
    )
    token = access_token(api, practice)
    headers = {"Authorization": f"Bearer {token}", **FHIR_JSON}
    # Four sealed bodies each (Patient, Consent, ServiceRequest, Task; no version is superseded
    # yet): 240 values.
    for bundle in referral_bundles(practice.org_id, BEFORE, prefix="BEFORE"):
        assert (
            httpx.post(f"{api}/fhir", json=bundle, headers=headers, timeout=60).status_code == 200
        )
    before = keys_in_database(session_factory)
    assert set(before) == {1}
    assert before.total() > 200  # hundreds of values, all under key 1

    worker = Worker(settings, beat=False)
    worker.start()
    writer = Writer(api, practice)
    try:
        writer.start()
        wait_for(lambda: writer.sent >= 3, timeout=60, what="writes before the rotation")
        rotated = spis(settings, "keys", "rotate")
        assert rotated["current_key"] == 2
        # the API process sees the new key at once: the next write is sealed under it
        bundle = referral_bundles(practice.org_id, 1, prefix="RIGHT-AFTER", nhs_start=999_200_000)
        response = httpx.post(f"{api}/fhir", json=bundle[0], headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        patient_id = response.json()["entry"][0]["response"]["location"].split("/")[1]
        assert key_of(session_factory, patient_id) == 2
        sent_at_rotation = writer.sent
        wait_for(lambda: writer.sent >= sent_at_rotation + 10, timeout=120, what="writes after it")
        writer.stop.set()
        writer.join(timeout=60)
        assert not writer.errors, writer.errors[:3]
        final = wait_for(
            lambda: (s := spis(settings, "keys", "status"))["reencryption"] == "complete" and s,
            timeout=120,
            what="re-encryption to finish",
        )
    finally:
        writer.stop.set()
        worker.stop()

    in_db = keys_in_database(session_factory)
    assert set(in_db) == {2}, in_db  # nothing left under the retired key, however it was written
    assert in_db.total() > before.total()  # the writes during the rotation are there
    assert final["current_key"] == 2
    assert final["to_reencrypt"] == 0
    assert final["retired_keys"] == [1]
    assert final["values_by_key"] == {"2": in_db.total()}
    # and the API still reads everything, old and new
    last = httpx.get(f"{api}/fhir/Patient?_count=500", headers=headers, timeout=60)
    assert last.status_code == 200, last.text
    assert len(last.json()["entry"]) == BEFORE + 1 + writer.sent
