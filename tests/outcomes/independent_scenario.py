"""People referred within a health board's area, made through SPIS's real API (for the
independent-figure, consent and privacy tests): practices and time banks placed in the board's
area, referrals POSTed by the practice, routed by the routing service, answered by the time bank
over FHIR, enrolments and exchanges through the ledger API, wellbeing questionnaires as
QuestionnaireResponses. Nothing is written behind SPIS's back."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.questionnaire_form import questionnaire_response
from referral_service.config import Settings
from referral_service.db import unit_of_work
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import set_board
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.routing import add_timebank, route_now
from tests.fixtures.server import nhs_numbers
from tests.fixtures.systems import TestSystem, bearer, register_system

# Markers a privacy test looks for: a referred member's alias, and the alias of the member they
# exchange time with.
ALIAS = "Winifred Quillfeather"
PARTNER_ALIAS = "Ozymandias Neighbour"
OPT_OUT = {
    "url": "https://spis.example.org/fhir/StructureDefinition/national-data-opt-out",
    "valueBoolean": True,
}


@dataclass
class Area:
    board: TestSystem
    practices: list[TestSystem]
    timebanks: list[TestSystem]
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # org id -> Authorization
    numbers: Iterator[str] = field(default_factory=nhs_numbers)
    partners: dict[str, str] = field(default_factory=dict)  # time bank -> a member not referred

    def timebank(self, org_id: str) -> TestSystem:
        return next(t for t in self.timebanks if t.org_id == org_id)


@dataclass
class Person:
    practice: TestSystem
    patient: str  # Patient/<id>
    consent: str
    service_request: str
    task: str  # the referral Task, Task/<id>
    nhs_number: str
    child: dict[str, Any] | None = None  # the time bank Task as the time bank reads it
    member_id: str | None = None
    received: date | None = None  # when the practice's own referral Task says it was written

    @property
    def timebank_id(self) -> str:
        assert self.child is not None
        return str(self.child["owner"]["reference"]).split("/")[1]


def board_area(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practices: int = 2,
    timebanks: int = 2,
    ods: str = "QKK",
) -> Area:
    board = register_system(session_factory, OrgKind.HEALTHBOARD, name=f"ICB {ods}", ods=ods)
    surgeries = [
        register_system(
            session_factory, OrgKind.PRACTICE, name=f"Practice {ods}{i}", ods=f"{ods}P{i:02d}"
        )
        for i in range(practices)
    ]
    banks = [
        add_timebank(session_factory, f"Time bank {ods}{i}", ["SE6"], ["befriending"], 500)
        for i in range(timebanks)
    ]
    with unit_of_work(session_factory) as session:
        for org in (*surgeries, *banks):
            set_board(session, org.org_id, board.org_id)
    area = Area(board, surgeries, banks)
    for system in (*surgeries, *banks):
        area.headers[system.org_id] = bearer(client, system)
    return area


def refer(
    client: TestClient,
    area: Area,
    practice: TestSystem,
    *,
    opted_out: bool = False,
    secondary_use: bool = True,
    authored: str | None = None,
    postcode: str | None = "SE6 4RU",
) -> Person:
    """The practice's referral Bundle; with `authored`, the practice sends its own referral Task
    written then (what SPIS counts as received); `postcode=None`: no home address."""
    number = next(area.numbers)
    bundle = referral_bundle(practice.org_id, nhs_number=number, referral_id=f"R-{number}")
    patient = bundle["entry"][0]["resource"]
    if opted_out:
        patient["extension"] = [OPT_OUT]
    if postcode is None:
        del patient["address"]
    else:
        patient["address"][0]["postalCode"] = postcode
    if not secondary_use:
        consent = bundle["entry"][1]["resource"]
        consent["provision"]["provision"] = consent["provision"]["provision"][:1]
    if authored is not None:
        bundle["entry"].append(_task_entry(bundle, practice, authored))
    headers = {**area.headers[practice.org_id], **FHIR_JSON}
    response = client.post("/fhir", json=bundle, headers=headers)
    assert response.status_code == 200, response.text
    refs = ["/".join(e["response"]["location"].split("/")[:2]) for e in response.json()["entry"]]
    tasks = client.get(f"/fhir/Task?focus={refs[2]}", headers=headers).json()
    task = f"Task/{tasks['entry'][0]['resource']['id']}"
    return Person(practice, refs[0], refs[1], refs[2], task, number)


def _task_entry(bundle: dict[str, Any], practice: TestSystem, authored: str) -> dict[str, Any]:
    patient, _, request = (entry["fullUrl"] for entry in bundle["entry"][:3])
    task = {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "focus": {"reference": request},
        "for": {"reference": patient},
        "authoredOn": authored,
        "requester": {"reference": f"Organization/{practice.org_id}"},
        "owner": {"reference": "Organization/spis"},
    }
    return {"resource": task, "request": {"method": "POST", "url": "Task"}}


def route(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    area: Area,
    person: Person,
    *,
    placed: bool = True,
) -> bool:
    """Route the referral now (as the worker would); False when no time bank could take it
    (unless `placed`, which asserts it was). The time bank's Task is then `person.child`."""
    child_id = route_now(session_factory, settings, person.task.split("/")[1])
    assert child_id is not None or not placed
    if child_id is None:
        return False
    for bank in area.timebanks:
        found = client.get(f"/fhir/Task/{child_id}", headers=area.headers[bank.org_id])
        if found.status_code == 200:
            person.child = found.json()
            return True
    raise AssertionError("no time bank of the area reads the routed Task")


