"""Opening client JWEs and encrypting to client keys: the round trips, and every refusal."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwe
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, RSAKey

from referral_service.keys.jose import KeyStore
from referral_service.kit.jwe_keys import (
    UnusableKey,
    checked_encryption_key,
    select_encryption_key,
)
from referral_service.transit.jwe import (
    JweTooLarge,
    TransitError,
    UndecryptableJwe,
    UnsupportedJwe,
    encrypt_response,
    open_request,
)

BODY = json.dumps({"resourceType": "Bundle", "type": "transaction", "entry": []}).encode()
ALGS = ["ECDH-ES+A256KW", "RSA-OAEP-256"]


def spis_key(store: KeyStore, alg: str) -> dict[str, Any]:
    return next(k for k in store.public_jwks()["keys"] if k["alg"] == alg)


def to_spis(
    store: KeyStore, alg: str = "ECDH-ES+A256KW", body: bytes = BODY, **header: Any
) -> bytes:
    """What a client does: a compact JWE to SPIS's published key."""
    jwk = spis_key(store, alg)
    protected = {"alg": alg, "enc": "A256GCM", "kid": jwk["kid"], **header}
    key = ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)
    return jwe.encrypt_compact(protected, body, key, algorithms=[alg, protected["enc"]]).encode()


def segments(token: bytes) -> list[bytes]:
    return token.split(b".")


def with_header(token: bytes, header: dict[str, Any]) -> bytes:
    encoded = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=")
    return b".".join([encoded, *segments(token)[1:]])


def flip(token: bytes, segment: int, offset: int = 5) -> bytes:
    parts = segments(token)
    part = bytearray(parts[segment])
    part[offset] = ord("A") if part[offset] != ord("A") else ord("B")
    parts[segment] = bytes(part)
    return b".".join(parts)


# -- round trips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ALGS)
def test_a_client_jwe_decrypts_with_either_algorithm(transit_keys: KeyStore, alg: str) -> None:
    opened = open_request(to_spis(transit_keys, alg), transit_keys)

    assert opened.plaintext == BODY
    assert opened.content_type == "application/fhir+json"


@pytest.mark.parametrize(
    ("cty", "expected"),
    [
        ("application/fhir+json", "application/fhir+json"),
        ("fhir+json", "application/fhir+json"),
        ("application/json", "application/json"),
        ("json-patch+json", "application/json-patch+json"),
    ],
)
def test_cty_names_the_plaintext_type(transit_keys: KeyStore, cty: str, expected: str) -> None:
    assert open_request(to_spis(transit_keys, cty=cty), transit_keys).content_type == expected


def test_a_jwe_without_kid_is_tried_against_our_keys(transit_keys: KeyStore) -> None:
    token = to_spis(transit_keys)
    header = json.loads(base64.urlsafe_b64decode(segments(token)[0] + b"==="))
    jwk = spis_key(transit_keys, "ECDH-ES+A256KW")
    del header["kid"], header["epk"]
    no_kid = jwe.encrypt_compact(
        header, BODY, ECKey.import_key(jwk), algorithms=["ECDH-ES+A256KW", "A256GCM"]
    )

    assert open_request(no_kid.encode(), transit_keys).plaintext == BODY


def test_bodies_above_joserfcs_64k_default_are_accepted(transit_keys: KeyStore) -> None:
    big = b'{"resourceType":"Bundle","pad":"' + b"x" * 300_000 + b'"}'

    assert open_request(to_spis(transit_keys, body=big), transit_keys).plaintext == big


@pytest.mark.parametrize("kty", ["EC", "RSA"])
def test_responses_encrypt_to_the_client_key(kty: str) -> None:
    private = ECKey.generate_key("P-256") if kty == "EC" else RSAKey.generate_key(2048)
    public = private.as_dict(private=False, kid="client-enc", use="enc")

    token = encrypt_response(BODY, public)

    opened = jwe.decrypt_compact(token, private, algorithms=[*ALGS, "A256GCM"])
    assert opened.plaintext == BODY
    assert opened.protected["cty"] == "application/fhir+json"
    assert opened.protected["kid"] == "client-enc"
    assert opened.protected["enc"] == "A256GCM"
    assert opened.protected["alg"] == ("ECDH-ES+A256KW" if kty == "EC" else "RSA-OAEP-256")


# -- refusals -------------------------------------------------------------------------------------


def refusal(transit_keys: KeyStore, token: bytes, **kwargs: Any) -> TransitError:
    with pytest.raises(TransitError) as caught:
        open_request(token, transit_keys, **kwargs)
    return caught.value


@pytest.mark.parametrize(
    ("segment", "what"), [(1, "encrypted key"), (2, "iv"), (3, "ciphertext"), (4, "tag")]
)
def test_a_flipped_byte_anywhere_is_refused(
    transit_keys: KeyStore, segment: int, what: str
) -> None:
    error = refusal(transit_keys, flip(to_spis(transit_keys), segment, offset=3))

    assert isinstance(error, TransitError), what
    assert error.status == 400


