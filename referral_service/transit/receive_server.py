"""`spis receive`: a ready receiver for SPIS's notifications, for integrators trying their
subscriptions and for tests. One small HTTP server (any path) doing what transit/receiver.py and
transit/notifications.py describe: verify the headers, open the body, check the event number,
answer, print one line.

Answers: 200 for a notification taken (a duplicate too: it is acknowledged so SPIS stops
retrying), 400 with a short reason for one refused, 410 to everything with `--gone` (SPIS then
turns the subscription off), 503 to the first N requests with `--fail N` (SPIS retries).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from fhir_adapters.codes import FHIR_JSON
from referral_service.auth.jwks import JwksUnavailable, http_fetcher
from referral_service.kit.clock import utcnow
from referral_service.transit.jwe import JOSE, TransitError, protected_header
from referral_service.transit.notifications import (
    EventCheck,
    EventOutcome,
    EventTracker,
    NotANotification,
    Notification,
    parse_notification,
)
from referral_service.transit.receiver import (
    MAX_SEALED_BYTES,
    PrivateKey,
    RejectedMessage,
    UnknownSigningKey,
    open_sealed,
    private_key_of,
    verify_webhook,
)

JWKS_REFRESH_COOLDOWN_S = 10.0


class ReceiverSetupError(ValueError):
    """A key file or SPIS's JWKS that cannot be used: names the file or URL, never key material."""


# -- keys -----------------------------------------------------------------------------------------


def load_private_keys(path: Path) -> list[PrivateKey]:
    """The private encryption keys in a JWK or JWK Set file."""
    document = _json_file(path)
    candidates = document.get("keys") if "keys" in document else [document]
    keys: list[PrivateKey] = []
    for jwk in candidates if isinstance(candidates, list) else []:
        if isinstance(jwk, dict) and "d" in jwk and jwk.get("use", "enc") == "enc":
            try:
                keys.append(private_key_of(jwk))
            except ValueError:  # joserfc's errors are ValueErrors
                raise ReceiverSetupError(f"{path} holds a key that is not a valid JWK") from None
    if not keys:
        raise ReceiverSetupError(f"{path} holds no private encryption key (a JWK with 'd')")
    return keys


