"""Outbound messages: sealed by SPIS (sign, then encrypt), opened as a receiving GP system would."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import ECKey, RSAKey

from referral_service.keys.jose import KeyStore, create_key_file
from referral_service.transit.jwe import encrypt_response
from referral_service.transit.outbound import seal
from tests.fixtures.receiver import RejectedMessage, open_sealed

NOTIFICATION = {"resourceType": "Bundle", "type": "message", "entry": []}


@pytest.fixture(params=["EC", "RSA"])
def gp_key(request: pytest.FixtureRequest) -> ECKey | RSAKey:
    """The receiving system's encryption key pair."""
    return ECKey.generate_key("P-384") if request.param == "EC" else RSAKey.generate_key(3072)


def public(key: ECKey | RSAKey, kid: str = "gp-enc") -> dict[str, Any]:
    return key.as_dict(private=False, kid=kid, use="enc")


def header_of(compact: str | bytes) -> dict[str, Any]:
    segment = (compact.encode() if isinstance(compact, str) else compact).split(b".")[0]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + b"==="))
    return decoded


def test_a_sealed_message_opens_to_the_signed_payload(
    transit_keys: KeyStore, gp_key: ECKey | RSAKey
) -> None:
    token = seal(NOTIFICATION, public(gp_key), transit_keys)

    payload = open_sealed(token, gp_key, transit_keys.public_jwks())

    assert json.loads(payload) == NOTIFICATION


def test_the_envelope_is_a_nested_jwt_signed_with_spis_current_key(
    transit_keys: KeyStore,
) -> None:
    gp = ECKey.generate_key("P-384")
    token = seal(b'{"resourceType":"Bundle"}', public(gp), transit_keys)

    outer = header_of(token)
    inner = jwe.decrypt_compact(token, gp, algorithms=["ECDH-ES+A256KW", "A256GCM"]).plaintext
    assert inner is not None
    assert outer["cty"] == "JWT"
    assert outer["kid"] == "gp-enc"
    assert outer["enc"] == "A256GCM"
    assert header_of(inner) == {
        "alg": "ES384",
        "kid": transit_keys.ring().signing_key().kid,
        "cty": "application/fhir+json",
    }


def test_a_private_jwk_dict_opens_it_too(transit_keys: KeyStore) -> None:
    gp = ECKey.generate_key("P-256")
    token = seal(NOTIFICATION, public(gp), transit_keys)

    assert open_sealed(token, gp.as_dict(private=True), transit_keys.public_jwks())


def test_a_large_payload_round_trips(transit_keys: KeyStore) -> None:
    gp = ECKey.generate_key("P-384")
    payload = b'{"pad":"' + b"x" * 400_000 + b'"}'  # beyond joserfc's 128 KB JWS default

    assert (
        open_sealed(seal(payload, public(gp), transit_keys), gp, transit_keys.public_jwks())
        == payload
    )


@pytest.mark.parametrize("segment", [1, 2, 3, 4])
def test_a_tampered_envelope_is_rejected(transit_keys: KeyStore, segment: int) -> None:
    gp = ECKey.generate_key("P-384")
    parts = seal(NOTIFICATION, public(gp), transit_keys).split(".")
    part = list(parts[segment])
    part[3] = "A" if part[3] != "A" else "B"
    parts[segment] = "".join(part)

    with pytest.raises(RejectedMessage):
        open_sealed(".".join(parts), gp, transit_keys.public_jwks())


def test_a_message_for_someone_else_is_rejected(transit_keys: KeyStore) -> None:
    token = seal(NOTIFICATION, public(ECKey.generate_key("P-384")), transit_keys)

    with pytest.raises(RejectedMessage, match="decrypted"):
        open_sealed(token, ECKey.generate_key("P-384"), transit_keys.public_jwks())


def test_a_message_signed_by_another_spis_is_rejected(
    transit_keys: KeyStore, tmp_path: Path
) -> None:
    gp = ECKey.generate_key("P-384")
    impostor = KeyStore(tmp_path / "impostor", generate=True)

    token = seal(NOTIFICATION, public(gp), impostor)

    with pytest.raises(RejectedMessage, match="not signed by a key SPIS publishes"):
        open_sealed(token, gp, transit_keys.public_jwks())


def test_a_forged_signature_under_spis_kid_is_rejected(transit_keys: KeyStore) -> None:
    gp = ECKey.generate_key("P-384")
    kid = transit_keys.ring().signing_key().kid
    forged = jws.serialize_compact(
        {"alg": "ES384", "kid": kid}, b"{}", ECKey.generate_key("P-384"), algorithms=["ES384"]
    )
    token = encrypt_response(forged.encode(), public(gp), content_type="JWT")

    with pytest.raises(RejectedMessage, match="signature"):
        open_sealed(token, gp, transit_keys.public_jwks())


def test_an_unsigned_message_is_rejected(transit_keys: KeyStore) -> None:
    gp = ECKey.generate_key("P-384")
    plain = encrypt_response(json.dumps(NOTIFICATION).encode(), public(gp))  # cty fhir+json
    claims_jwt = encrypt_response(b'{"resourceType":"Bundle"}', public(gp), content_type="JWT")

    with pytest.raises(RejectedMessage, match="not signed"):
        open_sealed(plain, gp, transit_keys.public_jwks())
    with pytest.raises(RejectedMessage, match="not a compact JWS"):
        open_sealed(claims_jwt, gp, transit_keys.public_jwks())


def test_alg_none_and_hmac_inner_tokens_are_rejected(transit_keys: KeyStore) -> None:
    gp = ECKey.generate_key("P-384")
    kid = transit_keys.ring().signing_key().kid
    none = f"{_b64(json.dumps({'alg': 'none', 'kid': kid}).encode())}.{_b64(b'{}')}."
    for inner in (none, _hs256_with_spis_public_key_as_secret(transit_keys, kid)):
        token = encrypt_response(inner.encode(), public(gp), content_type="JWT")
        with pytest.raises(RejectedMessage, match="ES384"):
            open_sealed(token, gp, transit_keys.public_jwks())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _hs256_with_spis_public_key_as_secret(keys: KeyStore, kid: str) -> str:
    from joserfc.jwk import OctKey

    secret = OctKey.import_key(json.dumps(keys.public_jwks()["keys"][0]))
    return jws.serialize_compact({"alg": "HS256", "kid": kid}, b"{}", secret, algorithms=["HS256"])


def test_zip_in_the_envelope_is_rejected_unopened(transit_keys: KeyStore) -> None:
    gp = ECKey.generate_key("P-384")
    token = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF", "cty": "JWT"},
        b"x" * 1000,
        ECKey.import_key(public(gp)),
        algorithms=["ECDH-ES+A256KW", "A256GCM", "DEF"],
    )

    with pytest.raises(RejectedMessage, match="zip"):
        open_sealed(token, gp, transit_keys.public_jwks())


def test_messages_signed_before_a_rotation_still_verify(tmp_path: Path) -> None:
    gp = ECKey.generate_key("P-384")
    spis = KeyStore(tmp_path / "keys", generate=True)
    before = seal(NOTIFICATION, public(gp), spis)

    create_key_file(tmp_path / "keys", "ES384")
    rotated = KeyStore(tmp_path / "keys", generate=True)
    after = seal(NOTIFICATION, public(gp), rotated)

    published = rotated.public_jwks()
    assert (
        header_of(jwe.decrypt_compact(after, gp).plaintext or b"")["kid"]
        != header_of(jwe.decrypt_compact(before, gp).plaintext or b"")["kid"]
    )
    assert open_sealed(before, gp, published) == open_sealed(after, gp, published)
