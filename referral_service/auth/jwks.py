"""Client public keys: checking a JWK Set, picking the one key for an assertion, and fetching a
client's JWKS URL with a cache that honours Cache-Control and fails closed."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from referral_service.kit.jwe_keys import (
    MIN_RSA_BITS,
    PRIVATE_MEMBERS,
    UnusableKey,
    checked_encryption_key,
    is_encryption_jwk,
    rsa_bits,
)

log = logging.getLogger("spis.auth.jwks")

JwkDict = dict[str, Any]
PublicKey = ECKey | RSAKey

MAX_JWKS_BYTES = 65_536
MAX_KEYS = 20
DEFAULT_MAX_AGE_S = 300
LONGEST_MAX_AGE_S = 86_400
FETCH_TIMEOUT_S = 5.0

# Only these members are kept: what verifying a signature needs, nothing a client may smuggle in.
KEPT_MEMBERS = {
    "RSA": ("kty", "kid", "use", "alg", "n", "e"),
    "EC": ("kty", "kid", "use", "alg", "crv", "x", "y"),
}
KEY_ALG = {"RSA": "RS384", "EC": "ES384"}
ALG_KTY = {alg: kty for kty, alg in KEY_ALG.items()}


class InvalidJwks(ValueError):
    """The JWK Set breaks a rule; the message names the rule, never key material."""


class JwksUnavailable(Exception):
    """The JWKS URL could not give us a valid key set right now."""


# -- checking a JWK Set -------------------------------------------------------------------------


def validate_jwks(document: object) -> list[JwkDict]:
    """The public keys of a JWK Set, reduced to the members we use; InvalidJwks otherwise."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise InvalidJwks("A JWK Set is a JSON object with a 'keys' list")
    keys: list[object] = document["keys"]
    if not keys or len(keys) > MAX_KEYS:
        raise InvalidJwks(f"A JWK Set needs between 1 and {MAX_KEYS} keys")
    checked = [_validate_key(key) for key in keys]
    if not any(key.get("use", "sig") == "sig" for key in checked):
        raise InvalidJwks("The JWK Set needs at least one key for signing (ES384 or RS384)")
    kids = [key["kid"] for key in checked]
    if len(set(kids)) != len(kids):
        raise InvalidJwks("Every key in the JWK Set needs a different 'kid'")
    return checked


def _validate_key(key: object) -> JwkDict:
    if not isinstance(key, dict):
        raise InvalidJwks("Every key in the JWK Set must be a JSON object")
    if PRIVATE_MEMBERS & key.keys():
        raise InvalidJwks("The JWK Set contains private key material; register public keys only")
    kid = key.get("kid")
    if not isinstance(kid, str) or not 0 < len(kid) <= 255:
        raise InvalidJwks("Every key needs a 'kid' (a string of at most 255 characters)")
    if is_encryption_jwk(key):
        return _validate_encryption_key(key)
    kty = key.get("kty")
    if kty not in KEPT_MEMBERS:
        raise InvalidJwks("Only RSA and EC (P-384) keys are accepted")
    if key.get("use", "sig") != "sig" or key.get("alg", KEY_ALG[kty]) != KEY_ALG[kty]:
        raise InvalidJwks(f"{kty} keys must be for signing with {KEY_ALG[kty]}")
    kept = {name: key[name] for name in KEPT_MEMBERS[kty] if name in key}
    _check_strength(kept)
    import_public_key(kept)  # proves the numbers form a valid public key (EC point on the curve)
    return kept


def _check_strength(key: JwkDict) -> None:
    # Checked before importing: joserfc only warns about short RSA keys.
    if key["kty"] == "EC" and key.get("crv") != "P-384":
        raise InvalidJwks("EC keys must use the P-384 curve")
    if key["kty"] == "RSA" and rsa_bits(key.get("n"), InvalidJwks) < MIN_RSA_BITS:
        raise InvalidJwks(f"RSA keys must be at least {MIN_RSA_BITS} bits")


def import_public_key(key: JwkDict) -> PublicKey:
    try:
        if key["kty"] == "RSA":
            return RSAKey.import_key(key)
        return ECKey.import_key(key)
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidJwks(
            f"Key {key.get('kid')!r} is not a valid public {key['kty']} key"
        ) from None


