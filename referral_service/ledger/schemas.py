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
    ended: bool = Field(
        False,
        description="True once the membership has ended: the member keeps their history and "
        "balance, and takes part in no new exchange, offer or request.",
    )
    ended_at: Instant | None = None
    end_reason: str | None = Field(None, description="Why it ended, if the broker said.")

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
            ended=member.ended,
            ended_at=member.ended_at,
            end_reason=member.end_reason,
        )


class MemberSummary(MemberOut):
    """A member in the members list, with every figure (all net of reversals)."""

    balance_minutes: int = Field(description="Minutes given minus minutes received.")
    given_minutes: int
    received_minutes: int
    partners: int = Field(description="Distinct members exchanged with (network reach).")
    reciprocity: float | None = Field(
        description="Referred members only: minutes given ÷ minutes received; null until "
        "something was received, and for members who joined on their own."
    )

    @classmethod
    def of_row(cls, row: service.MemberRow) -> MemberSummary:
        return cls(
            **MemberOut.of(row.member).model_dump(),
            balance_minutes=row.balance,
            given_minutes=row.given,
            received_minutes=row.received,
            partners=row.partners,
            reciprocity=row.reciprocity,
        )


class MembershipEndIn(BaseModel):
    reason: str | None = Field(
        None, description="Why the membership ends, at most 280 characters (optional)."
    )


class Indicators(BaseModel):
    """Co-production indicators of a referred member (DESIGN §5)."""

    reciprocity: float | None = Field(
        description="Minutes given ÷ minutes received; null until something was received."
    )
    first_gift_days: int | None = Field(
        description="Days from enrolment to the first exchange in which the member gave time; "
        "null until they have."
    )


class StatementLineOut(BaseModel):
    """One exchange on a member's statement, seen from the member's side."""

    exchange_id: str
    date: dt.date
    partner_id: str = Field(description="The other member of the exchange.")
    partner_alias: str | None = Field(
        description="Null when the stored alias failed its integrity check."
    )
    category: str
    description: str | None
    minutes: int = Field(
        description="Positive: time the member gave; negative: time received. A reversal "
        "has the opposite sign of the exchange it undoes."
    )
    balance_minutes: int = Field(description="The member's balance after this line.")
    reverses: str | None = Field(description="For a reversal: the id of the exchange it undoes.")
    reversed_by: str | None = Field(description="The id of the reversal that undid this one.")
    reason: str | None = Field(description="For a reversal: why.")

    @classmethod
    def of(cls, line: service.StatementLine) -> StatementLineOut:
        exchange = line.exchange
        return cls(
            exchange_id=exchange.id,
            date=exchange.performed_on,
            partner_id=line.partner_id,
            partner_alias=line.partner_alias,
            category=exchange.category,
            description=exchange.description,
            minutes=line.minutes,
            balance_minutes=line.balance,
            reverses=exchange.reverses_id,
            reversed_by=line.reversed_by,
            reason=exchange.reason,
        )


class MemberStatement(MemberOut):
    balance_minutes: int = Field(description="given_minutes − received_minutes.")
    given_minutes: int
    received_minutes: int
    partners: int = Field(description="Distinct members exchanged with (network reach).")
    indicators: Indicators | None = Field(description="Only for referred members.")
    lines: list[StatementLineOut] = Field(
        description="Every exchange the member took part in, oldest first (by date, then when "
        "recorded), reversals included."
    )

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
            lines=[StatementLineOut.of(line) for line in found.lines],
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
    description: str | None = Field(
        None, description="What was done, at most 280 characters (optional)."
    )

    def as_new(self) -> service.NewExchange:
        return service.NewExchange(
            self.giver_id,
            self.receiver_id,
            self.minutes,
            self.date,
            self.category,
            self.description,
        )


class ReversalIn(BaseModel):
    reason: str = Field(description="Why the exchange is being reversed, 1–280 characters.")


class ExchangeOut(BaseModel):
    id: str
    giver_id: str
    receiver_id: str
    minutes: int = Field(
        description="Always positive; for a reversal, the minutes taken back from the giver "
        "and given back to the receiver."
    )
    date: dt.date
    category: str
    description: str | None = None
    created_at: Instant
    reverses: str | None = Field(
        None, description="For a reversal: the id of the exchange it undoes."
    )
    reason: str | None = Field(None, description="For a reversal: why.")
    reversed_by: str | None = Field(
        None, description="The id of the reversal that undid this exchange, if one did."
    )
    fhir: list[str] = Field(
        description="`Procedure/<id>` and `Observation/<id>` written for referred parties "
        "(none for a reversal: it marks the original's entered-in-error)."
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
            description=exchange.description,
            created_at=exchange.created_at,
            reverses=exchange.reverses_id,
            reason=exchange.reason,
            reversed_by=recorded.reversed_by,
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
