"""Pure ledger rules: what an exchange, an alias or a listing may be, and the co-production
indicators (DESIGN §5). Messages name the field, never the value sent (it may be a name)."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta

from fhir_adapters.codes import OFFER_CATEGORIES
from referral_service.errors import Invalid
from referral_service.kit.clock import as_utc
from referral_service.ledger.models import MAX_EXCHANGE_MINUTES

MAX_ALIAS = 80
MAX_DESCRIPTION = 280
# "Future" is judged against the latest calendar date anywhere on Earth (UTC+14), so a broker's
# "today" is never refused whatever their time zone or the hour; a later date always is.
_LATEST_OFFSET = timedelta(hours=14)
# Time banking began in the 1980s: an earlier date is a typo (0001-01-01, 1025 for 2025), and
# would put an hour decades before the member's history. Old paper ledgers still fit.
EARLIEST_DATE = date(1980, 1, 1)
# Control characters (NUL among them: PostgreSQL text refuses it) and lone surrogates (not
# encodable, so never storable). Line breaks and tabs are whitespace, folded to one space.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})
# Every id SPIS hands out (members, Tasks) is a FHIR id; anything else names nothing, and must not
# reach a query (PostgreSQL refuses a NUL in a parameter with an error, not an empty answer).
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def is_id(value: str) -> bool:
    return _ID.fullmatch(value) is not None


def text(value: str, field: str, limit: int) -> str:
    cleaned = " ".join(value.split())
    if any(unicodedata.category(char) in _REFUSED_CATEGORIES for char in cleaned):
        raise Invalid(f"{field} must not contain control characters", expression=[field])
    if not cleaned:
        raise Invalid(f"{field} must not be empty", expression=[field])
    if len(cleaned) > limit:
        raise Invalid(f"{field} must be at most {limit} characters", expression=[field])
    return cleaned


def optional_text(value: str | None, field: str, limit: int) -> str | None:
    """Free text that may be left out: absent or only whitespace is None."""
    if value is None or not value.split():
        return None
    return text(value, field, limit)


def category(value: str, field: str = "category") -> str:
    if value not in OFFER_CATEGORIES:
        raise Invalid(
            f"{field} must be one of: {', '.join(sorted(OFFER_CATEGORIES))}", expression=[field]
        )
    return value


def minutes(value: int) -> int:
    if value <= 0:
        raise Invalid("minutes must be a whole number greater than 0", expression=["minutes"])
    if value > MAX_EXCHANGE_MINUTES:
        raise Invalid(
            f"minutes must be at most {MAX_EXCHANGE_MINUTES} (one day) per exchange",
            expression=["minutes"],
        )
    return value


def performed_on(value: date, now: datetime) -> date:
    if value > (as_utc(now) + _LATEST_OFFSET).date():
        raise Invalid("date must not be in the future", expression=["date"])
    if value < EARLIEST_DATE:
        raise Invalid(f"date must not be before {EARLIEST_DATE.isoformat()}", expression=["date"])
    return value


def parties(giver_id: str, receiver_id: str) -> None:
    if giver_id == receiver_id:
        raise Invalid(
            "giver and receiver must be two different members",
            expression=["giver_id", "receiver_id"],
        )


def reciprocity(given: int, received: int) -> float | None:
    """Given ÷ received: 1.0 is balanced co-production; None until something was received."""
    return None if received == 0 else given / received


def first_gift_days(enrolled_at: datetime, first_gift: date | None) -> int | None:
    """Days from enrolment to the first exchange the member gave time in.

    A gift dated on or before the enrolment day counts as 0: the person gave from the start.
    """
    if first_gift is None:
        return None
    return max(0, (first_gift - as_utc(enrolled_at).date()).days)
