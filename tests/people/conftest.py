"""People test fixtures: one organisation of each kind, a clock the test moves, and helpers that
run each service call in its own unit of work (committed, as a request would be)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pyotp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.db import unit_of_work
from referral_service.kit import clock
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.people import service
from referral_service.people.models import Person, Role

T = TypeVar("T")
PASSWORD = "correct horse battery staple"


class FakeClock:
    """`kit.clock.utcnow` as people/service.py reads it, moved by the test (no sleeping)."""

    def __init__(self) -> None:
        # Mid-step of a 30-second TOTP window, so codes one step either side are clear cut.
        self.now = datetime(2026, 11, 28, 9, 0, 15, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake


@dataclass(frozen=True)
class Orgs:
    practice: str
    timebank: str
    healthboard: str


@pytest.fixture
def orgs(session_factory: sessionmaker[Session]) -> Orgs:
    with unit_of_work(session_factory) as session:
        return Orgs(
            practice=register(session, OrgKind.PRACTICE, "Rushey Green", "F84001").id,
            timebank=register(session, OrgKind.TIMEBANK, "Rushey Green Time Bank", None).id,
            healthboard=register(session, OrgKind.HEALTHBOARD, "South East London", "QKK").id,
        )


@dataclass
class People:
    """Each call is one committed unit of work, like one request."""

    factory: sessionmaker[Session]
    settings: Settings
    orgs: Orgs

    def run(self, work: Callable[[Session], T]) -> T:
        with unit_of_work(self.factory) as session:
            return work(session)

    def add(self, email: str, role: Role = Role.BROKER, org_id: str | None = None) -> str:
        """Adds the person; returns the set-up token from the link."""
        org = (
            org_id
            or {
                Role.BROKER: self.orgs.timebank,
                Role.PRACTICE: self.orgs.practice,
                Role.ANALYST: self.orgs.healthboard,
            }[role]
        )
        added = self.run(
            lambda s: service.add_person(s, self.settings, org_id=org, email=email, role=role)
        )
        return token_of(added.setup_url)

    def set_up(self, email: str, role: Role = Role.BROKER) -> service.Started:
        token = self.add(email, role)
        return self.run(lambda s: service.complete_setup(s, self.settings, token, PASSWORD))

    def sign_in(self, email: str, password: str = PASSWORD) -> service.Started:
        return self.run(lambda s: service.sign_in(s, self.settings, email, password))

    def enrol(self, started: service.Started, now: datetime) -> tuple[str, service.Started]:
        """Scan the QR code and send the first code: (the secret, the signed-in session)."""
        secret, _uri = self.run(lambda s: service.totp_provisioning(s, _person(s, started)))
        code = pyotp.TOTP(secret).at(now)
        done = self.run(
            lambda s: service.confirm_second_factor(s, self.settings, started.token, code)
        )
        return secret, done

    def person(self, email: str) -> Person:
        return self.run(
            lambda s: s.scalars(select(Person).where(Person.email == email.lower())).one()
        )

    def current(self, token: str | None) -> service.Signed | None:
        return self.run(lambda s: service.current(s, self.settings, token))


def _person(session: Session, started: service.Started) -> Person:
    return session.get_one(Person, started.person.id)


def token_of(setup_url: str) -> str:
    return setup_url.rpartition("/setup/")[2]


@pytest.fixture
def people(
    session_factory: sessionmaker[Session], settings: Settings, orgs: Orgs, fake_clock: FakeClock
) -> People:
    return People(session_factory, settings, orgs)


def audit_rows(factory: sessionmaker[Session], kind: str | None = None) -> list[AuditEvent]:
    with factory() as session:
        stmt = select(AuditEvent).order_by(AuditEvent.seq)
        if kind is not None:
            stmt = stmt.where(AuditEvent.kind == kind)
        return list(session.scalars(stmt))
