"""The two data sets the independent-figure tests compare the product on, each in a freshly
emptied test database and built once per test module:

- `synth_dataset`: `spis synth` (a few hundred referrals over twelve months, fixed seed and clock),
  written in bulk as the store writes, then `spis outcomes rebuild`;
- `api_dataset`: a population made through SPIS's real API (`independent_population.py`), whose
  outcome rows are kept by the triggers' refresh jobs, run as the worker runs them.

Each comes with the board's SMART client (registered for the board's organisation, with the scopes
a board gets), the raw data read as SPIS would hold it, and the product's outcome rows.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth.service import register_client
from referral_service.config import Settings
from referral_service.db import make_sessionmaker, unit_of_work
from referral_service.demo import synth
from referral_service.organisations.models import OrgKind
from tests.conftest import TEST_KEK, _truncate_all
from tests.fixtures.systems import TestSystem, new_key, public_jwks
from tests.outcomes import independent_product as product
from tests.outcomes.independent import Raw, read_raw
from tests.outcomes.independent_population import populate

SYNTH_END = datetime(2026, 11, 28, 18, tzinfo=UTC)


@dataclass
class Dataset:
    settings: Settings
    sessions: sessionmaker[Session]
    board: TestSystem  # the board's own SMART client
    raw: Raw
    rows: dict[str, pd.DataFrame]  # the product's outcome rows
    client: TestClient | None = None  # the app, for the FHIR route (api_dataset only)

    def reread(self) -> None:
        self.raw, self.rows = _read(self.settings, self.sessions)


def fresh(pg_engine: Engine, pg_url: str, var: Path) -> tuple[Settings, sessionmaker[Session]]:
    _truncate_all(pg_engine)
    settings = Settings(
        environment="test",
        database_url=pg_url,
        var_dir=var,
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
    )
    return settings, make_sessionmaker(pg_engine)


def board_client(sessions: sessionmaker[Session], board_id: str, ods: str) -> TestSystem:
    """A SMART client for an existing board organisation, as `spis client add` registers one."""
    key, kid = new_key("ES384"), f"board-{uuid.uuid4().hex[:8]}"
    with unit_of_work(sessions) as session:
        client = register_client(
            session, board_id, public_jwks(key, kid, "ES384"), None, None, "Board analysts"
        )
        return TestSystem(
            board_id, client.id, OrgKind.HEALTHBOARD, ods, key, kid, "ES384", client.scopes
        )


def synth_dataset(pg_engine: Engine, pg_url: str, var: Path, referrals: int = 400) -> Dataset:
    settings, sessions = fresh(pg_engine, pg_url, var)
    options = synth.Options(referrals=referrals, seed=1011, end=SYNTH_END)
    made = synth.run(settings, options, io.StringIO()).as_json()
    product.rebuild(sessions, settings)
    board = board_client(sessions, made["board"]["id"], made["board"]["ods"])
    return Dataset(settings, sessions, board, *_read(settings, sessions))


def api_dataset(pg_engine: Engine, pg_url: str, var: Path) -> Dataset:
    """The caller closes `client` (`client.__exit__(None, None, None)`) when done."""
    from referral_service.app import create_app

    settings, sessions = fresh(pg_engine, pg_url, var)
    client = TestClient(create_app(settings))
    client.__enter__()
    population = populate(client, sessions, settings)
    product.refresh(sessions, settings)
    raw, rows = _read(settings, sessions)
    return Dataset(settings, sessions, population.area.board, raw, rows, client)


def _read(
    settings: Settings, sessions: sessionmaker[Session]
) -> tuple[Raw, dict[str, pd.DataFrame]]:
    with unit_of_work(sessions) as session:
        return read_raw(session, settings), product.rows(session)
