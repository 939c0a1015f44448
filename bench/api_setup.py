"""The data bench/api.py's phases need, made before any load: a practice, a time bank, referrals
routed to the time bank (with the consent they need), and the request bodies wrk sends.

As the tests make them: organisations and clients registered straight into the database
(tests/fixtures/systems.register_system, tests/fixtures/routing.add_timebank); the referrals taken
in through the API (tests/fixtures/referrals.make_referral); routing run in this process by the
service function the worker runs (tests/fixtures/routing.route_now), since no worker takes the
server's jobs during the bench; the time bank accepts its Tasks over the API (test_api_broker).
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import common  # noqa: F401 - puts the checkout on sys.path
import httpx
import orjson

NHS_SETUP_STEM = 999_900_000  # the setup's referrals; the intake runs use 999_0xx_xxx upwards
ROUTED_REFERRALS = 20
BATCH_ENTRIES = 100
FHIR_HEADERS = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}


@dataclass(frozen=True)
class Secrets:
    """The server's secrets, also known to this process: it writes what the server reads."""

    kek: str
    blind_index_key: str
    token_secret: str

    @classmethod
    def new(cls) -> Secrets:
        return cls(*(secrets.token_urlsafe(48) for _ in range(3)))

    def server_env(self) -> dict[str, str]:
        return {
            "SPIS_KEK": self.kek,
            "SPIS_BLIND_INDEX_KEY": self.blind_index_key,
            "SPIS_TOKEN_SECRET": self.token_secret,
        }


@dataclass(frozen=True)
class Systems:
    practice: Any  # tests.fixtures.systems.TestSystem
    timebank: Any


@dataclass(frozen=True)
class Prepared:
    """What the phases use: the bodies written to `folder`, the ServiceRequest read."""

    folder: Path
    intake_template: Path  # a referral Bundle with @@NHS@@ and @@RID@@
    batch_body: Path  # a batch of BATCH_ENTRIES QuestionnaireResponses from the time bank
    service_request: str  # ServiceRequest/<id>, the practice's: what the reads phase reads
    routed: int  # referrals routed to the time bank and accepted by it


def register(database_url: str) -> Systems:
    """The practice (ODS B86001) and a time bank serving the sample referral's area (SE6) and
    need (befriending), with room for every referral the bench routes to it."""
    from referral_service.db import make_engine, make_sessionmaker
    from referral_service.organisations.models import OrgKind
    from tests.fixtures.routing import add_timebank
    from tests.fixtures.systems import register_system

    engine = make_engine(database_url)
    try:
        sessions = make_sessionmaker(engine)
        practice = register_system(sessions, OrgKind.PRACTICE, name="Bench Practice", ods="B86001")
        timebank = add_timebank(sessions, "Bench Time Bank", ["SE6"], ["befriending"], 100_000)
        return Systems(practice, timebank)
    finally:
        engine.dispose()


@contextmanager
def prepared(
    base_url: str, database_url: str, systems: Systems, keys: Secrets
) -> Iterator[Prepared]:
    """Referrals routed to the time bank and accepted; the bodies for wrk in a temporary folder."""
    from tests.fixtures.fhir import referral_bundle
    from tests.fixtures.server import access_token, fhir_base

    fhir = fhir_base(base_url)
    with (
        tempfile.TemporaryDirectory(prefix="spis-bench-api-") as tmp,
        httpx.Client(timeout=60) as http,
    ):
        folder = Path(tmp)
        practice = {"Authorization": f"Bearer {access_token(base_url, systems.practice)}"}
        referrals = [
            _refer(http, fhir, practice, systems.practice.org_id, i)
            for i in range(ROUTED_REFERRALS)
        ]
        children = _route(database_url, base_url, keys, [task for _, _, task in referrals])
        timebank = {"Authorization": f"Bearer {access_token(base_url, systems.timebank)}"}
        fillers = [_accept(http, fhir, timebank, child) for child in children]
        template = referral_bundle(
            systems.practice.org_id, nhs_number="@@NHS@@", referral_id="@@RID@@"
        )
        intake_template = folder / "referral-template.json"
        intake_template.write_bytes(orjson.dumps(template))
        batch = batch_bundle(
            [(patient, filler) for (patient, _, _), filler in zip(referrals, fillers, strict=True)]
        )
        batch_body = folder / "batch.json"
        batch_body.write_bytes(orjson.dumps(batch))
        yield Prepared(folder, intake_template, batch_body, referrals[0][1], len(fillers))


