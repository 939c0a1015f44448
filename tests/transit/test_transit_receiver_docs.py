"""The receiver example in docs/deliveries.md, run against deliveries SPIS made: integrators copy
it, so it must take what SPIS sends and refuse what the reference receiver refuses."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwe
from joserfc.jwk import ECKey

from referral_service.keys.jose import KeyStore
from referral_service.transit.outbound import seal, webhook_headers
from referral_service.transit.receiver import open_sealed as reference_open
from tests.fixtures.notifications import notification

DOC = Path(__file__).resolve().parents[2] / "docs" / "deliveries.md"


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    """The documented code, executed as a module of its own."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    (code,) = [block for block in blocks if "def verify_webhook(" in block]
    namespace: dict[str, Any] = {"__name__": "deliveries_example"}
    exec(compile(code, str(DOC), "exec"), namespace)  # our own documentation
    return namespace


@pytest.fixture
def gp_key() -> ECKey:
    return ECKey.generate_key("P-384")


def sent(keys: KeyStore, gp: ECKey, at: datetime | None = None) -> tuple[dict[str, str], bytes]:
    public = gp.as_dict(private=False, kid="gp-enc", use="enc")
    body = seal(notification(), public, keys).encode("ascii")
    return webhook_headers(str(uuid.uuid4()), body, keys, at or datetime.now(UTC)), body


def test_the_example_verifies_and_opens_what_spis_sends(
    example: dict[str, Any], transit_keys: KeyStore, gp_key: ECKey
) -> None:
    headers, body = sent(transit_keys, gp_key)
    jwks = transit_keys.public_jwks()

    assert example["verify_webhook"](headers, body, jwks) == headers["webhook-id"]
    assert example["open_sealed"](body, gp_key, jwks) == reference_open(body, gp_key, jwks)


def test_the_example_refuses_a_changed_byte_a_replay_and_another_signer(
    example: dict[str, Any], transit_keys: KeyStore, gp_key: ECKey, tmp_path: Path
) -> None:
    rejected, verify = example["Rejected"], example["verify_webhook"]
    jwks = transit_keys.public_jwks()
    headers, body = sent(transit_keys, gp_key)
    old_headers, old_body = sent(transit_keys, gp_key, datetime.now(UTC) - timedelta(seconds=301))
    other_headers, other_body = sent(KeyStore(tmp_path / "other", generate=True), gp_key)
    changed = bytearray(body)
    changed[20] ^= 0x01

    for case in [(headers, bytes(changed)), (old_headers, old_body), (other_headers, other_body)]:
        with pytest.raises(rejected):
            verify(*case, jwks)
    with pytest.raises(rejected):
        verify({k: v for k, v in headers.items() if k != "webhook-id"}, body, jwks)


def test_the_example_refuses_a_body_for_another_key_or_compressed(
    example: dict[str, Any], transit_keys: KeyStore, gp_key: ECKey
) -> None:
    rejected, open_sealed = example["Rejected"], example["open_sealed"]
    jwks = transit_keys.public_jwks()
    _, body = sent(transit_keys, gp_key)
    zipped = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF", "cty": "JWT"},
        b"x" * 100,
        ECKey.import_key(gp_key.as_dict(private=False)),
        algorithms=["ECDH-ES+A256KW", "A256GCM", "DEF"],
    )

    for token, key in [(body, ECKey.generate_key("P-384")), (zipped.encode(), gp_key)]:
        with pytest.raises(rejected):
            open_sealed(token, key, jwks)
    with pytest.raises(rejected):
        open_sealed(b"not a JWE at all", gp_key, jwks)
