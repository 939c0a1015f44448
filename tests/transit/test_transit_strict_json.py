"""Issue 7 item 19 inside JWE: a repeated JSON key is refused in the protected header and in the
plaintext, for a FHIR Bundle and for a ledger body, and nothing is stored."""

from __future__ import annotations

import base64
import json

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.organisations.models import OrgKind
from tests.fixtures.fhir import referral_bundle
from tests.fixtures.systems import bearer
from tests.transit.conftest import JoseSystem, register_jose_system
from tests.transit.test_transit_http import JOSE, patients, post_jose, to_spis


def test_a_bundle_with_a_repeated_key_inside_a_jwe_is_refused(
    client: TestClient, jose_practice: JoseSystem
) -> None:
    headers = bearer(client, jose_practice.system)
    text = json.dumps(referral_bundle(jose_practice.org_id))
    body = text.replace('"type": "transaction"', '"type": "transaction", "type": "batch"', 1)
    assert body != text

    response = post_jose(client, headers, to_spis(client, body.encode()))

    assert response.status_code == 400, response.text
    issue = response.json()["issue"][0]
    assert issue["diagnostics"] == 'Request body has a JSON object with "type" more than once'
    assert patients(client, headers) == []


def test_a_protected_header_naming_a_parameter_twice_is_refused(
    client: TestClient, jose_practice: JoseSystem
) -> None:
    headers = bearer(client, jose_practice.system)
    token = to_spis(client, json.dumps(referral_bundle(jose_practice.org_id)).encode())
    header = base64.urlsafe_b64decode(token.split(".")[0] + "==").decode()
    doubled = header[:-1] + ', "enc": "A128GCM"}'
    segment = base64.urlsafe_b64encode(doubled.encode()).rstrip(b"=").decode()
    tampered = ".".join([segment, *token.split(".")[1:]])

    response = post_jose(client, headers, tampered)

    assert response.status_code == 400, response.text
    assert "more than once" in response.json()["issue"][0]["diagnostics"]
    assert patients(client, headers) == []


def test_a_ledger_body_with_a_repeated_key_inside_a_jwe_is_refused(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    timebank = register_jose_system(session_factory, OrgKind.TIMEBANK, name="TB", ods=None)
    headers = bearer(client, timebank.system)
    url = f"/api/timebanks/{timebank.org_id}/members"
    body = b'{"alias": "Sam", "alias": "Grace"}'

    response = client.post(
        url,
        content=to_spis(client, body, cty="application/json"),
        headers={**headers, "Content-Type": JOSE},
    )

    assert response.status_code == 400, response.text
    assert response.json()["issue"][0]["diagnostics"] == (
        'The request body has a JSON object with "alias" more than once'
    )
    assert client.get(url, headers=headers).json() == []
