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
from datetime import datetime

import httpx

from referral_service.keys.jose import KeyStore
from referral_service.transit.outbound import webhook_headers

USER_AGENT = "SPIS-Deliveries"
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


def headers(
    webhook_id: str, body: bytes, content_type: str, keys: KeyStore, now: datetime
) -> dict[str, str]:
    """The `webhook-*` headers as `transit.outbound.webhook_headers` signs them (the receiver's
    side is `transit.receiver.verify_webhook`), and ours."""
    return {
        "Content-Type": content_type,
        **webhook_headers(webhook_id, body, keys, now),
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
