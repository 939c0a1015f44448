"""PostgreSQL restarts under a running `spis serve` (issue 7, items 28 and 34).

The server is a real `spis serve` process on a PostgreSQL cluster of the test's own (never the
shared server): the test stops that cluster (`fast`: sessions are told to end; `immediate`: the
server dies without a word) and starts it again. During the outage every request answers 503 with
an OperationOutcome and Retry-After, never 500; afterwards the same server process serves again,
the very first request included, and every referral accepted before the outage is still there.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from referral_service.db import make_engine, make_sessionmaker
from referral_service.organisations.models import OrgKind
from tests.conftest import TEST_KEK
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.private_pg import PrivatePostgres, StopMode, private_postgres
from tests.fixtures.server import (
    access_token,
    fhir_base,
    nhs_numbers,
    server_process,
    token_response,
)
from tests.fixtures.systems import TestSystem, register_system

pytestmark = pytest.mark.slow

MODES: list[StopMode] = ["fast", "immediate"]


@dataclass
class Deployment:
    pg: PrivatePostgres
    base_url: str
    practice: TestSystem
    timebank: TestSystem
    headers: dict[str, str]
    timebank_headers: dict[str, str]
    sent: int = 0
    accepted: dict[str, str] = field(default_factory=dict)  # ServiceRequest id -> referral id
    numbers: Iterator[str] = field(default_factory=nhs_numbers)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, http: httpx.Client) -> httpx.Response:
        """POST the next new referral; remember it when it was accepted."""
        with self.lock:  # several senders at once
            bundle = referral_bundle(
                self.practice.org_id, nhs_number=next(self.numbers), referral_id=f"OUT-{self.sent}"
            )
            self.sent += 1
        response = http.post(
            fhir_base(self.base_url), json=bundle, headers={**self.headers, **FHIR_JSON}
        )
        if response.status_code == 200:
            sr_location = response.json()["entry"][2]["response"]["location"]
            referral_id = bundle["entry"][2]["resource"]["identifier"][0]["value"]
            self.accepted[sr_location.split("/")[1]] = referral_id
        return response

    def ledger_members(self, http: httpx.Client) -> httpx.Response:
        return http.get(
            f"{self.base_url}/api/timebanks/{self.timebank.org_id}/members",
            headers=self.timebank_headers,
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    with private_postgres() as pg:
        yield pg


@pytest.fixture
def deployment(cluster: PrivatePostgres) -> Iterator[Deployment]:
    if not cluster.running():
        cluster.start()
    engine = make_engine(cluster.url)
    factory = make_sessionmaker(engine)
    ods = f"Y{secrets.randbelow(100_000):05d}"  # one practice per test, same database
    practice = register_system(factory, OrgKind.PRACTICE, name="Outage Practice", ods=ods)
    timebank = register_system(factory, OrgKind.TIMEBANK, name="Outage Time Bank")
    engine.dispose()
    # One KEK for every server on this cluster's database (each would generate its own).
    with server_process(cluster.url, env={"SPIS_KEK": TEST_KEK}) as server:
        base_url = server.base_url
        headers = {"Authorization": f"Bearer {access_token(base_url, practice)}"}
        timebank_headers = {"Authorization": f"Bearer {access_token(base_url, timebank)}"}
        try:
            yield Deployment(cluster, base_url, practice, timebank, headers, timebank_headers)
        finally:
            print(server.log_path.read_text(errors="replace"))  # shown when the test failed


def assert_unavailable(response: httpx.Response) -> None:
    """503, an OperationOutcome saying to retry, a Retry-After, a correlation id: never a 500."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.headers["retry-after"].isdigit()
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", "transient")
    assert issue["diagnostics"] == (
        "The database is unavailable; nothing was changed. Retry shortly. "
        f"Correlation id: {response.headers['x-correlation-id']}"
    )


def assert_all_accepted_are_there(deployment: Deployment, http: httpx.Client) -> None:
    assert deployment.accepted
    for sr_id, referral_id in deployment.accepted.items():
        response = http.get(
            f"{fhir_base(deployment.base_url)}/ServiceRequest/{sr_id}", headers=deployment.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["identifier"][0]["value"] == referral_id


@pytest.mark.parametrize("mode", MODES)
def test_requests_during_an_outage_get_503_and_the_api_recovers(
    deployment: Deployment, mode: StopMode
) -> None:
    with httpx.Client(timeout=30) as http:
        for _ in range(3):
            assert deployment.submit(http).status_code == 200
        sr_id = next(iter(deployment.accepted))

        deployment.pg.stop(mode)
        assert_unavailable(deployment.submit(http))
        assert_unavailable(
            http.get(
                f"{fhir_base(deployment.base_url)}/ServiceRequest/{sr_id}",
                headers=deployment.headers,
            )
        )
        assert_unavailable(token_response(deployment.base_url, deployment.practice))
        assert_unavailable(deployment.ledger_members(http))

        deployment.pg.start()
        # The same server process: no restart, and no request is sacrificed to find out.
        assert deployment.submit(http).status_code == 200
        assert token_response(deployment.base_url, deployment.practice).status_code == 200
        assert deployment.ledger_members(http).status_code == 200
        assert_all_accepted_are_there(deployment, http)


def test_a_restart_in_the_middle_of_intake_loses_nothing_accepted(
    deployment: Deployment,
) -> None:
    """Referrals keep arriving from three senders at once while PostgreSQL dies (immediate, so
    some die mid-transaction) and comes back: each answer is 200 or 503, and every 200 is stored."""
    answers: list[httpx.Response] = []
    stop = threading.Event()

    def send_continuously() -> None:
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                answers.append(deployment.submit(http))

    senders = [threading.Thread(target=send_continuously) for _ in range(3)]
    for sender in senders:
        sender.start()
    try:
        _wait_for(lambda: len(deployment.accepted) >= 3)
        deployment.pg.stop("immediate")
        _wait_for(lambda: any(a.status_code == 503 for a in answers))
        deployment.pg.start()
        accepted_before = len(deployment.accepted)
        _wait_for(lambda: len(deployment.accepted) >= accepted_before + 3)
    finally:
        stop.set()
        for sender in senders:
            sender.join(60)

    statuses = {a.status_code for a in answers}
    assert statuses == {200, 503}, [(a.status_code, a.text[:200]) for a in answers]
    for answer in answers:
        if answer.status_code == 503:
            assert_unavailable(answer)
    with httpx.Client(timeout=30) as http:
        assert_all_accepted_are_there(deployment, http)


@pytest.mark.parametrize("mode", MODES)
def test_an_idle_restart_costs_no_request(deployment: Deployment, mode: StopMode) -> None:
    with httpx.Client(timeout=30) as http:
        assert deployment.submit(http).status_code == 200  # the pool now holds a connection

        deployment.pg.stop(mode)
        deployment.pg.start()

        first = deployment.submit(http)
        assert first.status_code == 200, first.text
        assert deployment.ledger_members(http).status_code == 200
        assert_all_accepted_are_there(deployment, http)


@pytest.mark.parametrize("mode", MODES)
def test_the_engine_every_process_uses_survives_an_idle_restart(
    cluster: PrivatePostgres, mode: StopMode
) -> None:
    """`make_engine` is what the API, `spis worker` and the CLI build their engines with."""
    if not cluster.running():
        cluster.start()
    engine = make_engine(cluster.url)
    try:
        with engine.connect() as conn:
            first_pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        cluster.stop(mode)
        cluster.start()
        with engine.connect() as conn:  # the pooled connection is dead: checkout replaces it
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != first_pid
    finally:
        engine.dispose()


def _wait_for(check: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
