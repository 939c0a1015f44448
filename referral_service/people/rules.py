"""Pure rules about people: email addresses, the password policy, lock-out back-off, TOTP steps.

Messages name the rule, never the value: an email address or a password never appears in one.
"""

from __future__ import annotations

import hmac
import re
from datetime import datetime, timedelta

import pyotp

from referral_service.errors import Invalid

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; this bounds the work a request can ask for
MAX_EMAIL_LENGTH = 254  # RFC 5321's limit on a path
# One @, something on each side, a dot in the domain, no spaces or angle brackets: enough to catch
# a typing error; whether the address works is shown by the set-up link arriving.
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>.]+(\.[^@\s<>.]+)+$")
_CODE = re.compile(r"^[0-9]{6}$")
# Back-off doubles per failure beyond the threshold; past this many doublings it is at its cap.
_MAX_DOUBLINGS = 30


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased: addresses are compared case-insensitively."""
    return email.strip().lower()


def check_email(email: str) -> str:
    """The normalised address, or Invalid."""
    normalised = normalise_email(email)
    if len(normalised) > MAX_EMAIL_LENGTH or not _EMAIL.match(normalised):
        raise Invalid("The email address is not well-formed", expression=["email"])
    return normalised


def check_password(password: str, email: str) -> None:
    """At least 12 characters, at most 256, and not containing the email address's local part."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long",
            expression=["password"],
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(
            f"The password must be at most {MAX_PASSWORD_LENGTH} characters long",
            expression=["password"],
        )
    local = normalise_email(email).partition("@")[0]
    if len(local) >= 3 and local in password.lower():
        raise Invalid(
            "The password must not contain your email address or its name part",
            expression=["password"],
        )


def locked_until(
    failures: int, now: datetime, *, threshold: int, base_s: int, max_s: int
) -> datetime | None:
    """When an account with `failures` failed attempts in a row may try again: None below the
    threshold, then base, 2 x base, 4 x base ... seconds, never more than max."""
    if failures < threshold:
        return None
    doublings = min(failures - threshold, _MAX_DOUBLINGS)
    return now + timedelta(seconds=min(base_s * 2**doublings, max_s))


def retry_after_s(until: datetime, now: datetime) -> int:
    """Whole seconds left, rounded up, at least 1."""
    return max(1, int(-(-(until - now).total_seconds() // 1)))


def wait_words(seconds: int) -> str:
    """ "30 seconds", "2 minutes", "1 hour" (rounded up)."""
    if seconds < 120:
        return f"{seconds} seconds"
    minutes = -(-seconds // 60)
    if minutes < 120:
        return f"{minutes} minutes"
    hours = -(-minutes // 60)
    return f"{hours} hours"


def normalise_code(code: str) -> str | None:
    """Six digits (spaces people type between groups removed), or None."""
    digits = "".join(code.split())
    return digits if _CODE.match(digits) else None


def matching_step(secret: str, code: str, now: datetime, last_step: int | None) -> int | None:
    """The TOTP time-step `code` belongs to, looking one step either side of now (pyotp's
    valid_window=1: clocks drift and people type slowly); None when it matches none, or only a
    step at or before `last_step` (a code already used, or older than one that was)."""
    digits = normalise_code(code)
    if digits is None:
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(now)
    for step in (now_step - 1, now_step, now_step + 1):
        fresh = last_step is None or step > last_step
        if hmac.compare_digest(totp.generate_otp(step), digits) and fresh:
            return step
    return None
