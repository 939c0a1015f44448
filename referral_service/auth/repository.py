"""Every query about clients and used assertions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referral_service.auth.models import Client, UsedAssertion
from referral_service.organisations.models import Organisation, OrgKind


def add(session: Session, client: Client) -> Client:
    session.add(client)
    session.flush()
    return client


def get(session: Session, client_id: str) -> Client | None:
    return session.get(Client, client_id)


def active_with_kind(session: Session, client_id: str) -> tuple[Client, OrgKind] | None:
    """The client and its organisation's kind in one round trip, or None if unknown or inactive."""
    row = session.execute(
        select(Client, Organisation.kind)
        .join(Organisation, Organisation.id == Client.org_id)
        .where(Client.id == client_id, Client.active.is_(True))
    ).one_or_none()
    return None if row is None else (row[0], row[1])


def record_assertion(session: Session, client_id: str, jti: str, expires_at: datetime) -> bool:
    """Remember a jti; False when this client has used it before (in any process).

    The savepoint keeps the request's transaction usable after the primary-key violation.
    """
    try:
        with session.begin_nested():
            session.add(UsedAssertion(client_id=client_id, jti=jti, expires_at=expires_at))
    except IntegrityError:
        return False
    return True


def purge_assertions(
    session: Session, expired_before: datetime, client_id: str | None = None
) -> int:
    """Forget jtis whose assertions can no longer be accepted anyway. With a client id this is
    a cheap range delete on the primary key, done on every token request."""
    statement = delete(UsedAssertion).where(UsedAssertion.expires_at < expired_before)
    if client_id is not None:
        statement = statement.where(UsedAssertion.client_id == client_id)
    return session.execute(statement).rowcount  # type: ignore[attr-defined, no-any-return]


def for_org(session: Session, org_id: str | None) -> list[Client]:
    stmt = select(Client).order_by(Client.created_at)
    if org_id is not None:
        stmt = stmt.where(Client.org_id == org_id)
    return list(session.scalars(stmt))
