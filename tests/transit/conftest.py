"""Transit fixtures: SPIS keys made once per run, the real app wrapped in TransitMiddleware, and a
practice whose registered JWKS holds a signing key *and* an encryption key.

Until the lead wires the middleware and the JWKS route into create_app, `app` here does it the way
the wiring note says, so every API fixture (client, practice_headers, ...) runs through it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth.models import Client
from referral_service.config import Settings
from referral_service.keys.jose import KeyStore
from referral_service.organisations.models import OrgKind
from tests.fixtures.systems import TestSystem, register_system


@pytest.fixture(scope="session")
def transit_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    """One key set for the run: an RSA 3072 key costs a tenth of a second to make."""
    return KeyStore(tmp_path_factory.mktemp("transit") / "keys", generate=True)


@pytest.fixture
def app(
    settings: Settings, session_factory: sessionmaker[Session], transit_keys: KeyStore
) -> FastAPI:
    from referral_service.app import create_app
    from referral_service.transit.endpoints import router as transit_router
    from referral_service.transit.middleware import TransitMiddleware

    application = create_app(settings)
    application.state.transit_keys = transit_keys
    application.include_router(transit_router)
    application.add_middleware(TransitMiddleware)
    return application


@dataclass
class JoseSystem:
    """A registered system that can also receive JWE: its encryption key pair."""

    system: TestSystem
    enc_key: ECKey | RSAKey
    enc_jwk: dict[str, Any]  # the public half, as registered

    @property
    def org_id(self) -> str:
        return self.system.org_id


def encryption_jwk(key: ECKey | RSAKey, kid: str) -> dict[str, Any]:
    alg = "ECDH-ES+A256KW" if isinstance(key, ECKey) else "RSA-OAEP-256"
    return key.as_dict(private=False, kid=kid, use="enc", alg=alg)


def add_registered_keys(
    session_factory: sessionmaker[Session], client_id: str, *keys: dict[str, Any]
) -> None:
    """Append public keys to a client's stored JWKS.

    Written to the column directly so a test can give an already registered client an extra key
    (registration itself accepts encryption keys: see test_a_client_can_register_an_encryption_key).
    """
    with session_factory() as session, session.begin():
        client = session.get(Client, client_id)
        assert client is not None
        assert client.jwks is not None
        document = json.loads(client.jwks)
        document["keys"].extend(keys)
        client.jwks = json.dumps(document)


def register_jose_system(
    session_factory: sessionmaker[Session],
    kind: OrgKind = OrgKind.PRACTICE,
    *,
    enc_key: ECKey | RSAKey | None = None,
    name: str = "Rushey Green Group Practice",
    ods: str | None = "F84001",
) -> JoseSystem:
    system = register_system(session_factory, kind, name=name, ods=ods)
    key = enc_key or ECKey.generate_key("P-384")
    jwk = encryption_jwk(key, f"{system.kid}-enc")
    add_registered_keys(session_factory, system.client_id, jwk)
    return JoseSystem(system, key, jwk)


@pytest.fixture
def jose_practice(session_factory: sessionmaker[Session]) -> JoseSystem:
    return register_jose_system(session_factory)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"
