"""What a GP or time bank system does to call SPIS: sign an assertion, get a token, call /fhir.

The demo uses it exactly as a partner system would, over real HTTP.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

ALG = "ES384"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def load_or_create_key(path: Path) -> ECKey:
    """The system's private signing key, kept on its own side (here: a 0600 file under var/)."""
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text()))
    key = ECKey.generate_key("P-384", private=True)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(json.dumps(key.as_dict(private=True)))
    path.chmod(0o600)
    return key


def public_jwks(key: ECKey) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False, kid=key.thumbprint(), use="sig", alg=ALG)]}


@dataclass
class SmartClient:
    base_url: str
    client_id: str
    key: ECKey
    scope: str = "system/*.cruds"  # narrowed by SPIS to what the client is registered for
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    _token: str | None = None
    _expires: float = 0.0

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/auth/token"

    def assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 240,
            "jti": str(uuid.uuid4()),
        }
        header = {"alg": ALG, "kid": self.key.thumbprint(), "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=[ALG])

    def token(self) -> str:
        if self._token is None or time.time() > self._expires - 30:
            response = self.http.post(
                self.token_url,
                data={
                    "grant_type": "client_credentials",
                    "scope": self.scope,
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self.assertion(),
                },
            )
            if response.status_code != 200:
                raise RuntimeError(
                    f"token request refused ({response.status_code}): {response.text[:300]}"
                )
            body = response.json()
            self._token, self._expires = body["access_token"], time.time() + body["expires_in"]
        return self._token

    def seconds_left(self) -> int:
        self.token()
        return int(self._expires - time.time())

    def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """The time bank ledger's JSON API."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        return self.http.request(method, f"{self.base_url}/api{path}", json=body, headers=headers)

    def fhir(self, method: str, path: str, body: Any = None, **headers: str) -> httpx.Response:
        all_headers = {
            "Authorization": f"Bearer {self.token()}",
            "Accept": "application/fhir+json",
            **headers,
        }
        content = None
        if body is not None:
            all_headers["Content-Type"] = "application/fhir+json"
            content = json.dumps(body)
        url = f"{self.base_url}/fhir" + (f"/{path.lstrip('/')}" if path else "")
        return self.http.request(method, url, content=content, headers=all_headers)
