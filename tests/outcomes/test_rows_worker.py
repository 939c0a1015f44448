"""With a real Celery worker process on Redis: FHIR writes alone keep the outcome rows up to
date. Nobody calls a refresh; the triggers enqueue it and the worker runs it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.kit.clock import utcnow
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import set_board
from referral_service.outcomes.models import BoardVersion, CachedReport, ReferralOutcome
from referral_service.outcomes.service import evaluate
from referral_service.principal import Principal
from tests.conftest import TEST_KEK
from tests.fixtures.referrals import make_referral
from tests.fixtures.systems import TestSystem
from tests.integration.conftest import BROKER_URL, Worker, add_timebank, wait_for
from tests.outcomes.report_rows import org
from tests.outcomes.rows_support import put_task

FUNNEL = "spis-referral-funnel"

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


def test_the_worker_keeps_a_pulled_report_computed_after_a_change(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    """A board pulled its report; a referral then changes its rows (the refresh job moves the
    board's data version on); the beat's `spis.warm_reports` has the report computed again at
    that version before the board pulls it next."""
    add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
    with unit_of_work(session_factory) as session:
        board = org(session, OrgKind.HEALTHBOARD, "South East London", "QKK")
        set_board(session, practice.org_id, board)
    today = utcnow().date()
    period = (today.replace(day=1), today)
    with unit_of_work(session_factory) as session:
        evaluate(Context(session, Principal.spis(), settings), FUNNEL, *period, board)

    def cached() -> tuple[int, int] | None:
        with session_factory() as session:
            version = session.scalar(
                select(BoardVersion.version).where(BoardVersion.board_id == board)
            )
            kept = session.scalar(
                select(CachedReport.version).where(CachedReport.board_id == board)
            )
        return None if version is None or kept is None else (version, kept)

    assert cached() is None  # no change yet: version 0, no row
    worker = Worker(settings, beat=True, SPIS_OUTCOME_REPORT_WARM_INTERVAL_S="1")
    worker.start()
    try:
        make_referral(client, practice_headers, practice.org_id)
        versions = wait_for(
            lambda: (found := cached()) and found[0] >= 2 and found[0] == found[1] and found,
            what="the report computed again at the board's new version",
        )
        assert versions[0] == versions[1]
    finally:
        worker.stop()
    with session_factory() as session:
        [row] = session.scalars(select(CachedReport)).all()
    assert row.pulled_at < row.computed_at  # computed by the worker, not pulled again
