"""The practice's referral form: what was typed → `ReferralForm`, the hidden fields that make a
resend the same referral, and intake's refusals → messages next to the fields.

Pure, apart from the clock and the id a new form gets. The form's values only ever travel in the
POST body and the page's HTML, never in a URL (they are patient data).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from fhir_adapters import codes
from fhir_adapters.outcome import FhirError
from fhir_adapters.referral_form import ReferralForm, form_field_of
from referral_service.errors import ServiceError
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id

EXPIRED = (
    "This form could not be read back as it was sent. It has been reset: check the details "
    "and send the referral again."
)


class Typed(BaseModel):
    """The form as posted (FastAPI reads it straight from the body: `Annotated[Typed, Form()]`),
    trimmed, for sending and for showing back. An unticked checkbox is not sent: False."""

    model_config = ConfigDict(frozen=True, str_strip_whitespace=True, extra="ignore")

    referral_id: str = ""
    sent_at: str = ""  # the instant the form was opened: the referral's `now` on every resend
    nhs_number: str = ""
    given_name: str = ""
    family_name: str = ""
    birth_date: str = ""
    postcode: str = ""
    phone: str = ""
    email: str = ""
    reason_code: str = ""
    reason_text: str = ""
    needs: list[str] = []
    share_referral: bool = False
    share_back: bool = False
    secondary_use: bool = False
    national_opt_out: bool = False


def blank_form() -> Typed:
    """A new form: its own referral identifier and moment, kept in hidden fields, so a
    double click or a reload sends the same referral and intake creates nothing new."""
    return Typed(referral_id=new_id(), sent_at=utcnow().isoformat(timespec="seconds"))


def sent_at(typed: Typed) -> datetime | None:
    """The hidden moment, or None when it is not an aware ISO datetime (the form was tampered
    with or truncated): then the page resets the form rather than guess."""
    try:
        when = datetime.fromisoformat(typed.sent_at)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def referral_form(typed: Typed, practice_org_id: str) -> ReferralForm:
    return ReferralForm(
        practice_org_id=practice_org_id,
        referral_id=typed.referral_id,
        # People write NHS numbers in groups ("943 476 5919"); intake checks the digits.
        nhs_number=typed.nhs_number.replace(" ", ""),
        family_name=typed.family_name,
        given_name=typed.given_name,
        birth_date=typed.birth_date,
        postcode=typed.postcode,
        reason_text=typed.reason_text,
        share_referral=typed.share_referral,
        share_back=typed.share_back,
        secondary_use=typed.secondary_use,
        national_opt_out=typed.national_opt_out,
        phone=typed.phone or None,
        email=typed.email or None,
        reason_code=typed.reason_code or None,
        needs=tuple(typed.needs),
    )


@dataclass(slots=True)
class Problems:
    """Messages for the page: by form field, and those about no field (shown above the form)."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    @property
    def form_error(self) -> str | None:
        return " ".join(self.general) or None


def refusal_problems(
    error: ServiceError | FhirError, field_of: Callable[[str], str | None] = form_field_of
) -> Problems:
    """Intake's own messages, each next to the field `field_of` finds in its expressions (the
    first message per field wins); the rest above the form."""
    problems = Problems()
    for message, expressions in _issues(error):
        fields = {f for e in expressions if (f := field_of(e)) is not None}
        for name in sorted(fields):
            problems.fields.setdefault(name, message)
        if not fields and message not in problems.general:
            problems.general.append(message)
    return problems


def _issues(error: ServiceError | FhirError) -> list[tuple[str, Sequence[str]]]:
    if isinstance(error, FhirError):
        return [(issue.diagnostics, issue.expression) for issue in error.issues]
    return [(error.message, error.expression or ())]


def status_of(error: ServiceError | FhirError) -> tuple[int, str]:
    """The HTTP status and issue code, as /fhir would answer the same refusal."""
    if isinstance(error, FhirError):
        return error.status, error.code
    return error.status, error.issue_code


# The form's lists, in the order the page shows them.
REASONS = tuple(codes.REFERRAL_REASONS.items())
NEEDS = tuple(codes.OFFER_CATEGORIES.items())
