"""`spis synth` on PostgreSQL: the load has the resources, histories and ledger rows a real
referral loop leaves, in the counts asked for; it is valid FHIR, sealed at rest, found by the same
searches over HTTP, readable by exactly the organisations the services would have shared it with,
and the ledger balances."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import rules
from fhir_adapters.codes import DECLINE_REASON_SYSTEM, TaskStatus
from fhir_adapters.parse import validate_resource
from referral_service.auth.service import register_client
from referral_service.config import Settings
from referral_service.db import make_sessionmaker
from referral_service.demo.synth import Options, Summary, run
from referral_service.kit.clock import as_utc
from referral_service.ledger import repository as ledger
from referral_service.ledger.models import LedgerEntry, Member
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.referrals.models import Submission
from referral_service.referrals.status import can_move
from referral_service.store import repository
from referral_service.store.models import StoredResource
from tests.conftest import TEST_KEK, _truncate_all
from tests.fixtures.systems import TestSystem, bearer, new_key, public_jwks

END = datetime(2026, 6, 30, 17, 0, tzinfo=UTC)
OPTIONS = Options(
    referrals=160,
    practices=3,
    timebanks=2,
    months=9,
    seed=11,
    observations_per_referral=25.0,
    end=END,
)


@dataclass
class Loaded:
    settings: Settings
    summary: Summary
    sessions: sessionmaker[Session]

    def bodies(self, rtype: str) -> list[dict[str, Any]]:
        with self.sessions() as session:
            rows = session.scalars(select(StoredResource).where(StoredResource.type == rtype))
            return [orjson.loads(row.body) for row in rows]


@pytest.fixture(scope="module")
def loaded(
    pg_url: str, pg_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Loaded]:
    _truncate_all(pg_engine)
    settings = Settings(
        environment="test",
        database_url=pg_url,
        var_dir=tmp_path_factory.mktemp("var"),
        public_base_url="http://testserver",
        kek=TEST_KEK,
    )
    progress = io.StringIO()
    summary = run(settings, OPTIONS, progress)
    assert "synth: 160/160 referrals" in progress.getvalue()
    assert "rows/s" in progress.getvalue()
    yield Loaded(settings, summary, make_sessionmaker(pg_engine))
    _truncate_all(pg_engine)


def test_the_load_has_what_was_asked_for(loaded: Loaded) -> None:
    summary = loaded.summary.as_json()
    with loaded.sessions() as session:
        stored = Counter(
            dict(
                session.execute(
                    select(StoredResource.type, text("count(*)")).group_by(StoredResource.type)
                ).all()
            )
        )
        superseded = session.execute(text("SELECT count(*) FROM resource_version")).scalar_one()
        resources, versions = session.execute(
            text("SELECT count(*), sum(version_id) FROM resource")
        ).one()
        submissions = session.scalar(select(text("count(*)")).select_from(Submission))
        jobs = session.execute(text("SELECT count(*) FROM job")).scalar_one()
        audited = session.execute(text("SELECT DISTINCT kind FROM audit_event")).scalars().all()
        outcome_rows = session.execute(text("SELECT count(*) FROM outcome_referral")).scalar_one()
    assert stored == Counter(summary["resources"])
    assert stored["Observation"] == round(25.0 * 160)  # the exchanges are sized to hit it
    assert stored["Consent"] == 160 == submissions == summary["referrals"]
    assert 140 <= stored["Patient"] <= 160  # some people are referred twice
    # every version of every resource is kept: the current one as the resource row
    assert superseded == versions - resources > 0
    assert jobs == 0  # nothing queued: the rows were rebuilt at the end instead
    assert outcome_rows == 160
    assert set(audited) <= {"consent-decision"}  # the rebuild's decisions; no synthetic history
    assert summary["outcome_rows_referrals"] == 160
    assert {p["ods"][0] for p in summary["practices"]} == {"Y"}
    assert len(summary["practices"]) == 3
    tasks = loaded.bodies("Task")
    referrals = [t for t in tasks if "partOf" not in t]
    children = [t for t in tasks if "partOf" in t]
    assert len(referrals) == 160
    assert stored["ServiceRequest"] == 160 + len(children)  # one filler order per routing


def test_the_funnel_is_consistent_and_its_history_says_when(loaded: Loaded) -> None:
    tasks = {t["id"]: t for t in loaded.bodies("Task")}
    kids: dict[str, list[dict[str, Any]]] = {}
    for task in tasks.values():
        if "partOf" in task:
            kids.setdefault(task["partOf"][0]["reference"].removeprefix("Task/"), []).append(task)
    statuses = Counter(t["status"] for t in tasks.values() if "partOf" not in t)
    assert statuses["completed"] >= 15, statuses
    assert statuses["in-progress"] >= 15, statuses
    assert statuses["rejected"] >= 1, statuses
    declined = [k for ks in kids.values() for k in ks if k["status"] == "rejected"]
    assert declined
    assert all(k["statusReason"]["coding"][0]["system"] == DECLINE_REASON_SYSTEM for k in declined)
    for rid, task in tasks.items():
        if "partOf" in task:
            continue
        mine = kids.get(rid, [])
        taken = [
            k for k in mine if k["status"] in ("accepted", "in-progress", "completed", "failed")
        ]
        if task["status"] in ("accepted", "in-progress", "completed"):
            assert len(taken) == 1
            assert taken[0]["status"] == task["status"]
        if task["status"] == "rejected":
            assert all(k["status"] in ("rejected", "cancelled") for k in mine)
        if task["status"] == "completed":
            outputs = {
                o["valueReference"]["reference"].split("/")[0] for o in task.get("output", [])
            }
            assert outputs <= {"Procedure", "Observation"}
    with loaded.sessions() as session:
        history = [
            (v.resource_id, as_utc(v.last_updated), orjson.loads(v.body)["status"])
            for rid in sorted(tasks)
            for v in reversed(repository.versions(session, Principal.spis(), "Task", rid))
        ]
    previous: dict[str, tuple[datetime, str]] = {}
    for rid, when, status in history:
        assert when <= END
        if rid in previous:
            before, was = previous[rid]
            assert when >= before
            assert can_move(TaskStatus(was), TaskStatus(status)), (was, status)
        previous[rid] = (when, status)


def test_every_resource_is_valid_fhir_and_meets_spis_rules(loaded: Loaded) -> None:
    checks = {"Patient": rules.check_patient, "Consent": rules.check_consent}
    for rtype in (
        "Patient",
        "Consent",
        "ServiceRequest",
        "Task",
        "Observation",
        "Procedure",
        "QuestionnaireResponse",
    ):
        bodies = loaded.bodies(rtype)
        assert bodies, rtype
        for body in bodies[:: max(1, len(bodies) // 40)]:  # a spread sample of each type
            assert validate_resource(body, expected_type=rtype) == rtype
            if rtype in checks:
                checks[rtype](body)
            if rtype == "ServiceRequest" and body["intent"] == "order":
                rules.check_service_request(body)
            if rtype == "Task":
                rules.check_referral_task(body)
    for patient in loaded.bodies("Patient"):
        assert rules.nhs_number_is_valid(patient["identifier"][0]["value"])
        assert patient["identifier"][0]["value"].startswith("999")


def test_bodies_are_sealed_at_rest(loaded: Loaded) -> None:
    patient = loaded.bodies("Patient")[0]
    with loaded.sessions() as session:
        raw = session.execute(
            text("SELECT body FROM resource WHERE id = :id"), {"id": patient["id"]}
        )
        sealed = bytes(raw.scalar_one())
        versions = session.execute(text("SELECT body FROM resource_version LIMIT 50")).scalars()
        assert all(not bytes(v).startswith(b"{") for v in versions)
        aliases = session.execute(text("SELECT alias FROM ledger_member LIMIT 20")).scalars()
        assert all(bytes(a) != patient["name"][0]["given"][0].encode() for a in aliases)
    assert patient["identifier"][0]["value"].encode() not in sealed
    assert patient["name"][0]["family"].encode() not in sealed
    assert not sealed.startswith(b"{")


def _client_for(loaded: Loaded, org_id: str, kind: OrgKind) -> TestSystem:
    key = new_key("ES384")
    with loaded.sessions() as session, session.begin():
        client = register_client(
            session, org_id, public_jwks(key, "k1", "ES384"), None, None, "test"
        )
    return TestSystem(org_id, client.id, kind, None, key, "k1", "ES384", client.scopes)


def test_searches_over_http_find_it_and_only_whom_it_was_shared_with(loaded: Loaded) -> None:
    from referral_service.app import create_app

    tasks = loaded.bodies("Task")
    referral = next(t for t in tasks if t["status"] == "completed" and t.get("output"))
    practice_id = referral["requester"]["reference"].removeprefix("Organization/")
    child = next(
        t
        for t in tasks
        if t.get("partOf") == [{"reference": f"Task/{referral['id']}"}]
        and t["status"] == "completed"
    )
    timebank_id = child["owner"]["reference"].removeprefix("Organization/")
    patient = next(
        p for p in loaded.bodies("Patient") if f"Patient/{p['id']}" == referral["for"]["reference"]
    )
    with TestClient(create_app(loaded.settings)) as client:
        gp = bearer(client, _client_for(loaded, practice_id, OrgKind.PRACTICE))
        tb = bearer(client, _client_for(loaded, timebank_id, OrgKind.TIMEBANK))
        nhs = patient["identifier"][0]["value"]
        found = client.get(
            f"/fhir/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|{nhs}", headers=gp
        ).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [patient["id"]]
        sr = referral["focus"]["reference"]
        came_back = client.get(f"/fhir/Observation?based-on={sr}&_count=200", headers=gp).json()
        output_obs = {
            o["valueReference"]["reference"]
            for o in referral["output"]
            if o["valueReference"]["reference"].startswith("Observation/")
        }
        assert output_obs <= {f"Observation/{e['resource']['id']}" for e in came_back["entry"]}
        history = client.get(f"/fhir/Task/{referral['id']}/_history", headers=gp).json()
        assert next(e["resource"]["status"] for e in history["entry"]) == "completed"
        assert history["entry"][-1]["resource"]["status"] == "requested"
        assert client.get(f"/fhir/Task/{child['id']}", headers=tb).json()["status"] == "completed"
        shown = client.get(f"/fhir/{referral['for']['reference']}", headers=tb).json()
        assert shown["id"] == patient["id"]
        # The referral Task is the practice's: a time bank does not read it.
        assert client.get(f"/fhir/Task/{referral['id']}", headers=tb).status_code == 404


def test_the_ledger_balances_and_names_the_resources(loaded: Loaded) -> None:
    with loaded.sessions() as session:
        tb_ids = {t["id"] for t in loaded.summary.timebanks}
        for tb in tb_ids:
            assert ledger.unbalanced(session, tb) == []
        referred = session.scalars(select(Member).where(Member.referral_task_id.is_not(None))).all()
        entries = session.scalars(
            select(LedgerEntry).where(LedgerEntry.procedure_id.is_not(None))
        ).all()
        procedures = set(
            session.scalars(select(StoredResource.id).where(StoredResource.type == "Procedure"))
        )
    enrolled = [
        t
        for t in loaded.bodies("Observation")
        if t["code"]["coding"][0]["code"] == "program-enrollment-status"
    ]
    assert len(referred) == len(enrolled) > 20
    assert {e.procedure_id for e in entries} == procedures  # one Procedure per referred side
    given = Counter(e.member_id for e in entries if e.minutes > 0)
    received = Counter(e.member_id for e in entries if e.minutes < 0)
    assert len(given) > 0.3 * len(referred)
    assert len(received) > 0.5 * len(referred)


def test_the_boards_report_counts_the_synthetic_referrals(loaded: Loaded) -> None:
    """From the loaded resources alone, independently of the outcome rows: the people with a
    referral received in the period whose Consent permits secondary use and who have not opted
    out. The report (rows rebuilt by synth, then evaluate) publishes that count, rounded to 5."""
    from referral_service.context import Context
    from referral_service.outcomes.service import evaluate
    from referral_service.principal import Principal

    start, end = date(2026, 1, 1), date(2026, 3, 31)
    consents: dict[str, dict[str, Any]] = {}
    for consent in sorted(loaded.bodies("Consent"), key=lambda c: c["dateTime"]):
        consents[consent["patient"]["reference"]] = consent  # the latest governs
    opted_out = {
        f"Patient/{p['id']}"
        for p in loaded.bodies("Patient")
        if any(e["url"].endswith("national-data-opt-out") for e in p.get("extension", []))
    }
    people = {
        task["for"]["reference"]
        for task in loaded.bodies("Task")
        if "partOf" not in task
        and start <= date.fromisoformat(task["authoredOn"][:10]) <= end
        and task["for"]["reference"] not in opted_out
        and any(
            c["code"] == "secondary-use"
            for p in consents[task["for"]["reference"]]["provision"].get("provision", [])
            for concept in p["code"]
            for c in concept["coding"]
        )
    }
    assert len(people) >= 20
    with loaded.sessions() as session, session.begin():
        ctx = Context(session, Principal.spis(), loaded.settings)
        report = evaluate(ctx, "spis-referral-funnel", start, end, loaded.summary.board["id"])
    assert report.cell("received").value == 5 * round(len(people) / 5)
