"""Password hashing: argon2id with argon2-cffi's defaults (RFC 9106's second recommended
parameter set), and a dummy hash to verify against when there is no real one, so that an unknown
email address takes as long to refuse as a wrong password."""

from __future__ import annotations

import contextlib
import secrets
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def matches(stored: str | None, password: str) -> bool:
    """Whether `password` is the one `stored` was made from; None (no password yet, or no such
    person) is checked against the dummy hash and never matches."""
    if stored is None:
        refuse_in_time(password)
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Made with weaker parameters than today's defaults: re-hash at the next right password."""
    return _hasher.check_needs_rehash(stored)


def refuse_in_time(password: str) -> None:
    """Spend as long as checking a real password takes."""
    with contextlib.suppress(VerificationError):
        _hasher.verify(_dummy_hash(), password)


def warm() -> None:
    """Make the dummy hash now (first use in a process), whoever the attempt is for."""
    _dummy_hash()


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))