def _json_file(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise ReceiverSetupError(f"cannot read {path} ({exc.strerror})") from None
    except ValueError:
        raise ReceiverSetupError(f"{path} is not JSON") from None
    if not isinstance(document, dict):
        raise ReceiverSetupError(f"{path} does not hold a JWK or a JWK Set")
    return document


class SpisKeys:
    """SPIS's published JWK Set, from a URL or a file. Read again (at most every 10 s) when a
    message names a kid it does not hold, so a rotation at SPIS needs no restart here."""

    def __init__(self, source: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self._clock = clock
        self._jwks = self._load()
        self._loaded_at = clock()
        self._lock = threading.Lock()

    def current(self) -> dict[str, Any]:
        return self._jwks

    def refreshed(self) -> dict[str, Any] | None:
        """A fresh copy, or None when one was read moments ago or it cannot be read now."""
        with self._lock:
            if self._clock() - self._loaded_at < JWKS_REFRESH_COOLDOWN_S:
                return None
            self._loaded_at = self._clock()
            try:
                self._jwks = self._load()
            except ReceiverSetupError:
                return None
            return self._jwks

    def _load(self) -> dict[str, Any]:
        document: object
        if not self.source.startswith(("http://", "https://")):
            document = _json_file(Path(self.source))
        else:
            try:
                document = http_fetcher(self.source).document
            except (JwksUnavailable, httpx.HTTPError) as exc:
                raise ReceiverSetupError(
                    f"cannot fetch SPIS's keys from {self.source}: {exc}"
                ) from None
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ReceiverSetupError(f"{self.source} does not hold a JWK Set")
        return document


# -- one request ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    reason: str


@dataclass
class Receiver:
    """Everything `spis receive` decides, apart from HTTP."""

    spis_keys: SpisKeys
    private_keys: list[PrivateKey]
    allow_plain: bool = False
    out: Path | None = None
    gone: bool = False
    fail: int = 0
    say: Callable[[str], None] = field(default=lambda line: print(line, flush=True))
    tracker: EventTracker = field(default_factory=EventTracker)
    _failed: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def handle(self, headers: Mapping[str, str], body: bytes, now: datetime) -> Answer:
        refusal = self._refusal()
        if refusal is not None:
            self.say(f"answered {refusal.status} ({refusal.reason})")
            return refusal
        try:
            payload = self._opened(headers, body, now)
            notification = parse_notification(payload)
        except (RejectedMessage, NotANotification) as exc:
            self.say(f"rejected: {exc}")
            return Answer(400, str(exc))
        check = self.tracker.check(notification)
        self._record(payload)
        self.say(describe(notification, check))
        return Answer(200, "ok")

    def _refusal(self) -> Answer | None:
        if self.gone:
            return Answer(410, "--gone")
        with self._lock:
            if self._failed >= self.fail:
                return None
            self._failed += 1
            return Answer(503, f"--fail: {self._failed} of {self.fail}")

    def _opened(self, headers: Mapping[str, str], body: bytes, now: datetime) -> bytes:
        try:
            verify_webhook(headers, body, self.spis_keys.current(), now=now)
        except UnknownSigningKey:
            if (fresh := self.spis_keys.refreshed()) is None:
                raise
            verify_webhook(headers, body, fresh, now=now)
        media = _media_type(headers)
        if media == JOSE:
            return self._unsealed(body)
        if media == FHIR_JSON and self.allow_plain:
            return body
        if media == FHIR_JSON:
            raise RejectedMessage("Plain JSON is refused: start spis receive with --allow-plain")
        raise RejectedMessage(f"The Content-Type must be {JOSE}")

    def _unsealed(self, body: bytes) -> bytes:
        failure = RejectedMessage("This receiver has no private key (--key)")
        for key in _keys_for(body, self.private_keys):
            try:
                return open_sealed(body, key, self.spis_keys.current())
            except RejectedMessage as exc:
                failure = exc
        raise failure

    def _record(self, payload: bytes) -> None:
        if self.out is None:
            return
        line = json.dumps(json.loads(payload), separators=(",", ":")) + "\n"
        with self._lock:
            descriptor = os.open(self.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(descriptor, "a", encoding="utf-8") as file:
                file.write(line)


def _media_type(headers: Mapping[str, str]) -> str:
    named = {name.lower(): value for name, value in headers.items()}
    return named.get("content-type", "").split(";")[0].strip().lower()


def _keys_for(body: bytes, keys: list[PrivateKey]) -> list[PrivateKey]:
    """The key the JWE names by kid, else every key (one of them may open it)."""
    try:
        kid = protected_header(body.strip(), MAX_SEALED_BYTES).get("kid")
    except TransitError:
        return keys
    return [key for key in keys if key.kid == kid] or keys


def describe(notification: Notification, check: EventCheck) -> str:
    """The one line `spis receive` prints for a notification it took."""
    number = check.number
    if check.outcome is EventOutcome.DUPLICATE:
        return f"duplicate #{number}"
    missing = f"missing #{check.missing[0]}-#{check.missing[1]}" if check.missing else ""
    if notification.type != "event-notification":
        name = notification.type
        return (
            f"gap: expected #{check.expected}, got {name} at #{number} ({missing})"
            if missing
            else name
        )
    event = f"event #{number} {notification.topic or '-'} {notification.focus or '-'}"
    return (
        f"gap: expected #{check.expected}, got #{number} ({missing}); {event}" if missing else event
    )


# -- HTTP -----------------------------------------------------------------------------------------


class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A sender closing its kept-alive connection between notifications is normal (SPIS
        opens one per delivery): not worth a traceback. Anything else is reported as usual."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    server: ReceiverServer
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit():
            self._answer(Answer(411, "Content-Length is required"), close=True)
        elif int(length) > MAX_SEALED_BYTES:
            self._answer(Answer(413, f"larger than {MAX_SEALED_BYTES} bytes"), close=True)
        else:
            body = self.rfile.read(int(length))
            headers = dict(self.headers.items())
            self._answer(self.server.receiver.handle(headers, body, utcnow()))

    def do_GET(self) -> None:
        self._answer(Answer(405, "POST notifications here"))

    do_PUT = do_DELETE = do_PATCH = do_GET

    def _answer(self, answer: Answer, *, close: bool = False) -> None:
        text = f"{answer.reason}\n".encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(text)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the receiver prints its own line per request."""
