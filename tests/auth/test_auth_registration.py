"""register_client: which key sets are accepted, and that a refused one leaves nothing behind."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth.models import Client
from referral_service.auth.service import register_client
from referral_service.errors import Invalid, NotFound
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register


@pytest.fixture
def org_id(session_factory: sessionmaker[Session]) -> str:
    with session_factory.begin() as session:
        return register(session, OrgKind.TIMEBANK, "Rushey Green Time Bank", None).id


def ec_jwk(kid: str = "k1", **extra: Any) -> dict[str, Any]:
    return {**ECKey.generate_key("P-384").as_dict(private=False), "kid": kid, **extra}


def short_rsa_jwk(bits: int) -> dict[str, Any]:
    # Built by hand: joserfc warns (an error under our pytest settings) when generating these.
    numbers = rsa.generate_private_key(65537, bits).public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": "short", "n": b64(numbers.n), "e": b64(numbers.e)}


def client_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Client)) or 0


def try_register(session_factory: sessionmaker[Session], org_id: str, **kwargs: Any) -> Client:
    arguments: dict[str, Any] = {"jwks": None, "jwks_url": None, "scopes": None, "name": None}
    arguments.update(kwargs)
    with session_factory.begin() as session:
        return register_client(session, org_id, **arguments)


def test_public_jwks_stored_with_only_the_members_we_use(
    session_factory: sessionmaker[Session], org_id: str
) -> None:
    jwk = ec_jwk(use="sig", alg="ES384", x5t="ignored", note="ignored")
    client = try_register(session_factory, org_id, jwks={"keys": [jwk]}, name="Broker app")

    with session_factory() as session:
        stored = session.get(Client, client.id)
    assert stored is not None
    assert stored.jwks is not None
    (kept,) = json.loads(stored.jwks)["keys"]
    assert set(kept) == {"kty", "kid", "crv", "x", "y", "use", "alg"}
    assert stored.active
    assert stored.name == "Broker app"
    assert stored.jwks_url is None
    assert stored.scopes.startswith("system/Task.rus")


def test_rsa_2048_and_jwks_url_accepted(
    session_factory: sessionmaker[Session], org_id: str
) -> None:
    rsa_jwk = {**RSAKey.generate_key(2048).as_dict(private=False), "kid": "r1"}
    try_register(session_factory, org_id, jwks={"keys": [rsa_jwk, ec_jwk("e1")]})
    by_url = try_register(session_factory, org_id, jwks_url="https://broker.example/jwks.json")
    assert by_url.jwks is None
    assert client_count(session_factory) == 2


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_private_key_refused_and_not_stored(
    session_factory: sessionmaker[Session], org_id: str, alg: str
) -> None:
    key = ECKey.generate_key("P-384") if alg == "ES384" else RSAKey.generate_key(2048)
    private = {**key.as_dict(private=True), "kid": "leaked"}
    assert "d" in private

    with pytest.raises(Invalid, match="private key material"):
        try_register(session_factory, org_id, jwks={"keys": [ec_jwk(), private]})
    assert client_count(session_factory) == 0


@pytest.mark.parametrize(
    ("jwks", "message"),
    [
        ({"keys": []}, "between 1 and"),
        ([{"kty": "EC"}], "'keys' list"),
        ({"keys": [ec_jwk("same"), ec_jwk("same")]}, "different 'kid'"),
        ({"keys": [{k: v for k, v in ec_jwk().items() if k != "kid"}]}, "needs a 'kid'"),
        ({"keys": [{**ECKey.generate_key("P-256").as_dict(), "kid": "p256"}]}, "P-384"),
        ({"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}, "private key material"),
        ({"keys": [{"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"}]}, "Only RSA and EC"),
        ({"keys": [ec_jwk(use="enc")]}, "for signing"),
        ({"keys": [ec_jwk(alg="ES256")]}, "for signing"),
        ({"keys": [{**ec_jwk(), "x": ec_jwk()["y"]}]}, "not a valid public EC key"),
    ],
)
def test_bad_jwks_refused(
    session_factory: sessionmaker[Session], org_id: str, jwks: Any, message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        try_register(session_factory, org_id, jwks=jwks)
    assert client_count(session_factory) == 0


def test_short_rsa_key_refused(session_factory: sessionmaker[Session], org_id: str) -> None:
    with pytest.raises(Invalid, match="at least 2048 bits"):
        try_register(session_factory, org_id, jwks={"keys": [short_rsa_jwk(1024)]})


def test_exactly_one_key_source(session_factory: sessionmaker[Session], org_id: str) -> None:
    with pytest.raises(Invalid, match="exactly one"):
        try_register(session_factory, org_id)
    with pytest.raises(Invalid, match="exactly one"):
        try_register(
            session_factory, org_id, jwks={"keys": [ec_jwk()]}, jwks_url="https://x.example/jwks"
        )


@pytest.mark.parametrize("url", ["ftp://x.example/jwks", "/jwks.json", "https://user@x.example/j"])
def test_bad_jwks_url_refused(
    session_factory: sessionmaker[Session], org_id: str, url: str
) -> None:
    with pytest.raises(Invalid, match="JWKS URL"):
        try_register(session_factory, org_id, jwks_url=url)


def test_https_required_when_asked(session_factory: sessionmaker[Session], org_id: str) -> None:
    with session_factory.begin() as session, pytest.raises(Invalid, match="https URL"):
        register_client(session, org_id, None, "http://x.example/jwks", require_https=True)


def test_unknown_organisation(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(NotFound):
        try_register(
            session_factory, "00000000-0000-0000-0000-000000000000", jwks={"keys": [ec_jwk()]}
        )


def test_scopes_beyond_ceiling_refused(session_factory: sessionmaker[Session], org_id: str) -> None:
    with pytest.raises(Invalid, match="beyond"):
        try_register(session_factory, org_id, jwks={"keys": [ec_jwk()]}, scopes="system/Patient.c")
    assert client_count(session_factory) == 0
