"""POST /auth/token: what a good request gets, and every way a bad assertion is refused
(security.md §8 items 1-7)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jws, jwt
from joserfc.jwk import ECKey, OctKey, RSAKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth import access
from referral_service.auth.models import UsedAssertion
from referral_service.auth.service import deactivate_client
from referral_service.config import Settings
from referral_service.organisations.models import OrgKind
from tests.fixtures.systems import ASSERTION_TYPE, TestSystem, register_system

TOKEN_URL = "http://testserver/auth/token"


def post_token(
    client: TestClient, assertion: str, scope: str = "system/Task.rs", **extra: str
) -> Any:
    form = {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        **extra,
    }
    return client.post("/auth/token", data=form)


def assert_invalid_client(response: Any) -> dict[str, str]:
    assert response.status_code == 401, response.text
    body: dict[str, str] = response.json()
    assert body["error"] == "invalid_client"
    assert "access_token" not in body
    assert response.headers["cache-control"] == "no-store"
    return body


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], key: bytes | None = None) -> str:
    """A JWT built by hand, for algorithms joserfc rightly refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = (
        b"" if key is None else hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64(signature)}"


# -- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_token_issued_for_each_allowed_algorithm(
    client: TestClient, session_factory: sessionmaker[Session], settings: Settings, alg: str
) -> None:
    system = register_system(session_factory, OrgKind.PRACTICE, ods="F84001", alg=alg)
    response = post_token(client, system.assertion(TOKEN_URL), "system/Task.rs system/Patient.r")

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}  # no refresh_token
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == "system/Patient.r system/Task.rs"

    token = jwt.decode(
        body["access_token"],
        OctKey.import_key(settings.token_secret.get_secret_value()),
        algorithms=["HS256"],
    )
    assert token.header == {"alg": "HS256", "typ": "at+jwt"}
    claims = token.claims
    assert claims["iss"] == "http://testserver"
    assert claims["sub"] == system.client_id
    assert claims["org"] == system.org_id
    assert claims["kind"] == "practice"
    assert claims["scope"] == body["scope"]
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 5
    assert len(claims["jti"]) == 36

    principal = access.verify(settings, body["access_token"])
    assert principal.allows("Task", "s")
    assert not principal.allows("Patient", "s")


def test_discovery_document(client: TestClient) -> None:
    config = client.get("/.well-known/smart-configuration").json()
    assert config["token_endpoint"] == TOKEN_URL
    assert config["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
    assert config["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert config["grant_types_supported"] == ["client_credentials"]
    assert config["capabilities"] == ["client-confidential-asymmetric", "permission-v2"]
    assert "system/Patient.cruds" in config["scopes_supported"]
    assert "system/MeasureReport.rs" in config["scopes_supported"]
    assert "system/Observation.crus" in config["scopes_supported"]  # practice rs + timebank crus


def test_aud_as_one_element_list_and_small_clock_skew_accepted(
    client: TestClient, practice: TestSystem
) -> None:
    late = int(time.time()) - 30  # expired, but within the 60 s leeway
    response = post_token(client, practice.assertion(TOKEN_URL, aud=[TOKEN_URL], exp=late))
    assert response.status_code == 200, response.text


def test_matching_client_id_parameter_accepted(client: TestClient, practice: TestSystem) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL), client_id=practice.client_id)
    assert response.status_code == 200, response.text


# -- §8.1 wrong key, unknown client ------------------------------------------------------------


def test_signed_with_key_not_in_jwks(client: TestClient, practice: TestSystem) -> None:
    impostor = ECKey.generate_key("P-384")
    claims = practice.claims(TOKEN_URL)
    token = jwt.encode(
        {"alg": "ES384", "kid": practice.kid}, claims, impostor, algorithms=["ES384"]
    )
    body = assert_invalid_client(post_token(client, token))
    assert body["error_description"] == "Client authentication failed"


def test_unknown_kid(client: TestClient, practice: TestSystem) -> None:
    token = practice.sign(practice.claims(TOKEN_URL), kid="not-registered")
    assert_invalid_client(post_token(client, token))


def test_unknown_client_looks_like_a_bad_signature(
    client: TestClient, practice: TestSystem
) -> None:
    stranger = "5d0f3b58-1a3e-4d8e-9d43-0d9a3f1b2c77"
    body = assert_invalid_client(
        post_token(client, practice.assertion(TOKEN_URL, iss=stranger, sub=stranger))
    )
    assert body["error_description"] == "Client authentication failed"


