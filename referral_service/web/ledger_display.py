"""What the broker's ledger pages share: time and dates as people read them, the categories'
names, refusals mapped to form fields, and the audit of what a page showed.

The ledger counts whole minutes; pages show hours and minutes ("1 h 30 min"), and a balance with
its sign. Nothing here reads the database: the pages pass in what the ledger service returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from fhir_adapters.codes import OFFER_CATEGORIES
from referral_service.audit import service as audit
from referral_service.audit.models import Action, Kind
from referral_service.context import Context
from referral_service.errors import NotFound, ServiceError

# The ledger's own names for its rows in audit events (ledger/common.py uses the same).
MEMBER_TYPE = "LedgerMember"
EXCHANGE_TYPE = "LedgerExchange"
UNNAMED = "Name not shown"


def hours_text(minutes: int) -> str:
    """`90` → "1 h 30 min", `120` → "2 h", `45` → "45 min"; the size only, never a sign. Every page
    writes time this way (the ledger pages and what came back on the practice's)."""
    whole, rest = divmod(abs(minutes), 60)
    if whole and rest:
        return f"{whole} h {rest} min"
    return f"{whole} h" if whole else f"{rest} min"


def signed_hours(minutes: int) -> str:
    """A balance or an entry: "+1 h 30 min", "-45 min", "0 min"."""
    if minutes == 0:
        return hours_text(0)
    return f"{'+' if minutes > 0 else '-'}{hours_text(minutes)}"


def reciprocity_text(value: float | None) -> str:
    """Given ÷ received, two decimals; a dash when there is none (not referred, or nothing
    received yet)."""
    return "–" if value is None else f"{value:.2f}"


def day(value: date) -> str:
    """ "20 November 2026": no ambiguity between day and month, whoever reads it."""
    return f"{value.day} {value:%B %Y}"


def category_label(code: str) -> str:
    return OFFER_CATEGORIES.get(code, code)


def category_choices() -> list[tuple[str, str]]:
    return list(OFFER_CATEGORIES.items())


def left_out_notice(count: int) -> list[str]:
    """The notice for rows left out of a page because their stored data did not open (their
    content is never shown; each was already audited by the ledger)."""
    if count == 0:
        return []
    rows = "1 record" if count == 1 else f"{count} records"
    return [
        f"{rows} could not be shown because the stored data failed its integrity check. "
        "This has been recorded; tell your SPIS administrator."
    ]


# --- refusals on forms ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormRefusal:
    """A service's refusal as a form shows it: messages by field, and one for the whole form."""

    errors: dict[str, str]
    form_error: str | None
    status: int


def sentence(message: str) -> str:
    """The ledger writes its messages for API callers ("minutes must be ..."): a capital letter
    makes them read as sentences on a page; the words stay the service's own."""
    return message[:1].upper() + message[1:]


def refusal(exc: ServiceError, fields: Mapping[str, str]) -> FormRefusal:
    """`fields` maps the service's issue expressions to the form's field names. An expression no
    field stands for puts the message above the form. A NotFound about a field (a member id
    typed into a select) is the field's error: the form is not the thing that was not found."""
    message = sentence(exc.message)
    named = [fields[e] for e in exc.expression or () if e in fields]
    errors = dict.fromkeys(named, message)
    status = 422 if isinstance(exc, NotFound) else exc.status
    return FormRefusal(errors, None if errors else message, status)


def is_about_a_field(exc: ServiceError, fields: Mapping[str, str]) -> bool:
    return any(e in fields for e in exc.expression or ())


# --- audit ---------------------------------------------------------------------------------


def refs(rtype: str, ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(f"{rtype}/{rid}" for rid in ids))


def record_shown(ctx: Context, entities: list[str], *, kind: Kind, detail: str) -> None:
    """A ledger page showed these rows (names, time given and received: person-level data).
    Large pages are split into several events, as audit.record_read splits its groups."""
    action = Action.EXECUTE if kind is Kind.SEARCH else Action.READ
    for start in range(0, max(len(entities), 1), audit.MAX_ENTITIES):
        audit.record(
            ctx.session,
            ctx.principal,
            kind=kind,
            action=action,
            entities=entities[start : start + audit.MAX_ENTITIES],
            tenant=ctx.principal.org_id,
            detail=detail,
        )


# What templates call to show the ledger's numbers and codes: `{{ fmt.signed(row.balance) }}`.
FORMATS = {
    "hours": hours_text,
    "signed": signed_hours,
    "reciprocity": reciprocity_text,
    "day": day,
    "category": category_label,
}
