"""What a delivery looks like on the wire, in the Standard Webhooks shape every receiver library
knows, signed with SPIS's published key instead of a shared secret:

    POST <subscription endpoint>
    Content-Type: application/jose        (or application/fhir+json, outside production only)
    webhook-id: <delivery id>              the same on every attempt: drop a duplicate
    webhook-timestamp: <unix seconds>      of this attempt: refuse one too old (replay)
    webhook-signature: es384,<JWS>         ES384 by SPIS's current signing kid, over
                                           "<webhook-id>.<webhook-timestamp>." + body, with the
                                           payload segment left empty (RFC 7515 appendix F)
    User-Agent: SPIS-Deliveries

Nothing about the patient is in the URL or the headers, and nothing of the body is logged.
Redirects are not followed (the endpoint was checked, where it points to was not).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from joserfc import jws

from referral_service.keys.jose import SIGNING_ALG, KeyStore

USER_AGENT = "SPIS-Deliveries"
SIGNATURE_SCHEME = "es384"
MAX_RETRY_AFTER_S = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class Answer:
    """The receiver's answer: its HTTP status, or why there was none (our short words)."""

    status: int | None
    retry_after_s: float | None = None
    error: str | None = None

    @property
    def reason(self) -> str:
        return f"HTTP {self.status}" if self.status is not None else (self.error or "no answer")


def signed_content(webhook_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{webhook_id}.{timestamp}.".encode() + body


def signature(webhook_id: str, timestamp: int, body: bytes, keys: KeyStore) -> str:
    """`es384,<protected>..<signature>`: a detached compact JWS."""
    signer = keys.ring().signing_key()
    header = {"alg": SIGNING_ALG, "kid": signer.kid}
    compact = jws.serialize_compact(
        header, signed_content(webhook_id, timestamp, body), signer.key, algorithms=[SIGNING_ALG]
    )
    protected, _, signed = compact.split(".")
    return f"{SIGNATURE_SCHEME},{protected}..{signed}"


def headers(
    webhook_id: str, timestamp: int, body: bytes, content_type: str, keys: KeyStore
) -> dict[str, str]:
    return {
        "Content-Type": content_type,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(webhook_id, timestamp, body, keys),
        "User-Agent": USER_AGENT,
    }


def post(endpoint: str, body: bytes, request_headers: dict[str, str], timeout_s: float) -> Answer:
    """One POST; the response body is never read."""
    try:
        # trust_env off: no proxy or netrc from the environment sees a delivery.
        with (
            httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False) as client,
            client.stream("POST", endpoint, content=body, headers=request_headers) as response,
        ):
            return Answer(response.status_code, _retry_after(response.headers.get("retry-after")))
    except httpx.TimeoutException:
        return Answer(None, error="timed out")
    except httpx.ConnectError:
        return Answer(None, error="connection failed")
    except httpx.HTTPError as exc:
        return Answer(None, error=f"HTTP error ({type(exc).__name__})")


def _retry_after(value: str | None) -> float | None:
    """Seconds only; an HTTP date or anything else is ignored."""
    if value is None or not value.strip().isdigit():
        return None
    return min(float(value.strip()), MAX_RETRY_AFTER_S)