def answer(client: TestClient, area: Area, person: Person, status: str, **extra: Any) -> None:
    """The time bank moves its Task (accepted, rejected with a reason, in-progress, completed)."""
    assert person.child is not None
    body = {**copy.deepcopy(person.child), "status": status, **extra}
    headers = {**area.headers[person.timebank_id], **FHIR_JSON}
    response = client.put(f"/fhir/Task/{body['id']}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    person.child = response.json()


def decline(client: TestClient, area: Area, person: Person, code: str) -> None:
    reason = {
        "coding": [
            {"system": "https://spis.example.org/fhir/CodeSystem/decline-reason", "code": code}
        ],
        "text": f"Declined: {code}",
    }
    answer(client, area, person, "rejected", statusReason=reason)


def enrol(client: TestClient, area: Area, person: Person) -> str:
    bank = person.timebank_id
    body = {"child_task_id": person.child["id"] if person.child else "", "alias": ALIAS}
    url = f"/api/timebanks/{bank}/enrolments"
    response = client.post(url, json=body, headers=area.headers[bank])
    assert response.status_code == 201, response.text
    person.member_id = str(response.json()["member"]["id"])
    return person.member_id


def partner(client: TestClient, area: Area, bank: str) -> str:
    if bank not in area.partners:
        url = f"/api/timebanks/{bank}/members"
        response = client.post(url, json={"alias": PARTNER_ALIAS}, headers=area.headers[bank])
        assert response.status_code == 201, response.text
        area.partners[bank] = str(response.json()["id"])
    return area.partners[bank]


def exchange(
    client: TestClient,
    area: Area,
    person: Person,
    on: date,
    minutes: int,
    *,
    gives: bool,
    other: str | None = None,
) -> str:
    bank = person.timebank_id
    them = other or partner(client, area, bank)
    assert person.member_id is not None
    giver, receiver = (person.member_id, them) if gives else (them, person.member_id)
    body = {
        "giver_id": giver,
        "receiver_id": receiver,
        "minutes": minutes,
        "date": on.isoformat(),
        "category": "befriending",
    }
    response = client.post(
        f"/api/timebanks/{bank}/exchanges", json=body, headers=area.headers[bank]
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def reverse(client: TestClient, area: Area, person: Person, exchange_id: str) -> None:
    bank = person.timebank_id
    url = f"/api/timebanks/{bank}/exchanges/{exchange_id}/reversal"
    response = client.post(url, json={"reason": "Entered twice"}, headers=area.headers[bank])
    assert response.status_code == 201, response.text


def score(
    client: TestClient,
    area: Area,
    person: Person,
    answers: list[int],
    authored: str,
    instrument: str = "swemwbs",
) -> None:
    """A questionnaire (swemwbs, wemwbs, ons4, ucla3) the time bank records, based on its filler
    order, answered `answers` (item 1, 2, ...)."""
    assert person.child is not None
    filler = str(person.child["focus"]["reference"])
    typed = {str(n): str(a) for n, a in enumerate(answers, 1)}
    qr = questionnaire_response(
        instrument, typed, patient_ref=person.patient, based_on_ref=filler, authored=authored
    )
    headers = {**area.headers[person.timebank_id], **FHIR_JSON}
    response = client.post("/fhir/QuestionnaireResponse", json=qr, headers=headers)
    assert response.status_code == 201, response.text
