"""SPIS's own JOSE keys: one file per private JWK in the keys directory.

File names say what a key is for and its generation, `<use>.<alg>.<n>.jwk`, for example
`sig.ES384.1.jwk`, `enc.ECDH-ES+A256KW.1.jwk`, `enc.RSA-OAEP-256.2.jwk`. Per (use, alg) the highest
generation is current: it signs, and it is the encryption key we advertise. Older generations
stay usable (old JWEs still decrypt) and older signing keys stay published (old signatures still
verify) until an operator deletes their files. The kid is always the RFC 7638 thumbprint.

Development and test generate missing keys on first use; production refuses to start without
them. Every process re-reads the directory now and then, and at once (with a cooldown) when a JWE
names a kid it does not know, so a key rotated on disk reaches every process without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from referral_service.config import Settings
from referral_service.kit.jwe_keys import ECDH_ES_A256KW, PUBLIC_MEMBERS, RSA_OAEP_256

log = logging.getLogger("spis.transit.keys")

SIGNING_ALG = "ES384"
PrivateKey = ECKey | RSAKey
FILE_PATTERN = re.compile(
    r"^(sig|enc)\.(ES384|ECDH-ES\+A256KW|RSA-OAEP-256)\.([1-9][0-9]{0,5})\.jwk$"
)
REFRESH_INTERVAL_S = 60.0
UNKNOWN_KID_COOLDOWN_S = 10.0


@dataclass(frozen=True, slots=True)
class KeySpec:
    use: str
    alg: str
    kty: str
    size: str | int  # curve name or RSA modulus bits
    required_in_production: bool = True

    def file_name(self, generation: int) -> str:
        return f"{self.use}.{self.alg}.{generation}.jwk"


SPECS = (
    KeySpec("sig", SIGNING_ALG, "EC", "P-384"),
    KeySpec("enc", ECDH_ES_A256KW, "EC", "P-384"),
    # Optional in production: only clients that cannot do ECDH need it.
    KeySpec("enc", RSA_OAEP_256, "RSA", 3072, required_in_production=False),
)
_SPEC_BY_ALG = {spec.alg: spec for spec in SPECS}


class TransitKeyError(RuntimeError):
    """The keys directory is missing a key or holds a bad one. Names files, never contents."""


@dataclass(frozen=True, slots=True)
class TransitKey:
    kid: str
    use: str
    alg: str
    generation: int
    key: PrivateKey

    def public_jwk(self) -> dict[str, Any]:
        """Public members only, chosen by name: nothing private can slip through."""
        full = self.key.as_dict(private=False)
        jwk = {"kty": full["kty"], "kid": self.kid, "use": self.use, "alg": self.alg}
        jwk.update({name: full[name] for name in PUBLIC_MEMBERS[str(full["kty"])]})
        return jwk


@dataclass(frozen=True, slots=True)
class KeyRing:
    """An immutable snapshot of the keys directory."""

    keys: tuple[TransitKey, ...]

    def current(self, alg: str) -> TransitKey | None:
        candidates = [key for key in self.keys if key.alg == alg]
        return max(candidates, key=lambda key: key.generation, default=None)

    def signing_key(self) -> TransitKey:
        key = self.current(SIGNING_ALG)
        if key is None:
            raise TransitKeyError(f"No {SIGNING_ALG} signing key in the transit keys directory")
        return key

    def decryption_keys(self, alg: str, kid: str | None) -> list[TransitKey]:
        """Every key that may open a JWE made with `alg`: by kid when the JWE names one."""
        return [k for k in self.keys if k.alg == alg and (kid is None or k.kid == kid)]

    def public_jwks(self) -> dict[str, Any]:
        """Every signing key (old signatures must still verify) but only the current encryption
        key per algorithm (clients must encrypt to that one)."""
        signing = sorted(
            (k for k in self.keys if k.use == "sig"), key=lambda k: k.generation, reverse=True
        )
        encryption = [self.current(spec.alg) for spec in SPECS if spec.use == "enc"]
        published = [*signing, *(key for key in encryption if key is not None)]
        return {"keys": [key.public_jwk() for key in published]}


class KeyStore:
    """The keys of one process: a KeyRing re-read from disk when stale or when asked for a kid
    it does not have. Thread-safe; a failed re-read keeps the previous ring."""

    def __init__(
        self,
        directory: Path,
        *,
        generate: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self._generate = generate
        self._clock = clock
        self._lock = threading.Lock()
        self._ring = load_ring(directory, generate=generate)
        self._loaded_at = clock()

    def ring(self) -> KeyRing:
        if self._clock() - self._loaded_at >= REFRESH_INTERVAL_S:
            self._reload(min_age_s=REFRESH_INTERVAL_S)
        return self._ring

    def refresh_for_unknown_kid(self) -> KeyRing:
        """Re-read now unless we did so very recently: a caller inventing kids cannot make every
        request hit the disk."""
        self._reload(min_age_s=UNKNOWN_KID_COOLDOWN_S)
        return self._ring

    def public_jwks(self) -> dict[str, Any]:
        return self.ring().public_jwks()

    def _reload(self, min_age_s: float) -> None:
        with self._lock:
            now = self._clock()
            if now - self._loaded_at < min_age_s:
                return
            try:
                self._ring = load_ring(self.directory, generate=self._generate)
            except TransitKeyError as exc:
                log.error("transit keys reload failed; keeping the loaded keys", exc_info=exc)
            self._loaded_at = now


# -- settings and app wiring ---------------------------------------------------------------------


def keys_dir(settings: Settings) -> Path:
    """`SPIS_TRANSIT_KEYS_DIR`, else `<var_dir>/keys` (getattr until config.py has the field)."""
    configured: Path | None = getattr(settings, "transit_keys_dir", None)
    return Path(configured) if configured else settings.var_dir / "keys"


def key_store(settings: Settings) -> KeyStore:
    """Load (and outside production, create) SPIS's transit keys; TransitKeyError if unusable."""
    return KeyStore(keys_dir(settings), generate=settings.environment != "production")