def test_inactive_client_refused(
    client: TestClient, practice: TestSystem, session_factory: sessionmaker[Session]
) -> None:
    with session_factory.begin() as session:
        deactivate_client(session, practice.client_id)
    assert_invalid_client(post_token(client, practice.assertion(TOKEN_URL)))


def test_iss_different_from_sub(
    client: TestClient, practice: TestSystem, timebank: TestSystem
) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL, sub=timebank.client_id))
    assert "iss and sub" in assert_invalid_client(response)["error_description"]


def test_client_id_parameter_must_match(
    client: TestClient, practice: TestSystem, timebank: TestSystem
) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL), client_id=timebank.client_id)
    assert_invalid_client(response)


# -- §8.2 lifetime ------------------------------------------------------------------------------


def test_exp_too_far_in_the_future(client: TestClient, practice: TestSystem) -> None:
    too_far = int(time.time()) + 300 + 60 + 5
    response = post_token(client, practice.assertion(TOKEN_URL, exp=too_far))
    assert "too far" in assert_invalid_client(response)["error_description"]


def test_expired_beyond_leeway(client: TestClient, practice: TestSystem) -> None:
    expired = int(time.time()) - 61 - 5
    response = post_token(client, practice.assertion(TOKEN_URL, exp=expired))
    assert "expired" in assert_invalid_client(response)["error_description"]


@pytest.mark.parametrize("claim", ["exp", "jti"])
def test_required_claim_missing(client: TestClient, practice: TestSystem, claim: str) -> None:
    assert_invalid_client(post_token(client, practice.assertion(TOKEN_URL, **{claim: None})))


def test_not_before_in_the_future(client: TestClient, practice: TestSystem) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL, nbf=int(time.time()) + 200))
    assert_invalid_client(response)


# -- §8.3 replay --------------------------------------------------------------------------------


def test_replayed_jti_refused(
    client: TestClient, practice: TestSystem, session_factory: sessionmaker[Session]
) -> None:
    assertion = practice.assertion(TOKEN_URL)
    assert post_token(client, assertion).status_code == 200
    body = assert_invalid_client(post_token(client, assertion))
    assert "already been used" in body["error_description"]

    # Same jti, freshly signed: still a replay. The store is per client, so it lives in the DB.
    jti = json.loads(base64.urlsafe_b64decode(assertion.split(".")[1] + "=="))["jti"]
    assert_invalid_client(post_token(client, practice.assertion(TOKEN_URL, jti=jti)))
    with session_factory() as session:
        stored = session.scalar(select(func.count()).select_from(UsedAssertion))
    assert stored == 1


def test_same_jti_from_two_clients_is_not_a_replay(
    client: TestClient, practice: TestSystem, timebank: TestSystem
) -> None:
    shared = "the-same-jti"
    assert post_token(client, practice.assertion(TOKEN_URL, jti=shared)).status_code == 200
    assert post_token(client, timebank.assertion(TOKEN_URL, jti=shared)).status_code == 200


# -- §8.4 algorithms ----------------------------------------------------------------------------


def test_alg_none_refused(client: TestClient, practice: TestSystem) -> None:
    token = unsigned_token(
        {"alg": "none", "kid": practice.kid, "typ": "JWT"}, practice.claims(TOKEN_URL)
    )
    response = post_token(client, token)
    assert "RS384 or ES384" in assert_invalid_client(response)["error_description"]