def _refer(
    http: httpx.Client, fhir: str, headers: dict[str, str], org_id: str, i: int
) -> tuple[str, str, str]:
    """One referral through the API: (Patient/<id>, ServiceRequest/<id>, the referral Task id)."""
    from tests.fixtures.fhir import referral_bundle
    from tests.fixtures.server import nhs_numbers

    numbers = nhs_numbers(NHS_SETUP_STEM + 20 * i)
    bundle = referral_bundle(org_id, nhs_number=next(numbers), referral_id=f"SETUP-{i:04d}")
    answer = http.post(fhir, content=orjson.dumps(bundle), headers={**headers, **FHIR_HEADERS})
    if answer.status_code != 200:
        raise RuntimeError(f"setup referral: HTTP {answer.status_code} {answer.text[:300]}")
    patient, _, service_request = (
        "/".join(e["response"]["location"].split("/")[:2]) for e in answer.json()["entry"]
    )
    found = http.get(f"{fhir}/Task?focus={service_request}", headers=headers).json()
    return patient, service_request, found["entry"][0]["resource"]["id"]


def _route(database_url: str, base_url: str, keys: Secrets, task_ids: list[str]) -> list[str]:
    """Route each referral Task now, as the worker would; the time bank Tasks made."""
    from pydantic import SecretStr

    from referral_service.config import Settings
    from referral_service.db import make_engine, make_sessionmaker
    from referral_service.keys import ring
    from referral_service.kit.refs import ResourceId
    from referral_service.routing import service as routing

    with tempfile.TemporaryDirectory(prefix="spis-bench-var-") as var_dir:
        settings = Settings(
            environment="test",
            database_url=database_url,
            var_dir=Path(var_dir),
            public_base_url=base_url,
            kek=SecretStr(keys.kek),
            blind_index_key=SecretStr(keys.blind_index_key),
            token_secret=SecretStr(keys.token_secret),
        )
        engine = make_engine(database_url)
        ring.register(engine, keys.kek)
        sessions = make_sessionmaker(engine)
        children = []
        try:
            for task_id in task_ids:
                with sessions() as session, session.begin():
                    ctx = routing.system_context(session, settings)
                    child = routing.route(ctx, ResourceId(task_id))
                if child is None:
                    raise RuntimeError("setup: a referral was not routed to the bench time bank")
                children.append(str(child))
        finally:
            engine.dispose()
        return children


def _accept(http: httpx.Client, fhir: str, headers: dict[str, str], child: str) -> str:
    """The time bank accepts its Task; the filler-order ServiceRequest in its focus."""
    task = http.get(f"{fhir}/Task/{child}", headers=headers).json()
    answer = http.put(
        f"{fhir}/Task/{child}",
        content=orjson.dumps({**task, "status": "accepted"}),
        headers={**headers, **FHIR_HEADERS},
    )
    if answer.status_code != 200:
        raise RuntimeError(
            f"setup: accepting a Task: HTTP {answer.status_code} {answer.text[:300]}"
        )
    focus: str = task["focus"]["reference"]
    return focus


def batch_bundle(referrals: list[tuple[str, str]]) -> dict[str, Any]:
    """BATCH_ENTRIES wellbeing questionnaires as a time bank records them, round robin over its
    referrals (patient, filler order): SWEMWBS and UCLA-3 in turn, each scored by SPIS into one
    Observation."""
    from fhir_adapters.questionnaire_form import questionnaire_response

    entries = []
    for i in range(BATCH_ENTRIES):
        patient, filler = referrals[i % len(referrals)]
        if i % 2 == 0:
            instrument, answers = "swemwbs", {str(n): str(1 + (i + n) % 5) for n in range(1, 8)}
        else:
            instrument, answers = "ucla3", {str(n): str(1 + (i + n) % 3) for n in range(1, 4)}
        response = questionnaire_response(
            instrument,
            answers,
            patient_ref=patient,
            based_on_ref=filler,
            authored=f"2026-01-{1 + i % 28:02d}T10:{i % 60:02d}:00Z",
        )
        entries.append(
            {"resource": response, "request": {"method": "POST", "url": "QuestionnaireResponse"}}
        )
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}
