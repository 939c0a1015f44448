"""Every query about people, their sessions and their set-up links.

People are not tenant data read by SMART clients: only the CLI (an operator) and the sign-in
flow read them, by email or by the hash of a token. Listing takes an organisation to filter on.

`lock=True` reads with FOR UPDATE and refreshes a row the session already holds (what was read
before the lock may be stale). Paths that lock several rows lock the person's first.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from referral_service.people.models import Person, SetupLink, WebSession

T = TypeVar("T")


def add(session: Session, row: Person | WebSession | SetupLink) -> None:
    session.add(row)
    session.flush()


def _locked(stmt: Select[T]) -> Select[T]:
    return stmt.with_for_update().execution_options(populate_existing=True)


def person(session: Session, person_id: str, *, lock: bool = False) -> Person | None:
    if lock:
        return session.scalar(_locked(select(Person).where(Person.id == person_id)))
    return session.get(Person, person_id)


def by_email(session: Session, email: str, *, lock: bool = False) -> Person | None:
    """`email` already normalised (people/rules.normalise_email)."""
    stmt = select(Person).where(Person.email == email)
    return session.scalar(_locked(stmt) if lock else stmt)


def people(session: Session, org_id: str | None = None) -> list[Person]:
    stmt = select(Person).order_by(Person.created_at, Person.id)
    if org_id is not None:
        stmt = stmt.where(Person.org_id == org_id)
    return list(session.scalars(stmt))


def count_failure(session: Session, person_id: str) -> int:
    """One more failed attempt in a row, counted in the database (so attempts racing each other
    all count); the new count."""
    stmt = (
        update(Person)
        .where(Person.id == person_id)
        .values(failed_sign_ins=Person.failed_sign_ins + 1)
        .returning(Person.failed_sign_ins)
        .execution_options(synchronize_session="fetch")
    )
    return int(session.execute(stmt).scalar_one())


def lock(session: Session, person_id: str, until: datetime) -> None:
    stmt = (
        update(Person)
        .where(Person.id == person_id)
        .values(locked_until=until)
        .execution_options(synchronize_session="fetch")
    )
    session.execute(stmt)


def web_session(session: Session, session_id: str, *, lock: bool = False) -> WebSession | None:
    stmt = select(WebSession).where(WebSession.id == session_id)
    return session.scalar(_locked(stmt) if lock else stmt)


def end_sessions(session: Session, person_id: str, now: datetime) -> None:
    stmt = (
        update(WebSession)
        .where(WebSession.person_id == person_id, WebSession.ended_at.is_(None))
        .values(ended_at=now)
        .execution_options(synchronize_session="fetch")
    )
    session.execute(stmt)


def setup_link(session: Session, link_id: str, *, lock: bool = False) -> SetupLink | None:
    stmt = select(SetupLink).where(SetupLink.id == link_id)
    return session.scalar(_locked(stmt) if lock else stmt)


def revoke_links(session: Session, person_id: str, now: datetime) -> None:
    """Every link of this person not used yet stops working."""
    stmt = (
        update(SetupLink)
        .where(
            SetupLink.person_id == person_id,
            SetupLink.used_at.is_(None),
            SetupLink.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .execution_options(synchronize_session="fetch")
    )
    session.execute(stmt)