@pytest.mark.parametrize("alg", ALGS)
def test_tampered_ciphertext_gives_the_same_answer_as_a_wrong_key(
    transit_keys: KeyStore, alg: str
) -> None:
    tampered = refusal(transit_keys, flip(to_spis(transit_keys, alg), 3))
    stranger = ECKey.generate_key("P-384") if alg != "RSA-OAEP-256" else RSAKey.generate_key(2048)
    wrong_key = jwe.encrypt_compact(
        {"alg": alg, "enc": "A256GCM", "kid": spis_key(transit_keys, alg)["kid"]},
        BODY,
        stranger,
        algorithms=[alg, "A256GCM"],
    ).encode()

    wrong = refusal(transit_keys, wrong_key)

    assert type(tampered) is type(wrong) is UndecryptableJwe
    assert tampered.message == wrong.message
    assert tampered.status == 400


def test_a_changed_header_breaks_the_authentication_tag(transit_keys: KeyStore) -> None:
    token = to_spis(transit_keys, cty="application/fhir+json")
    header = json.loads(base64.urlsafe_b64decode(segments(token)[0] + b"==="))

    error = refusal(transit_keys, with_header(token, {**header, "cty": "application/json"}))

    assert isinstance(error, UndecryptableJwe)


def test_an_unknown_kid_is_refused(transit_keys: KeyStore) -> None:
    token = to_spis(transit_keys)
    header = json.loads(base64.urlsafe_b64decode(segments(token)[0] + b"==="))

    assert isinstance(
        refusal(transit_keys, with_header(token, {**header, "kid": "nope"})), UndecryptableJwe
    )


@pytest.mark.parametrize(
    "cut",
    [
        lambda t: t[:-10],  # tag shortened
        lambda t: t[: len(t) // 2],  # ciphertext cut, tag gone
        lambda t: b".".join(segments(t)[:4]),  # four segments
        lambda t: segments(t)[0],  # header only
    ],
)
def test_truncated_jwes_are_refused(transit_keys: KeyStore, cut: Callable[[bytes], bytes]) -> None:
    assert refusal(transit_keys, cut(to_spis(transit_keys))).status == 400


@pytest.mark.parametrize(
    "body", [b"", b"not a jwe", b"a.b.c.d.e", b"....", b"e30.e30.e30.e30.e30", b"W10.a.b.c.d"]
)
def test_garbage_is_a_structure_error(transit_keys: KeyStore, body: bytes) -> None:
    error = refusal(transit_keys, body)

    assert error.status == 400
    assert error.issue_code in ("structure", "not-supported")


def test_rsa1_5_is_refused_before_any_key_is_used(
    transit_keys: KeyStore, no_decrypt: list[str]
) -> None:
    rsa = RSAKey.import_key(spis_key(transit_keys, "RSA-OAEP-256"))
    with pytest.warns(SecurityWarning):
        token = jwe.encrypt_compact(
            {"alg": "RSA1_5", "enc": "A256GCM"}, BODY, rsa, algorithms=["RSA1_5", "A256GCM"]
        )

    error = refusal(transit_keys, token.encode())

    assert isinstance(error, UnsupportedJwe)
    assert "alg" in error.message


@pytest.mark.parametrize("alg", ["dir", "A128KW", "A256KW", "ECDH-ES", "ECDH-ES+A128KW"])
def test_other_key_management_algorithms_are_refused(
    transit_keys: KeyStore, no_decrypt: list[str], alg: str
) -> None:
    if alg.startswith("ECDH"):
        key: ECKey | OctKey = ECKey.import_key(spis_key(transit_keys, "ECDH-ES+A256KW"))
    else:
        key = OctKey.generate_key(256 if alg in ("dir", "A256KW") else 128)
    token = jwe.encrypt_compact(
        {"alg": alg, "enc": "A256GCM"}, BODY, key, algorithms=[alg, "A256GCM"]
    )

    error = refusal(transit_keys, token.encode())

    assert isinstance(error, UnsupportedJwe)
    assert error.status == 400


@pytest.mark.parametrize("enc", ["A128CBC-HS256", "A256CBC-HS512", "A128GCM"])
def test_other_content_encryption_is_refused(
    transit_keys: KeyStore, no_decrypt: list[str], enc: str
) -> None:
    jwk = spis_key(transit_keys, "ECDH-ES+A256KW")
    token = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": enc, "kid": jwk["kid"]},
        BODY,
        ECKey.import_key(jwk),
        algorithms=["ECDH-ES+A256KW", enc],
    )

    error = refusal(transit_keys, token.encode())

    assert isinstance(error, UnsupportedJwe)
    assert "enc" in error.message