def _validate_encryption_key(key: JwkDict) -> JwkDict:
    """A key the client wants SPIS to encrypt its responses and deliveries to (`use: enc`)."""
    try:
        return checked_encryption_key(key)
    except UnusableKey as exc:
        raise InvalidJwks(str(exc)) from None


def select_key(keys: list[JwkDict], kid: str, alg: str) -> PublicKey | None:
    """The single signing key with this kid whose type fits the algorithm; None for zero or several.
    An encryption key never verifies an assertion."""
    matches = [
        key
        for key in keys
        if key["kid"] == kid and key["kty"] == ALG_KTY.get(alg) and key.get("use", "sig") == "sig"
    ]
    if len(matches) != 1:
        return None
    return import_public_key(matches[0])


# -- fetching a JWKS URL -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedJwks:
    document: object
    max_age_s: int


Fetcher = Callable[[str], FetchedJwks]


def http_fetcher(url: str) -> FetchedJwks:
    """GET the JWKS: no redirects (only the registered URL is trusted), a timeout, a size cap."""
    with (
        httpx.Client(timeout=FETCH_TIMEOUT_S, follow_redirects=False) as http,
        http.stream("GET", url, headers={"Accept": "application/json"}) as response,
    ):
        if response.status_code != 200:
            raise JwksUnavailable(f"JWKS URL answered HTTP {response.status_code}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise JwksUnavailable("JWKS document is too large")
        max_age = cache_max_age(response.headers.get("cache-control"))
    try:
        return FetchedJwks(json.loads(body), max_age)
    except ValueError:
        raise JwksUnavailable("JWKS document is not JSON") from None


def cache_max_age(cache_control: str | None) -> int:
    """Seconds we may keep the response: never longer than the client says (SMART requires it)."""
    if not cache_control:
        return DEFAULT_MAX_AGE_S
    directives = [part.strip().lower() for part in cache_control.split(",")]
    if "no-store" in directives or "no-cache" in directives:
        return 0
    for directive in directives:
        name, _, value = directive.partition("=")
        if name.strip() == "max-age":
            try:
                return max(0, min(int(value.strip().strip('"')), LONGEST_MAX_AGE_S))
            except ValueError:
                return 0  # unreadable: do not cache rather than guess
    return DEFAULT_MAX_AGE_S


@dataclass(slots=True)
class _Entry:
    keys: list[JwkDict]
    fetched_at: float
    expires_at: float


class JwksCache:
    """In-process cache of fetched key sets, shared by the threads of one API process.

    `refresh=True` (an assertion named a kid we do not have) refetches at most once per
    `min_refetch_interval_s`, so a caller inventing kids cannot make us hammer the client's server.
    """

    def __init__(
        self,
        fetcher: Fetcher = http_fetcher,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_refetch_interval_s: float = 10.0,
    ) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._min_refetch_interval_s = min_refetch_interval_s
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def keys(self, url: str, *, refresh: bool = False) -> list[JwkDict]:
        with self._lock_for(url):
            entry = self._entries.get(url)
            now = self._clock()
            if (
                entry is not None
                and now < entry.expires_at
                and not self._may_refetch(entry, now, refresh)
            ):
                return entry.keys
            return self._fetch(url, now)

    def _may_refetch(self, entry: _Entry, now: float, refresh: bool) -> bool:
        return refresh and now - entry.fetched_at >= self._min_refetch_interval_s

    def _fetch(self, url: str, now: float) -> list[JwkDict]:
        self._entries.pop(url, None)  # fail closed: a failed fetch leaves nothing stale behind
        try:
            fetched = self._fetcher(url)
            keys = validate_jwks(fetched.document)
        except (httpx.HTTPError, JwksUnavailable, InvalidJwks) as exc:
            log.warning(
                "jwks fetch failed", extra={"jwks_url": url, "error_type": type(exc).__name__}
            )
            raise JwksUnavailable("The client's JWKS could not be retrieved") from None
        self._entries[url] = _Entry(keys, now, now + fetched.max_age_s)
        return keys

    def _lock_for(self, url: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(url, threading.Lock())
