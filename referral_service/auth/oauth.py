"""OAuth 2.0 token-endpoint errors (RFC 6749 §5.2), rendered as OAuth JSON rather than FHIR.

Descriptions are safe to show the caller: they never say whether a client id exists, which key
failed, or echo anything the caller sent.
"""

from __future__ import annotations


class OAuthError(Exception):
    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status


def invalid_request(description: str) -> OAuthError:
    return OAuthError("invalid_request", description)


def invalid_client(description: str = "Client authentication failed") -> OAuthError:
    return OAuthError("invalid_client", description, status=401)


def invalid_scope(description: str) -> OAuthError:
    return OAuthError("invalid_scope", description)


def unsupported_grant_type() -> OAuthError:
    return OAuthError("unsupported_grant_type", "Only grant_type=client_credentials is supported")