def test_hs256_with_public_key_as_secret_refused(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    system = register_system(session_factory, OrgKind.PRACTICE, ods="F84001", alg="RS384")
    public_pem = system.key.as_pem(private=False)
    header = {"alg": "HS256", "kid": system.kid, "typ": "JWT"}
    token = unsigned_token(header, system.claims(TOKEN_URL), key=public_pem)
    assert_invalid_client(post_token(client, token))


def test_rs256_refused(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    system = register_system(session_factory, OrgKind.PRACTICE, ods="F84001", alg="RS384")
    assert isinstance(system.key, RSAKey)
    header = {"alg": "RS256", "kid": system.kid}
    token = jwt.encode(header, system.claims(TOKEN_URL), system.key, algorithms=["RS256"])
    assert_invalid_client(post_token(client, token))


def test_es384_header_on_an_rsa_key_refused(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    """The kid names an RSA key, the header says ES384: no key of the right type, so no key."""
    system = register_system(session_factory, OrgKind.PRACTICE, ods="F84001", alg="RS384")
    other = ECKey.generate_key("P-384")
    header = {"alg": "ES384", "kid": system.kid}
    token = jwt.encode(header, system.claims(TOKEN_URL), other, algorithms=["ES384"])
    assert_invalid_client(post_token(client, token))


@pytest.mark.parametrize(
    ("header", "message"),
    [({"kid": None}, "kid"), ({"typ": "at+jwt"}, "typ")],
)
def test_header_rules(
    client: TestClient, practice: TestSystem, header: dict[str, Any], message: str
) -> None:
    claims = practice.claims(TOKEN_URL)
    full = {"alg": "ES384", "kid": practice.kid, "typ": "JWT", **header}
    full = {name: value for name, value in full.items() if value is not None}
    token = jwt.encode(full, claims, practice.key, algorithms=["ES384"])
    assert message in assert_invalid_client(post_token(client, token))["error_description"]


def test_oversized_assertion_refused_before_parsing(
    client: TestClient, practice: TestSystem
) -> None:
    token = practice.assertion(TOKEN_URL, padding="x" * 17_000)
    assert "too large" in assert_invalid_client(post_token(client, token))["error_description"]


@pytest.mark.parametrize("garbage", ["not-a-jwt", "a.b.c", "é.é.é"])
def test_garbage_assertion(client: TestClient, practice: TestSystem, garbage: str) -> None:
    assert_invalid_client(post_token(client, garbage))


# -- §8.5 audience ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud",
    [
        TOKEN_URL + "/",
        "https://testserver/auth/token",
        "http://testserver/auth/token?x=1",
        [TOKEN_URL, "http://elsewhere/token"],
        None,
    ],
)
def test_wrong_audience(client: TestClient, practice: TestSystem, aud: Any) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL, aud=aud))
    description = assert_invalid_client(response)["error_description"]
    if aud is None:
        assert "aud" in description
    else:  # a client configured with the wrong address learns the right one
        assert description == f"The assertion's aud must be the token endpoint URL, {TOKEN_URL}"


# -- request shape ------------------------------------------------------------------------------


def test_unsupported_grant_type(client: TestClient, practice: TestSystem) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL), grant_type="password")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize(
    "missing", ["grant_type", "client_assertion_type", "client_assertion", "scope"]
)
def test_missing_parameter(client: TestClient, practice: TestSystem, missing: str) -> None:
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Task.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": practice.assertion(TOKEN_URL),
    }
    del form[missing]
    response = client.post("/auth/token", data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_wrong_assertion_type(client: TestClient, practice: TestSystem) -> None:
    response = post_token(client, practice.assertion(TOKEN_URL), client_assertion_type="saml")
    assert response.json()["error"] == "invalid_request"


def test_json_body_is_not_a_token_request(client: TestClient, practice: TestSystem) -> None:
    response = client.post(
        "/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_assertion": practice.assertion(TOKEN_URL),
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_repeated_parameter_refused(client: TestClient, practice: TestSystem) -> None:
    body = (
        f"grant_type=client_credentials&scope=system/Task.rs&scope=system/Patient.rs"
        f"&client_assertion_type={ASSERTION_TYPE}&client_assertion={practice.assertion(TOKEN_URL)}"
    )
    response = client.post(
        "/auth/token",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "Parameter 'scope' was sent more than once",
    }


def test_a_repeated_claim_is_refused(client: TestClient, practice: TestSystem) -> None:
    """Signed, but `sub` twice: which one counts depends on the parser, so neither does."""
    claims = practice.claims(TOKEN_URL)
    payload = json.dumps(claims)[:-1] + ', "sub": "someone-else"}'
    assert json.loads(payload)["sub"] == "someone-else"  # what a last-wins parser would read
    header = {"alg": practice.alg, "kid": practice.kid, "typ": "JWT"}
    signed = jws.serialize_compact(
        header, payload.encode(), practice.key, algorithms=[practice.alg]
    )
    body = assert_invalid_client(post_token(client, signed))
    assert body["error_description"] == "The client assertion repeats a claim"
    # the same claims without the repeat are fine: only the repeat was refused
    assert post_token(client, practice.sign(claims)).status_code == 200
