"""With a real Celery worker process on Redis: FHIR writes alone keep the outcome rows up to
date. Nobody calls a refresh; the triggers enqueue it and the worker runs it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.outcomes.models import ReferralOutcome
from tests.conftest import TEST_KEK
from tests.fixtures.referrals import make_referral
from tests.fixtures.systems import TestSystem
from tests.integration.conftest import BROKER_URL, Worker, add_timebank, wait_for
from tests.outcomes.rows_support import put_task

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    """The API's jobs go to Redis, on a queue of this test's own."""
    return Settings(
        environment="test",
        database_url=pg_url,
        broker_url=BROKER_URL,
        queue=f"spis-test-{secrets.token_hex(4)}",
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
    )


def row(session_factory: sessionmaker[Session], referral_id: str) -> ReferralOutcome | None:
    with session_factory() as session:
        return session.get(ReferralOutcome, referral_id)


def test_fhir_writes_refresh_the_rows_through_the_worker(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    timebank = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    worker = Worker(settings, beat=False)
    worker.start()
    try:
        referral = make_referral(client, practice_headers, practice.org_id)
        # intake → routing job → child Task → refresh job: the row names the time bank
        routed = wait_for(
            lambda: (r := row(session_factory, referral.task_id)) and r.routed_at and r,
            what="the outcome row of the routed referral",
        )
        assert (routed.status, routed.timebank_id, routed.eligible) == (
            "requested",
            timebank.org_id,
            True,
        )
        [child] = [
            e["resource"]["id"]
            for e in client.get(
                f"/fhir/Task?part-of={referral.task}", headers=practice_headers
            ).json()["entry"]
        ]
        put_task(client, timebank, child, status="accepted")
        accepted = wait_for(
            lambda: (r := row(session_factory, referral.task_id)) and r.accepted_at and r,
            what="the outcome row to show the acceptance",
        )
        assert accepted.status == "accepted"
        assert accepted.accepted_at >= routed.routed_at
    finally:
        worker.stop()
