"""A varied population of referred people made through SPIS's real API, from a fixed seed: the
data set the independent-figure test compares the product with (beside synth's bulk one).

Referrals received from September to November 2026 (the practices send their own referral Task,
backdated) by three practices of the board and one outside it; some opted out or without
secondary use; some with no address or outside every catchment (rejected by routing); time banks'
declines (some re-routed and taken up elsewhere), acceptances, enrolments, exchanges with a
neighbour and between referred members (some reversed), completions; every instrument's
questionnaires, with follow-ups inside and outside the 8–26 week window (into 2027).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.codes import DECLINE_REASONS
from referral_service.config import Settings
from referral_service.organisations.models import OrgKind
from tests.fixtures.systems import TestSystem, bearer, register_system
from tests.outcomes import independent_scenario as sc

NOW = date(2026, 11, 28)  # exchanges are dated up to here (the ledger refuses future dates)
ANSWERS = {"swemwbs": (7, 1, 5), "wemwbs": (14, 1, 5), "ons4": (4, 0, 10), "ucla3": (3, 1, 3)}


@dataclass
class Population:
    area: sc.Area
    outsider: TestSystem  # a practice in no board's area
    people: list[sc.Person] = field(default_factory=list)
    enrolled: dict[str, list[sc.Person]] = field(default_factory=dict)  # per time bank


def populate(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    people: int = 60,
    seed: int = 20261129,
) -> Population:
    rng = random.Random(seed)
    area = sc.board_area(client, session_factory, practices=3)
    outsider = register_system(session_factory, OrgKind.PRACTICE, name="Elsewhere", ods="Y99001")
    area.headers[outsider.org_id] = bearer(client, outsider)
    found = Population(area, outsider)
    for i in range(people):
        practice = outsider if i % 12 == 11 else area.practices[i % 3]
        person = _referral(client, area, practice, rng)
        found.people.append(person)
        if not sc.route(client, session_factory, settings, area, person, placed=False):
            continue  # rejected by routing: no address, or no time bank serves the area
        _answer(client, session_factory, settings, found, person, rng)
    return found


def _referral(
    client: TestClient, area: sc.Area, practice: TestSystem, rng: random.Random
) -> sc.Person:
    received = datetime(2026, 9, 1, 8) + timedelta(minutes=rng.randrange(0, 88 * 24 * 60))
    roll = rng.random()
    postcode = None if roll < 0.04 else "ZZ9 9ZZ" if roll < 0.08 else "SE6 4RU"
    person = sc.refer(
        client,
        area,
        practice,
        opted_out=rng.random() < 0.06,
        secondary_use=rng.random() > 0.06,
        authored=received.strftime("%Y-%m-%dT%H:%M:%SZ"),
        postcode=postcode,
    )
    person.received = received.date()
    return person


def _answer(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    found: Population,
    person: sc.Person,
    rng: random.Random,
) -> None:
    roll = rng.random()
    if roll < 0.1:
        return  # still waiting for the time bank
    if roll < 0.25:
        sc.decline(client, found.area, person, rng.choice(sorted(DECLINE_REASONS)))
        if rng.random() < 0.5:
            return
        if not sc.route(client, session_factory, settings, found.area, person, placed=False):
            return
    sc.answer(client, found.area, person, "accepted")
    if rng.random() < 0.1:
        return
    sc.enrol(client, found.area, person)
    found.enrolled.setdefault(person.timebank_id, []).append(person)
    _exchanges(client, found, person, rng)
    _questionnaires(client, found.area, person, rng)
    if rng.random() < 0.25:
        sc.answer(client, found.area, person, "in-progress")
        sc.answer(client, found.area, person, "completed")


def _exchanges(
    client: TestClient, found: Population, person: sc.Person, rng: random.Random
) -> None:
    others = [p.member_id for p in found.enrolled[person.timebank_id] if p is not person]
    for _ in range(rng.choice((0, 1, 2, 3, 4, 6))):
        on = NOW - timedelta(days=rng.randrange(0, (NOW - person.received).days + 1))
        other = rng.choice(others) if others and rng.random() < 0.3 else None
        made = sc.exchange(
            client, found.area, person, on, rng.choice((30, 45, 60, 90, 120, 180)),
            gives=rng.random() < 0.45, other=other,
        )  # fmt: skip
        if rng.random() < 0.08:
            sc.reverse(client, found.area, person, made)


def _questionnaires(
    client: TestClient, area: sc.Area, person: sc.Person, rng: random.Random
) -> None:
    for instrument, (items, low, high) in ANSWERS.items():
        if rng.random() < 0.3:
            continue
        baseline = datetime(2026, 11, 28, 10) - timedelta(days=rng.randrange(0, 45))
        times = [baseline] + [
            baseline + timedelta(weeks=w, hours=rng.randrange(0, 48))
            for w in sorted(rng.sample((4, 9, 12, 16, 20, 25, 28), rng.choice((0, 1, 1, 2, 2, 3))))
        ]
        for when in times:
            answers = [rng.randint(low, high) for _ in range(items)]
            sc.score(client, area, person, answers, when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                     instrument)  # fmt: skip
