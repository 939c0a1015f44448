"""What the consent tests share: a referral from the practice and a time bank to route it to."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import Referral, make_referral
from tests.fixtures.routing import add_timebank
from tests.fixtures.systems import TestSystem

# What the time bank reads on its cancelled Task when the referral's consent is withdrawn.
WITHDRAWN = "The patient's consent to share this referral was withdrawn"


@pytest.fixture
def referral(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> Referral:
    return make_referral(client, practice_headers, practice.org_id)


@pytest.fixture
def timebank_a(session_factory: sessionmaker[Session]) -> TestSystem:
    return add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 2)
