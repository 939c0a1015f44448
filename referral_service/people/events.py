"""The audit events of people: each sign-in step (accepted, refused, locked), each sign-out, and
each change an operator makes to a person's account.

Ids and SPIS's own words only: never an email address, a password, a code or a token. The person
is the entity `Person/<id>`; the event belongs to their organisation (its tenant).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from referral_service.audit.models import Action, Kind, Outcome
from referral_service.audit.service import record
from referral_service.auth.scopes import CEILINGS
from referral_service.organisations.models import OrgKind
from referral_service.people.models import ROLE_ORG_KIND, Person
from referral_service.principal import Principal

# Who tried to sign in with an email address no person has: unknown, as for a refused token.
_ANONYMOUS = Principal("unknown", "unknown", OrgKind.PLATFORM, frozenset())
# v3-ActReason "health system administration": an operator managing people's access.
_ADMINISTRATION = "HSYSADMIN"


def principal_of(person: Person) -> Principal:
    """The person as a caller of the domain services: their organisation, and the scopes of its
    kind's ceiling (the person's role decides the kind)."""
    kind = ROLE_ORG_KIND[person.role]
    return Principal(
        client_id=f"person/{person.id}",
        org_id=person.org_id,
        org_kind=kind,
        scopes=frozenset(CEILINGS[kind].split()),
    )


def sign_in(session: Session, person: Person | None, detail: str, *, refused: bool) -> None:
    """A sign-in step; `person` is None for an email address no person has."""
    record(
        session,
        principal_of(person) if person is not None else _ANONYMOUS,
        kind=Kind.SIGN_IN,
        action=Action.EXECUTE,
        entities=[f"Person/{person.id}"] if person is not None else [],
        tenant=person.org_id if person is not None else None,
        outcome=Outcome.MINOR_FAILURE if refused else Outcome.SUCCESS,
        detail=detail,
    )


def sign_out(session: Session, person: Person, detail: str = "signed out") -> None:
    record(
        session,
        principal_of(person),
        kind=Kind.SIGN_OUT,
        action=Action.EXECUTE,
        entities=[f"Person/{person.id}"],
        tenant=person.org_id,
        detail=detail,
    )


def account_changed(session: Session, person: Person, action: Action, detail: str) -> None:
    """An operator added a person, disabled one, or issued a new set-up link (`spis user`)."""
    record(
        session,
        Principal.spis(),
        kind=Kind.PERSON_ACCOUNT,
        action=action,
        entities=[f"Person/{person.id}", f"Organization/{person.org_id}"],
        tenant=person.org_id,
        purpose=_ADMINISTRATION,
        detail=detail,
    )