def test_zip_is_refused_before_decrypting(transit_keys: KeyStore, no_decrypt: list[str]) -> None:
    # A real DEF-compressed JWE, inflating to 50 MB: it must never be decrypted, let alone inflated.
    bomb = b"{" + b" " * 50_000_000 + b"}"
    jwk = spis_key(transit_keys, "ECDH-ES+A256KW")
    token = jwe.encrypt_compact(
        {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF", "kid": jwk["kid"]},
        bomb,
        ECKey.import_key(jwk),
        algorithms=["ECDH-ES+A256KW", "A256GCM", "DEF"],
    )
    assert len(token) < 200_000
    assert len(zlib.compress(bomb)) < 100_000

    error = refusal(transit_keys, token.encode())

    assert isinstance(error, UnsupportedJwe)
    assert "zip" in error.message


def test_zip_is_refused_even_when_the_rest_is_unparseable(
    transit_keys: KeyStore, no_decrypt: list[str]
) -> None:
    header = {"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "zip": "DEF"}

    error = refusal(transit_keys, with_header(b"x.!!.!!.!!.!!", header))

    assert isinstance(error, UnsupportedJwe)
    assert "zip" in error.message


@pytest.mark.parametrize(
    "extra",
    [{"crit": ["exp"], "exp": 1}, {"jku": "https://evil.example/jwks"}, {"x5u": "https://x"}],
)
def test_critical_and_unknown_header_parameters_are_refused(
    transit_keys: KeyStore, no_decrypt: list[str], extra: dict[str, Any]
) -> None:
    token = to_spis(transit_keys)
    header = json.loads(base64.urlsafe_b64decode(segments(token)[0] + b"==="))

    assert isinstance(
        refusal(transit_keys, with_header(token, {**header, **extra})), UnsupportedJwe
    )


@pytest.mark.parametrize("cty", ["JWT", "text/html", "application/xml"])
def test_plaintext_types_we_do_not_take_are_refused(
    transit_keys: KeyStore, no_decrypt: list[str], cty: str
) -> None:
    assert isinstance(refusal(transit_keys, to_spis(transit_keys, cty=cty)), UnsupportedJwe)


def test_oversized_is_refused_before_parsing(transit_keys: KeyStore, no_decrypt: list[str]) -> None:
    token = to_spis(transit_keys, body=b'{"pad":"' + b"x" * 20_000 + b'"}')

    error = refusal(transit_keys, token, max_bytes=10_000)

    assert isinstance(error, JweTooLarge)
    assert error.status == 413
    assert isinstance(refusal(transit_keys, b"." * 20_000, max_bytes=10_000), JweTooLarge)


def test_messages_never_quote_the_payload(transit_keys: KeyStore) -> None:
    secret = b'{"name":"Ada Lovelace"}'
    for token in (
        flip(to_spis(transit_keys, body=secret), 3),
        to_spis(transit_keys, body=secret)[:-4],
    ):
        assert "Lovelace" not in refusal(transit_keys, token).message


@pytest.fixture
def no_decrypt(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails the test if joserfc is asked to decrypt: the refusal had to come first."""
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append("decrypt")
        raise AssertionError("decrypt_compact must not be reached")

    monkeypatch.setattr(jwe, "decrypt_compact", refuse)
    return calls


# -- client encryption keys -----------------------------------------------------------------------


def test_encrypting_to_unusable_keys_is_refused() -> None:
    ec = ECKey.generate_key("P-384")
    for bad in (
        ec.as_dict(private=False, kid="k", use="sig"),  # a signing key
        ec.as_dict(private=True, kid="k", use="enc"),  # private material
        ECKey.generate_key("P-521").as_dict(private=False, kid="k", use="enc"),
        ec.as_dict(private=False, kid="k", use="enc", alg="ECDH-ES"),
        short_rsa_jwk(),
        ec.as_dict(private=False, use="enc"),  # no kid
    ):
        with pytest.raises(ValueError, match=r"key|kid"):
            encrypt_response(BODY, bad)


def short_rsa_jwk() -> dict[str, Any]:
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()

    def b64(value: int) -> str:
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return {"kty": "RSA", "kid": "k", "use": "enc", "n": b64(numbers.n), "e": b64(numbers.e)}


def test_the_first_usable_encryption_key_is_chosen() -> None:
    sig = ECKey.generate_key("P-384").as_dict(private=False, kid="sig", use="sig", alg="ES384")
    p521 = ECKey.generate_key("P-521").as_dict(private=False, kid="p521", use="enc")
    by_ops = ECKey.generate_key("P-256").as_dict(private=False, kid="ops", key_ops=["wrapKey"])
    rsa = RSAKey.generate_key(2048).as_dict(private=False, kid="rsa", use="enc")

    assert select_encryption_key([sig]) is None
    assert select_encryption_key([sig, p521, by_ops, rsa]) == checked_encryption_key(
        {**by_ops, "use": "enc"}
    )
    chosen = select_encryption_key([sig, rsa])
    assert chosen is not None
    assert chosen["alg"] == "RSA-OAEP-256"
    assert "d" not in chosen


def test_checked_keys_keep_only_public_members() -> None:
    jwk = ECKey.generate_key("P-384").as_dict(private=False, kid="k", use="enc")

    kept = checked_encryption_key({**jwk, "x5u": "https://x", "ext": True})

    assert set(kept) == {"kty", "kid", "use", "alg", "crv", "x", "y"}
    with pytest.raises(UnusableKey):
        checked_encryption_key({**jwk, "alg": "RSA1_5"})
