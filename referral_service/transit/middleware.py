"""JWE bodies under /fhir and /api, as a pure ASGI middleware.

Inbound, `Content-Type: application/jose`: the compact JWE is read (within `max_body_bytes`),
decrypted with SPIS's keys and handed on as its `cty` (FHIR JSON by default); the endpoints never
know. Outbound, `Accept: application/jose`: the response is encrypted to the calling client's
registered encryption key and sent as `application/jose`.

Every refusal (bad JWE, no token, no client encryption key) is answered here as an
OperationOutcome without calling the app, so nothing is stored. In particular the client's key is
found *before* the request runs: a POST we could not answer in JWE is never carried out.

Pure ASGI rather than BaseHTTPMiddleware: we replace the request body and rewrite a whole response,
which BaseHTTPMiddleware's streaming wrappers make awkward. What it needs (settings, the
sessionmaker, the key store, the JWKS cache) is read from `app.state` on each request — the
sessionmaker only exists once the lifespan has run — unless given to the constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_adapters.codes import FHIR_JSON
from referral_service.auth import access
from referral_service.auth.dependencies import bearer_token
from referral_service.auth.endpoints import jwks_cache
from referral_service.auth.jwks import JwksCache
from referral_service.config import Settings
from referral_service.errors import ServiceError, Unauthenticated
from referral_service.keys.jose import KeyStore, app_key_store
from referral_service.kit.http import outcome_response
from referral_service.kit.jwe_keys import JwkDict
from referral_service.principal import Principal
from referral_service.transit.client_keys import encryption_key_for
from referral_service.transit.jwe import (
    JOSE,
    Decrypted,
    JweTooLarge,
    TransitError,
    encrypt_response,
    open_request,
)

log = logging.getLogger("spis.transit")

DEFAULT_PREFIXES = ("/fhir", "/api")
SENDFILE_EXTENSIONS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})
SessionmakerGetter = Callable[[], sessionmaker[Session]]


class _Disconnected(Exception):
    """The client went away while sending its body: there is no one to answer."""


@dataclass(frozen=True, slots=True)
class _Wants:
    decrypt: bool
    encrypt: bool


_NEITHER = _Wants(decrypt=False, encrypt=False)


class TransitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        settings: Settings | None = None,
        keys: KeyStore | None = None,
        sessionmaker_getter: SessionmakerGetter | None = None,
        jwks: JwksCache | None = None,
        prefixes: tuple[str, ...] = DEFAULT_PREFIXES,
    ) -> None:
        self.app = app
        self._settings = settings
        self._keys = keys
        self._sessionmaker_getter = sessionmaker_getter
        self._jwks = jwks
        self._prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        wants = self._wants(scope)
        if not (wants.decrypt or wants.encrypt):
            await self.app(scope, receive, send)
            return
        try:
            prepared = await self._prepare(scope, receive, send, wants)
        except _Disconnected:
            return
        except ServiceError as exc:
            log.info("transit refused", extra={"path": scope["path"], "error": type(exc).__name__})
            response = outcome_response(exc.status, exc.issue_code, exc.message)
            await response(scope, receive, send)
            return
        await self.app(*prepared)

    def _wants(self, scope: Scope) -> _Wants:
        if (
            scope["type"] != "http"
            or not _under(scope["path"], self._prefixes)
            or not _names_jose(scope["headers"])
        ):
            return _NEITHER
        headers = Headers(scope=scope)
        return _Wants(
            decrypt=media_type(headers.get("content-type")) == JOSE,
            encrypt=accepts_jose(headers.get("accept")),
        )

    async def _prepare(
        self, scope: Scope, receive: Receive, send: Send, wants: _Wants
    ) -> tuple[Scope, Receive, Send]:
        """Everything that can refuse happens here, before the app is called."""
        settings = self._settings_for(scope)
        principal = _principal(scope, settings)
        recipient = await self._recipient(scope, principal) if wants.encrypt else None
        decrypted = await self._decrypted(scope, receive, settings) if wants.decrypt else None
        downstream = _downstream_scope(scope, decrypted, encrypt=recipient is not None)
        app_receive = _replay(decrypted.plaintext, receive) if decrypted else receive
        app_send = _EncryptingSend(send, recipient) if recipient is not None else send
        return downstream, app_receive, app_send

    async def _recipient(self, scope: Scope, principal: Principal) -> JwkDict:
        sessions = self._sessions_for(scope)
        cache = self._jwks or jwks_cache(Request({"type": "http", "app": self._owner(scope)}))
        return await run_in_threadpool(encryption_key_for, sessions, cache, principal.client_id)

    async def _decrypted(self, scope: Scope, receive: Receive, settings: Settings) -> Decrypted:
        compact = await _read_body(scope, receive, settings.max_body_bytes)
        keys = self._keys or app_key_store(self._owner(scope).state, settings)
        # Off the event loop: a megabyte of AES-GCM, or an RSA decryption, is milliseconds of CPU.
        return await run_in_threadpool(
            open_request, compact, keys, max_bytes=settings.max_body_bytes
        )

    # -- where the dependencies come from --------------------------------------------------------

    def _owner(self, scope: Scope) -> Any:
        """The Starlette app: in scope when installed with add_middleware, else the wrapped app."""
        return scope.get("app", self.app)

    def _settings_for(self, scope: Scope) -> Settings:
        if self._settings is not None:
            return self._settings
        settings: Settings = self._owner(scope).state.settings
        return settings

    def _sessions_for(self, scope: Scope) -> sessionmaker[Session]:
        if self._sessionmaker_getter is not None:
            return self._sessionmaker_getter()
        sessions: sessionmaker[Session] = self._owner(scope).state.sessionmaker
        return sessions


# -- request side ---------------------------------------------------------------------------------


def _names_jose(raw_headers: list[tuple[bytes, bytes]]) -> bool:
    """Could `Content-Type` or `Accept` name application/jose? Neither can without the word, so
    the plain requests (nearly all) skip parsing them."""
    return any(name in _JOSE_HEADERS and b"jose" in value.lower() for name, value in raw_headers)


_JOSE_HEADERS = (b"content-type", b"accept")  # ASGI header names are lower-case


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == prefix or path.startswith(f"{prefix}/") for prefix in prefixes)


def media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def accepts_jose(accept: str | None) -> bool:
    """Does `Accept` list application/jose (with a q above zero)?"""
    for part in (accept or "").split(","):
        name, *params = (piece.strip().lower() for piece in part.split(";"))
        if name == JOSE and all(_q(param) != 0 for param in params):
            return True
    return False


def _q(param: str) -> float | None:
    name, _, value = param.partition("=")
    if name.strip() != "q":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _principal(scope: Scope, settings: Settings) -> Principal:
    """A valid token is required before any JWE work: we know whose key to answer with, and an
    anonymous caller cannot make us spend key agreement on its bodies."""
    token = bearer_token(Request(scope))
    if token is None:
        raise Unauthenticated("A bearer access token is required to exchange JWE bodies")
    try:
        return access.verify(settings, token)
    except access.InvalidAccessToken as exc:
        raise Unauthenticated(str(exc)) from None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    declared = Headers(scope=scope).get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise JweTooLarge(f"The request body is larger than {limit} bytes")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body += message.get("body", b"")
        if len(body) > limit:
            raise JweTooLarge(f"The request body is larger than {limit} bytes")
        if not message.get("more_body", False):
            break
    if not body:
        raise TransitError("A request with Content-Type application/jose needs a JWE body")
    return bytes(body)


def _downstream_scope(scope: Scope, decrypted: Decrypted | None, *, encrypt: bool) -> Scope:
    headers = MutableHeaders(scope={"type": "http", "headers": list(scope["headers"])})
    if decrypted is not None:
        headers["content-type"] = decrypted.content_type
        headers["content-length"] = str(len(decrypted.plaintext))
        del headers["transfer-encoding"]
    if not encrypt:
        return {**scope, "headers": headers.raw}
    # The endpoints answer plain FHIR JSON (the envelope is our business), and only through body
    # messages: a file sent by the server itself would bypass the encryption.
    headers["accept"] = f"{FHIR_JSON}, application/json"
    extensions = scope.get("extensions") or {}
    kept = {name: value for name, value in extensions.items() if name not in SENDFILE_EXTENSIONS}
    return {**scope, "headers": headers.raw, "extensions": kept}


def _replay(body: bytes, receive: Receive) -> Receive:
    """Gives the app the plaintext once, then whatever the server sends (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


# -- response side --------------------------------------------------------------------------------


class _EncryptingSend:
    """Collects the app's response and sends it as one compact JWE to the client's key."""

    def __init__(self, send: Send, recipient: JwkDict) -> None:
        self._send = send
        self._recipient = recipient
        self._start: Message | None = None
        self._body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self._start = message
        elif message["type"] == "http.response.body":
            self._body += message.get("body", b"")
            if not message.get("more_body", False):
                await self._finish()
        else:  # never let an unencrypted body out some other way
            raise RuntimeError(f"cannot encrypt a response sent as {message['type']}")

    async def _finish(self) -> None:
        assert self._start is not None, "the app sent a body before starting the response"
        if not self._body:  # 204, 304, HEAD: nothing to protect
            await self._send(self._start)
            await self._send({"type": "http.response.body", "body": b""})
            return
        headers = MutableHeaders(raw=list(self._start["headers"]))
        inner_type = media_type(headers.get("content-type")) or FHIR_JSON
        token = await run_in_threadpool(
            encrypt_response, bytes(self._body), self._recipient, inner_type
        )
        body = token.encode("ascii")
        headers["content-type"] = JOSE
        headers["content-length"] = str(len(body))
        headers.add_vary_header("Accept")
        await self._send({**self._start, "headers": headers.raw})
        await self._send({"type": "http.response.body", "body": body})
