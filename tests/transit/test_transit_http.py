"""JWE over HTTP with the real app: a practice posts its referral Bundle encrypted, asks for an
encrypted answer, and every refusal stores nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth import access
from referral_service.auth.jwks import FetchedJwks, JwksCache
from referral_service.auth.service import register_client
from referral_service.keys.jose import KeyStore
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.systems import bearer, public_jwks, register_system
from tests.transit.conftest import JoseSystem, encryption_jwk, register_jose_system

JOSE = "application/jose"
ALGS = ["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM"]


def to_spis(client: TestClient, body: bytes, alg: str = "ECDH-ES+A256KW", **header: Any) -> str:
    """What the practice's system does: fetch SPIS's JWKS, encrypt to its key for `alg`."""
    published = client.get("/.well-known/jwks.json").json()["keys"]
    jwk = next(key for key in published if key["alg"] == alg)
    key = ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)
    protected = {"alg": alg, "enc": "A256GCM", "kid": jwk["kid"], **header}
    return jwe.encrypt_compact(protected, body, key, algorithms=[alg, "A256GCM"])


def bundle_bytes(org_id: str) -> bytes:
    return json.dumps(referral_bundle(org_id)).encode()


def patients(client: TestClient, headers: dict[str, str]) -> list[Any]:
    response = client.get("/fhir/Patient", headers=headers)
    assert response.status_code == 200, response.text
    entries: list[Any] = response.json()["entry"]
    return entries


def post_jose(
    client: TestClient, headers: dict[str, str], body: str | bytes, accept: str | None = None
) -> Any:
    extra = {"Content-Type": JOSE} | ({"Accept": accept} if accept else {})
    return client.post("/fhir", content=body, headers={**headers, **extra})


@pytest.fixture
def headers(client: TestClient, jose_practice: JoseSystem) -> dict[str, str]:
    return bearer(client, jose_practice.system)


def test_jwks_endpoint_publishes_public_keys_for_five_minutes(
    client: TestClient, transit_keys: KeyStore
) -> None:
    response = client.get("/.well-known/jwks.json")

    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.json() == transit_keys.public_jwks()
    assert all("d" not in key for key in response.json()["keys"])


@pytest.mark.parametrize("alg", ["ECDH-ES+A256KW", "RSA-OAEP-256"])
def test_an_encrypted_referral_bundle_is_stored(
    client: TestClient, jose_practice: JoseSystem, headers: dict[str, str], alg: str
) -> None:
    response = post_jose(client, headers, to_spis(client, bundle_bytes(jose_practice.org_id), alg))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    assert response.json()["type"] == "transaction-response"
    assert len(patients(client, headers)) == 1


def test_an_encrypted_answer_opens_with_the_practice_key(
    client: TestClient, jose_practice: JoseSystem, headers: dict[str, str]
) -> None:
    token = to_spis(client, bundle_bytes(jose_practice.org_id))

    response = post_jose(client, headers, token, accept=JOSE)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JOSE
    assert "Accept" in response.headers["vary"]
    opened = jwe.decrypt_compact(response.text, jose_practice.enc_key, algorithms=ALGS)
    assert opened.protected["kid"] == jose_practice.enc_jwk["kid"]
    assert opened.protected["cty"] == "application/fhir+json"
    assert json.loads(opened.plaintext or b"")["type"] == "transaction-response"
    assert len(patients(client, headers)) == 1


def test_a_plain_request_may_ask_for_an_encrypted_answer(
    client: TestClient, jose_practice: JoseSystem, headers: dict[str, str]
) -> None:
    response = client.get("/fhir/Patient", headers={**headers, "Accept": JOSE})

    assert response.headers["content-type"] == JOSE
    bundle = jwe.decrypt_compact(response.text, jose_practice.enc_key, algorithms=ALGS)
    assert json.loads(bundle.plaintext or b"")["type"] == "searchset"


def test_an_rsa_client_key_gets_rsa_oaep_answers(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    rsa_practice = register_jose_system(session_factory, enc_key=RSAKey.generate_key(3072))
    headers = bearer(client, rsa_practice.system)

    response = client.get("/fhir/Patient", headers={**headers, "Accept": JOSE})

    opened = jwe.decrypt_compact(response.text, rsa_practice.enc_key, algorithms=ALGS)
    assert opened.protected["alg"] == "RSA-OAEP-256"


def test_errors_are_encrypted_too(
    client: TestClient, jose_practice: JoseSystem, headers: dict[str, str]
) -> None:
    response = client.get("/fhir/Patient/unknown", headers={**headers, "Accept": JOSE})

    assert response.status_code == 404
    opened = jwe.decrypt_compact(response.text, jose_practice.enc_key, algorithms=ALGS)
    assert json.loads(opened.plaintext or b"")["resourceType"] == "OperationOutcome"


def test_a_tampered_jwe_is_refused_and_nothing_is_stored(
    client: TestClient, jose_practice: JoseSystem, headers: dict[str, str]
) -> None:
    token = to_spis(client, bundle_bytes(jose_practice.org_id))
    parts = token.split(".")
    parts[3] = ("A" if parts[3][10] != "A" else "B").join((parts[3][:10], parts[3][11:]))

    response = post_jose(client, headers, ".".join(parts))

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/fhir+json")
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "security"
    assert patients(client, headers) == []


@pytest.mark.parametrize(
    ("header", "code"),
    [({"zip": "DEF"}, "not-supported"), ({"cty": "text/html"}, "not-supported")],
)
def test_refused_headers_store_nothing(
    client: TestClient,
    jose_practice: JoseSystem,
    headers: dict[str, str],
    header: dict[str, Any],
    code: str,
) -> None:
    body = bundle_bytes(jose_practice.org_id)
    algorithms = ["ECDH-ES+A256KW", "A256GCM", "DEF"]
    jwk = next(k for k in client.get("/.well-known/jwks.json").json()["keys"] if k["use"] == "enc")
    token = jwe.encrypt_compact(
        {"alg": jwk["alg"], "enc": "A256GCM", "kid": jwk["kid"], **header},
        body,
        ECKey.import_key(jwk),
        algorithms=algorithms,
    )

    response = post_jose(client, headers, token)

    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == code
    assert patients(client, headers) == []


def test_an_oversized_jwe_is_refused_unread(
    client: TestClient, headers: dict[str, str], settings: Any
) -> None:
    response = post_jose(client, headers, b"e" * (settings.max_body_bytes + 1))

    assert response.status_code == 413
    assert response.json()["issue"][0]["code"] == "too-costly"


def test_a_jwe_without_a_token_is_refused_before_decrypting(
    client: TestClient, jose_practice: JoseSystem
) -> None:
    response = post_jose(client, {}, to_spis(client, bundle_bytes(jose_practice.org_id)))

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_encrypted_answers_need_a_registered_encryption_key(
    client: TestClient, practice_headers: dict[str, str], practice: Any
) -> None:
    token = to_spis(client, bundle_bytes(practice.org_id))

    response = post_jose(client, practice_headers, token, accept=JOSE)

    assert response.status_code == 406
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-supported"
    assert "register" in issue["diagnostics"]
    assert "use 'enc'" in issue["diagnostics"]
    assert patients(client, practice_headers) == []  # refused before the Bundle ran


def test_accept_with_q_zero_is_not_a_request_for_jose(
    client: TestClient, practice_headers: dict[str, str]
) -> None:
    accept = f"{JOSE};q=0, application/fhir+json"

    response = client.get("/fhir/Patient", headers={**practice_headers, "Accept": accept})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")


def test_plain_fhir_json_is_untouched(
    client: TestClient, practice: Any, practice_headers: dict[str, str]
) -> None:
    response = client.post(
        "/fhir", json=referral_bundle(practice.org_id), headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 200
    assert "vary" not in response.headers or "Accept" not in response.headers["vary"]


# -- clients registering an encryption key ---------------------------------------------------------


def test_a_client_can_register_an_encryption_key(session_factory: sessionmaker[Session]) -> None:
    sig = ECKey.generate_key("P-384")
    jwks = public_jwks(sig, "sig-1", "ES384")
    jwks["keys"].append(encryption_jwk(ECKey.generate_key("P-384"), "enc-1"))
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice", "F84009")
        client = register_client(session, org.id, jwks, None)
        stored = json.loads(client.jwks or "{}")["keys"]
    assert [key["use"] for key in stored] == ["sig", "enc"]


def test_a_jwks_url_client_gets_answers_encrypted_to_its_served_key(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    url = "https://gp.example/jwks.json"
    system = register_system(session_factory, OrgKind.PRACTICE, ods="F84010", jwks_url=url)
    enc = ECKey.generate_key("P-384")
    served = public_jwks(system.key, system.kid, system.alg)
    served["keys"].append(encryption_jwk(enc, "served-enc"))
    client.app.state.jwks_cache = JwksCache(lambda _: FetchedJwks(served, 300))  # type: ignore[attr-defined]

    response = client.get("/fhir/Patient", headers={**bearer(client, system), "Accept": JOSE})

    assert response.headers["content-type"] == JOSE
    assert jwe.decrypt_compact(response.text, enc, algorithms=ALGS).protected["kid"] == "served-enc"


def test_wrapping_the_app_from_outside_works_too(
    settings: Any,
    session_factory: sessionmaker[Session],
    transit_keys: KeyStore,
    jose_practice: JoseSystem,
) -> None:
    from referral_service.app import create_app
    from referral_service.transit.middleware import TransitMiddleware

    inner = create_app(settings)
    inner.state.transit_keys = transit_keys
    wrapped = TransitMiddleware(inner)  # no scope["app"] yet: it reads the wrapped app's state

    with TestClient(wrapped) as outside:
        system = jose_practice.system
        token_for = access.issue(
            settings,
            client_id=system.client_id,
            org_id=system.org_id,
            org_kind=system.kind,
            scope=system.scopes,
        )
        headers = {"Authorization": f"Bearer {token_for.token}"}
        jwk = next(k for k in transit_keys.public_jwks()["keys"] if k["use"] == "enc")
        token = jwe.encrypt_compact(
            {"alg": jwk["alg"], "enc": "A256GCM", "kid": jwk["kid"]},
            bundle_bytes(jose_practice.org_id),
            ECKey.import_key(jwk),
            algorithms=[jwk["alg"], "A256GCM"],
        )
        response = post_jose(outside, headers, token, accept=JOSE)

    assert response.status_code == 200
    opened = jwe.decrypt_compact(response.text, jose_practice.enc_key, algorithms=ALGS)
    assert json.loads(opened.plaintext or b"")["type"] == "transaction-response"