_state_guard = threading.Lock()


def app_key_store(state: Any, settings: Settings) -> KeyStore:
    """The KeyStore on `app.state.transit_keys`, created on first use if create_app did not."""
    with _state_guard:
        store: KeyStore | None = getattr(state, "transit_keys", None)
        if store is None:
            store = key_store(settings)
            state.transit_keys = store
    return store


# -- reading and writing the directory -----------------------------------------------------------


def load_ring(directory: Path, *, generate: bool) -> KeyRing:
    if generate:
        for spec in SPECS:
            if not _generations(directory, spec):
                create_key_file(directory, spec.alg, generation=1)
    keys = tuple(
        _read_key(directory / name, spec, generation)
        for spec in SPECS
        for name, generation in _generations(directory, spec)
    )
    _require_production_keys(directory, keys)
    return KeyRing(keys)


def _generations(directory: Path, spec: KeySpec) -> list[tuple[str, int]]:
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = FILE_PATTERN.match(path.name)
        if match and (match[1], match[2]) == (spec.use, spec.alg):
            found.append((path.name, int(match[3])))
    return sorted(found, key=lambda item: item[1])


def _require_production_keys(directory: Path, keys: tuple[TransitKey, ...]) -> None:
    present = {key.alg for key in keys}
    missing = [spec for spec in SPECS if spec.required_in_production and spec.alg not in present]
    if missing:
        names = ", ".join(spec.file_name(1) for spec in missing)
        raise TransitKeyError(
            f"Transit keys missing from {directory}: expected {names} (private JWKs, mode 0600). "
            "Create them with referral_service.keys.jose.create_key_file before starting."
        )


def _read_key(path: Path, spec: KeySpec, generation: int) -> TransitKey:
    try:
        data = json.loads(path.read_text())
        key = ECKey.import_key(data) if spec.kty == "EC" else RSAKey.import_key(data)
    except (OSError, ValueError, TypeError, JoseError):
        raise TransitKeyError(f"Transit key file {path.name} is not a private JWK") from None
    _check_matches(path, spec, key)
    if path.stat().st_mode & 0o077:
        log.warning("transit key file readable by others", extra={"file": path.name})
    return TransitKey(key.thumbprint(), spec.use, spec.alg, generation, key)


def _check_matches(path: Path, spec: KeySpec, key: PrivateKey) -> None:
    if not key.is_private:
        raise TransitKeyError(f"Transit key file {path.name} holds no private key")
    size_ok = (
        key.as_dict(private=False).get("crv") == spec.size
        if isinstance(key, ECKey)
        else key.raw_value.key_size >= 2048
    )
    if not size_ok:
        raise TransitKeyError(f"Transit key file {path.name} is not a {spec.kty} {spec.size} key")


def create_key_file(directory: Path, alg: str, generation: int | None = None) -> Path:
    """Write a new private key for `alg`; without a generation, the next one (a rotation).

    Atomic and first-writer-wins: written to a temporary name, then hard-linked into place, which
    refuses to overwrite; two processes racing end up agreeing on one file.
    """
    spec = _SPEC_BY_ALG[alg]
    if generation is None:
        generation = max((gen for _, gen in _generations(directory, spec)), default=0) + 1
    path = directory / spec.file_name(generation)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}"
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(_new_private_jwk(spec)))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path


def _new_private_jwk(spec: KeySpec) -> dict[str, Any]:
    key: PrivateKey = (
        ECKey.generate_key(str(spec.size))
        if spec.kty == "EC"
        else RSAKey.generate_key(int(spec.size))
    )
    jwk: dict[str, Any] = key.as_dict(private=True)
    jwk.update(kid=key.thumbprint(), use=spec.use, alg=spec.alg)
    return jwk
