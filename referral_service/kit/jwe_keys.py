"""JWE encryption keys: which public JWK may SPIS encrypt to, and in what shape.

Pure JOSE rules with no domain imports: `auth.jwks` checks the encryption keys of a JWK Set a
client registers with them, and `transit` picks the key it encrypts to and names its own keys'
algorithms with the same constants.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

JwkDict = dict[str, Any]
EncryptionKey = ECKey | RSAKey

ECDH_ES_A256KW = "ECDH-ES+A256KW"
RSA_OAEP_256 = "RSA-OAEP-256"
# The key-management algorithms we encrypt with and accept; RSA1_5 and `dir` are never among them.
KEY_ALGORITHMS = (ECDH_ES_A256KW, RSA_OAEP_256)
ALG_FOR_KTY = {"EC": ECDH_ES_A256KW, "RSA": RSA_OAEP_256}
EC_CURVES = frozenset({"P-256", "P-384"})
MIN_RSA_BITS = 2048
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
PUBLIC_MEMBERS = {"EC": ("crv", "x", "y"), "RSA": ("n", "e")}
ENCRYPTING_OPS = frozenset({"encrypt", "wrapKey", "deriveKey"})


class UnusableKey(ValueError):
    """A JWK SPIS cannot encrypt to; the message names the rule, never key material."""


def is_encryption_jwk(key: Mapping[str, Any]) -> bool:
    """Does the client mean this key for encryption (`use: enc`, an encrypting `key_ops`, or an
    encryption `alg`)? Such keys are never used to check a signature."""
    if key.get("use") == "enc" or key.get("alg") in KEY_ALGORITHMS:
        return True
    ops = key.get("key_ops")
    return "use" not in key and isinstance(ops, list) and bool(ENCRYPTING_OPS & set(ops))


def checked_encryption_key(key: Mapping[str, Any]) -> JwkDict:
    """The key reduced to its public members with `use: enc` and an explicit `alg`."""
    if PRIVATE_MEMBERS & key.keys():
        raise UnusableKey("The JWK Set contains private key material; register public keys only")
    kty, kid = key.get("kty"), key.get("kid")
    if kty not in ALG_FOR_KTY:
        raise UnusableKey("Encryption keys must be EC (P-256/P-384) or RSA keys")
    if not isinstance(kid, str) or not 0 < len(kid) <= 255:
        raise UnusableKey("Every key needs a 'kid' (a string of at most 255 characters)")
    alg = key.get("alg", ALG_FOR_KTY[kty])
    if key.get("use", "enc") != "enc" or alg != ALG_FOR_KTY[kty]:
        raise UnusableKey(f"{kty} encryption keys must be for {ALG_FOR_KTY[kty]}")
    kept: JwkDict = {"kty": kty, "kid": kid, "use": "enc", "alg": alg}
    kept.update({name: key[name] for name in PUBLIC_MEMBERS[kty] if name in key})
    _check_strength(kept)
    import_encryption_key(kept)  # proves the numbers form a valid public key
    return kept


def _check_strength(key: JwkDict) -> None:
    if key["kty"] == "EC" and key.get("crv") not in EC_CURVES:
        raise UnusableKey("EC encryption keys must use the P-256 or P-384 curve")
    if key["kty"] == "RSA" and rsa_bits(key.get("n"), UnusableKey) < MIN_RSA_BITS:
        raise UnusableKey(f"RSA encryption keys must be at least {MIN_RSA_BITS} bits")


def rsa_bits(modulus: object, error: type[Exception]) -> int:
    """The size of an RSA public key from its JWK `n`; `error` when `n` is missing or garbled.
    Checked before importing: joserfc only warns about short RSA keys."""
    if not isinstance(modulus, str):
        raise error("RSA keys need a modulus 'n'")
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except (binascii.Error, ValueError):
        raise error("RSA key modulus is not base64url") from None
    return int.from_bytes(raw, "big").bit_length()


def import_encryption_key(key: JwkDict) -> EncryptionKey:
    try:
        if key["kty"] == "RSA":
            return RSAKey.import_key(key)
        return ECKey.import_key(key)
    except (JoseError, ValueError, TypeError, KeyError):
        raise UnusableKey(f"Key {key.get('kid')!r} is not a valid public key") from None


def select_encryption_key(keys: Iterable[Mapping[str, Any]]) -> JwkDict | None:
    """The first usable encryption key in the client's set (its order is its preference, so a
    client rotating lists the new key first); keys SPIS cannot use are skipped, not fatal."""
    for key in keys:
        if not is_encryption_jwk(key):
            continue
        try:
            return checked_encryption_key(key)
        except UnusableKey:
            continue
    return None
