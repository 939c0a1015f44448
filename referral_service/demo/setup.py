"""What an operator does once with the CLI: register the practice, two time banks and their systems.

Kept in var/demo/state.json so that running the demo again reuses them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from referral_service.auth.service import register_client
from referral_service.config import Settings
from referral_service.db import opened, unit_of_work
from referral_service.demo.smart_client import load_or_create_key, public_jwks
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.timebanks.service import set_profile

PRACTICE_ODS = "F84001"


@dataclass(frozen=True)
class System:
    name: str
    org_id: str
    client_id: str
    key: ECKey


@dataclass(frozen=True)
class Cast:
    practice: System
    catford: System  # ranks first for the demo referral, and declines it
    lewisham: System  # takes it


TIMEBANKS = {
    "catford": ("Catford Time Bank", ["SE6"], ["befriending", "walking-group", "music"], 6),
    "lewisham": (
        "Lewisham Time Bank",
        ["SE6", "SE13"],
        ["befriending", "gardening", "digital-skills"],
        4,
    ),
}


def prepare(settings: Settings) -> Cast:
    folder = settings.var_dir / "demo"
    state_file = folder / "state.json"
    state: dict[str, dict[str, str]] = (
        json.loads(state_file.read_text()) if state_file.exists() else {}
    )
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        systems = {}
        for key in ("practice", *TIMEBANKS):
            known = state.get(key)
            if known is None or organisations.get(session, known["org_id"]) is None:
                state[key] = _register(
                    session, key, load_or_create_key(folder / f"{key}.private.jwk")
                )
            systems[key] = System(
                state[key]["name"],
                state[key]["org_id"],
                state[key]["client_id"],
                load_or_create_key(folder / f"{key}.private.jwk"),
            )
    state_file.write_text(json.dumps(state, indent=2))
    return Cast(systems["practice"], systems["catford"], systems["lewisham"])


def _register(session: Session, key: str, private: ECKey) -> dict[str, str]:
    if key == "practice":
        org = organisations.by_ods(session, PRACTICE_ODS) or register(
            session, OrgKind.PRACTICE, "Rushey Green Group Practice (demo)", PRACTICE_ODS
        )
    else:
        name, catchment, offers, capacity = TIMEBANKS[key]
        org = register(session, OrgKind.TIMEBANK, name, None)
        set_profile(session, org.id, catchment, offers, capacity)
    client = register_client(session, org.id, public_jwks(private), None, name=f"{org.name} system")
    return {"name": org.name, "org_id": org.id, "client_id": client.id}
