"""Request and response bodies of the ledger's JSON API, as OpenAPI shows them.

Types are checked here; rules (limits, categories, dates) are checked by the service so that they
hold for every caller and answer 422 with the field named.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictInt

from fhir_adapters.codes import OFFER_CATEGORIES
from referral_service.kit.clock import as_utc
from referral_service.ledger import service
from referral_service.ledger.models import Member, Offer, Request

# Every timestamp leaves in UTC with its `Z`: SQLite hands them back naive, PostgreSQL aware.
Instant = Annotated[dt.datetime, AfterValidator(as_utc)]

CATEGORY_HELP = f"One of {', '.join(OFFER_CATEGORIES)}"


class MemberIn(BaseModel):
    alias: str = Field(
        description="How the broker knows the member (a first name or nickname), 1–80 characters. "
        "Personal data: give no more than the broker needs."
    )


class EnrolmentIn(BaseModel):
    child_task_id: str = Field(
        description="Id of the child Task routing the referral to this time bank; it must be "
        "owned by this time bank and accepted or in-progress."
    )
    alias: str = Field(description="How the broker knows the member, 1–80 characters.")


class MemberOut(BaseModel):
    id: str
    alias: str
    referred: bool = Field(description="True when the member was enrolled from a referral.")
    joined_at: Instant
    enrolled_at: Instant | None = None
    referral_task: str | None = Field(None, description="`Task/<id>` of the child Task.")

    @classmethod
    def of(cls, member: Member) -> MemberOut:
        task = f"Task/{member.referral_task_id}" if member.referral_task_id else None
        return cls(
            id=member.id,
            alias=member.alias,
            referred=member.referred,
            joined_at=member.joined_at,
            enrolled_at=member.enrolled_at,
            referral_task=task,
        )


class MemberSummary(MemberOut):
    balance_minutes: int = Field(description="Minutes given minus minutes received.")


class Indicators(BaseModel):
    """Co-production indicators of a referred member (DESIGN §5)."""

    reciprocity: float | None = Field(
        description="Minutes given ÷ minutes received; null until something was received."
    )
    first_gift_days: int | None = Field(
        description="Days from enrolment to the first exchange in which the member gave time; "
        "null until they have."
    )


class MemberStatement(MemberOut):
    balance_minutes: int = Field(description="given_minutes − received_minutes.")
    given_minutes: int
    received_minutes: int
    partners: int = Field(description="Distinct members exchanged with (network reach).")
    indicators: Indicators | None = Field(description="Only for referred members.")

    @classmethod
    def of_statement(cls, found: service.Statement) -> MemberStatement:
        indicators = None
        if found.member.referred:
            indicators = Indicators(
                reciprocity=found.reciprocity, first_gift_days=found.first_gift_days
            )
        return cls(
            **MemberOut.of(found.member).model_dump(),
            balance_minutes=found.balance,
            given_minutes=found.given,
            received_minutes=found.received,
            partners=found.partners,
            indicators=indicators,
        )


class EnrolmentOut(BaseModel):
    member: MemberOut
    observation: str = Field(description="`Observation/<id>` of the enrolment status.")


class ListingIn(BaseModel):
    category: str = Field(description=CATEGORY_HELP)
    description: str = Field(description="What is offered or asked for, 1–280 characters.")


class ListingOut(BaseModel):
    id: str
    member_id: str
    category: str
    description: str
    created_at: Instant

    @classmethod
    def of(cls, listing: Offer | Request) -> ListingOut:
        return cls(
            id=listing.id,
            member_id=listing.member_id,
            category=listing.category,
            description=listing.description,
            created_at=listing.created_at,
        )


class ExchangeIn(BaseModel):
    giver_id: str = Field(description="The member who gave the time (credited).")
    receiver_id: str = Field(description="The member who received it (debited).")
    minutes: StrictInt = Field(description="Whole minutes, 1 to 1440.")
    date: dt.date = Field(
        description="The day the exchange took place; not in the future, not before 1980."
    )
    category: str = Field(description=CATEGORY_HELP)

    def as_new(self) -> service.NewExchange:
        return service.NewExchange(
            self.giver_id, self.receiver_id, self.minutes, self.date, self.category
        )


class ExchangeOut(BaseModel):
    id: str
    giver_id: str
    receiver_id: str
    minutes: int
    date: dt.date
    category: str
    created_at: Instant
    fhir: list[str] = Field(
        description="`Procedure/<id>` and `Observation/<id>` written for referred parties."
    )

    @classmethod
    def of(cls, recorded: service.RecordedExchange) -> ExchangeOut:
        exchange = recorded.exchange
        refs = [
            ref
            for entry in recorded.entries
            for ref in (
                f"Procedure/{entry.procedure_id}" if entry.procedure_id else None,
                f"Observation/{entry.observation_id}" if entry.observation_id else None,
            )
            if ref is not None
        ]
        return cls(
            id=exchange.id,
            giver_id=exchange.giver_id,
            receiver_id=exchange.receiver_id,
            minutes=exchange.minutes,
            date=exchange.performed_on,
            category=exchange.category,
            created_at=exchange.created_at,
            fhir=refs,
        )


class OutcomeIssue(BaseModel):
    severity: str
    code: str = Field(description="OperationOutcome issue type, e.g. invalid, business-rule.")
    diagnostics: str
    expression: list[str] | None = None


class ErrorOutcome(BaseModel):
    """Errors are rendered as a FHIR OperationOutcome, as everywhere else in SPIS."""

    resourceType: Literal["OperationOutcome"]  # the FHIR element name, hence camelCase
    issue: list[OutcomeIssue]
