"""Consent withdrawal and the national data opt-out change a board's figures as they should
(issue 10: "withdrawal removes a person from every later report").

Thirteen people of one board, each referred, accepted, enrolled, exchanging time in the period and
with a SWEMWBS baseline and follow-up: 13 people publish as 15 in every measure (counts are rounded
to 5), so one person fewer (12) publishes as 10 — one person leaving is visible in every report.

For each way a person stops permitting secondary use (the practice sets the Consent inactive; it
posts a newer Consent without secondary use; it records the national data opt-out on the Patient):

- the very next report leaves them out, in every measure, before any worker has run (the test
  runs none), through the domain API and over FHIR `$evaluate-measure`; the product's report equals
  the independent calculation (which reads the Consents and the Patient itself) at every step;
- a refresh of the outcome rows does not bring them back;
- a newer permitting Consent (or the opt-out cleared) brings them back once the refresh it
  queued has run (not before: permission is re-read by the refresh, docs/architecture.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import COPRODUCTION, FUNNEL, WELLBEING, MeasureDefinition, Stratifier
from referral_service.config import Settings
from referral_service.db import unit_of_work
from tests.fixtures.fhir import FHIR_JSON
from tests.outcomes import independent_product as product
from tests.outcomes import independent_scenario as sc
from tests.outcomes.independent import read_raw
from tests.outcomes.independent_compare import compare
from tests.outcomes.independent_disclosure import calculate

PERIODS: dict[str, tuple[MeasureDefinition, date, date, str]] = {
    # measure, period, and the count figure every one of the 13 people is in
    "funnel": (FUNNEL, date(2026, 11, 1), date(2026, 11, 30), "received"),
    "coproduction": (COPRODUCTION, date(2026, 11, 1), date(2026, 11, 30), "active-members"),
    "wellbeing": (WELLBEING, date(2027, 2, 1), date(2027, 3, 31), "swemwbs-pairs"),
}
PEOPLE = 13


@pytest.fixture
def world(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings
) -> tuple[sc.Area, list[sc.Person]]:
    area = sc.board_area(client, session_factory)
    people = []
    for i in range(PEOPLE):
        person = sc.refer(client, area, area.practices[i % 2])
        sc.route(client, session_factory, settings, area, person)
        sc.answer(client, area, person, "accepted")
        sc.enrol(client, area, person)
        sc.exchange(client, area, person, date(2026, 11, 2), 60, gives=True)
        sc.exchange(client, area, person, date(2026, 11, 3), 30 + i, gives=False)
        sc.score(client, area, person, [2, 2, 3, 2, 2, 3, 2], "2026-11-20T10:00:00Z")
        sc.score(client, area, person, [3, 4, 3, 3, 4, 3, 3 + i % 3], f"2027-02-{10 + i}T10:00:00Z")
        people.append(person)
    product.refresh(session_factory, settings)
    return area, people


def headline(
    session_factory: sessionmaker[Session], settings: Settings, area: sc.Area
) -> dict[str, float | None]:
    """Each measure's headline count, from the product alone."""
    found = {}
    for name, (measure, start, end, figure) in PERIODS.items():
        report = product.report(session_factory, settings, measure.id, start, end, area.board)
        found[name] = report.cell(figure, Stratifier.TOTAL, "").value
    return found


def totals(
    session_factory: sessionmaker[Session], settings: Settings, area: sc.Area
) -> dict[str, float | None]:
    """Each measure's headline count, from the product, after checking the whole report against
    the independent calculation."""
    found = {}
    with unit_of_work(session_factory) as session:
        raw = read_raw(session, settings)
    for name, (measure, start, end, figure) in PERIODS.items():
        report = product.report(session_factory, settings, measure.id, start, end, area.board)
        exact, mine = calculate(raw, settings, measure, area.board.org_id, start, end)
        checked = compare(report, exact, mine)
        assert checked.problems == [], (name, checked.problems)
        assert checked.compared > 5
        found[name] = report.cell(figure, Stratifier.TOTAL, "").value
    return found


def _inactive(client: TestClient, area: sc.Area, person: sc.Person) -> None:
    headers = {**area.headers[person.practice.org_id], **FHIR_JSON}
    consent = client.get(f"/fhir/{person.consent}", headers=headers).json()
    done = client.put(f"/fhir/{person.consent}", json={**consent, "status": "inactive"},
                      headers=headers)  # fmt: skip
    assert done.status_code == 200, done.text


def _newer_consent(secondary_use: bool) -> Callable[[TestClient, sc.Area, sc.Person], None]:
    def post(client: TestClient, area: sc.Area, person: sc.Person) -> None:
        headers = {**area.headers[person.practice.org_id], **FHIR_JSON}
        consent = client.get(f"/fhir/{person.consent}", headers=headers).json()
        newer: dict[str, Any] = {k: v for k, v in copy.deepcopy(consent).items()
                                 if k not in ("id", "meta")}  # fmt: skip
        newer["status"] = "active"
        newer["dateTime"] = "2026-11-28T12:00:00Z" if not secondary_use else "2026-11-28T13:00:00Z"
        flows = newer["provision"]["provision"]
        if not secondary_use:
            newer["provision"]["provision"] = [p for p in flows if "secondary" not in str(p)]
        done = client.post("/fhir/Consent", json=newer, headers=headers)
        assert done.status_code == 201, done.text

    return post


def _opt_out(flag: bool) -> Callable[[TestClient, sc.Area, sc.Person], None]:
    def put(client: TestClient, area: sc.Area, person: sc.Person) -> None:
        headers = {**area.headers[person.practice.org_id], **FHIR_JSON}
        patient = client.get(f"/fhir/{person.patient}", headers=headers).json()
        if flag:
            patient["extension"] = [sc.OPT_OUT]
        else:
            patient.pop("extension", None)
        done = client.put(f"/fhir/{person.patient}", json=patient, headers=headers)
        assert done.status_code == 200, done.text

    return put


Step = Callable[[TestClient, sc.Area, sc.Person], None]
WAYS: dict[str, tuple[Step, Step]] = {
    "consent set inactive": (_inactive, _newer_consent(True)),
    "newer consent without secondary use": (_newer_consent(False), _newer_consent(True)),
    "national data opt-out": (_opt_out(True), _opt_out(False)),
}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_a_person_leaves_every_later_report_at_once_and_returns_after_a_new_permit(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    world: tuple[sc.Area, list[sc.Person]],
    way: str,
) -> None:
    area, people = world
    withdraw, permit = WAYS[way]
    everyone = {name: 15 for name in PERIODS}
    one_fewer = {name: 10 for name in PERIODS}
    assert totals(session_factory, settings, area) == everyone

    withdraw(client, area, people[4])  # no worker runs between this and the next report
    assert totals(session_factory, settings, area) == one_fewer
    assert product.fhir_totals(client, area.board, PERIODS) == one_fewer

    product.refresh(session_factory, settings)  # the rows rebuilt: still withdrawn
    assert totals(session_factory, settings, area) == one_fewer

    permit(client, area, people[4])  # not back until the refresh has run
    assert headline(session_factory, settings, area) == one_fewer
    assert product.refresh(session_factory, settings) > 0
    assert totals(session_factory, settings, area) == everyone
    assert product.fhir_totals(client, area.board, PERIODS) == everyone
