"""The demo's sign-ins for the web workspace: a broker at each demo time bank and a person at the
demo practice, with passwords set directly (development only; in production a person chooses their
own through a set-up link).

The passwords are made once and kept in var/demo/signins.json (readable by its owner only), so a
second `spis demo` prints the same ones; each run sets them again, which also ends a lock-out.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from referral_service.config import Settings
from referral_service.db import opened, unit_of_work
from referral_service.demo.setup import Cast, System
from referral_service.people import repository as people_repository
from referral_service.people import service as people
from referral_service.people.models import Role


@dataclass(frozen=True)
class DemoSignIn:
    role: Role
    organisation: str
    email: str
    password: str


def prepare_signins(settings: Settings, cast: Cast) -> list[DemoSignIn]:
    """Add the demo's people if they are missing and (re)set their passwords. None in production,
    where the people service refuses to set a password."""
    if settings.environment == "production":
        return []
    wanted = [
        (Role.BROKER, cast.catford, "broker@catford.demo.invalid"),
        (Role.BROKER, cast.lewisham, "broker@lewisham.demo.invalid"),
        (Role.PRACTICE, cast.practice, "practice@rusheygreen.demo.invalid"),
    ]
    chosen = _passwords(settings.var_dir / "demo" / "signins.json", [e for *_, e in wanted])
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        for role, system, email in wanted:
            _ensure_person(session, settings, role, system, email)
            people.set_password_for_development(session, settings, email, chosen[email])
    return [DemoSignIn(role, system.name, email, chosen[email]) for role, system, email in wanted]


def _ensure_person(
    session: Session, settings: Settings, role: Role, system: System, email: str
) -> None:
    if people_repository.by_email(session, email) is None:
        people.add_person(session, settings, org_id=system.org_id, email=email, role=role)


def _passwords(path: Path, emails: list[str]) -> dict[str, str]:
    """One password per email, kept between runs. Hex after a prefix: never contains the
    address's name part, which the password policy refuses."""
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [email for email in emails if email not in known]
    if missing:
        known |= {email: f"demo-{secrets.token_hex(8)}" for email in missing}
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            json.dump(known, file, indent=2)
    return known


ROLE_WORDS = {Role.BROKER: "Time bank broker", Role.PRACTICE: "Practice staff"}


def describe(signins: list[DemoSignIn], web_address: str, second_factor: str) -> list[str]:
    """The lines `spis demo` ends with."""
    if not signins:
        return [
            f"Web workspace: {web_address}",
            "No demo sign-ins in production: add people with `spis user add`.",
        ]
    factor = (
        "no second factor is asked for while the demo serves"
        if second_factor == "optional"
        else "the first sign-in asks each person to set up an authenticator app"
    )
    lines = [
        f"Web workspace: {web_address}",
        f"Demo sign-ins, for development only ({factor}):",
    ]
    for signin in signins:
        who = f"{ROLE_WORDS[signin.role]} at {signin.organisation}"
        lines.append(f"  {who}: email {signin.email}, password {signin.password}")
    return lines
