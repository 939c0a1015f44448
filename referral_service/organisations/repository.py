"""Every query about organisations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from referral_service.organisations.models import Organisation, OrgKind


def get(session: Session, org_id: str) -> Organisation | None:
    return session.get(Organisation, org_id)


def get_for_update(session: Session, org_id: str) -> Organisation | None:
    return session.get(Organisation, org_id, with_for_update=True)


def in_board_area(session: Session, board_id: str, kind: OrgKind) -> list[Organisation]:
    """The practices (or time banks) placed in a board's area, by name."""
    query = select(Organisation).where(Organisation.board_id == board_id, Organisation.kind == kind)
    return list(session.scalars(query.order_by(Organisation.name)))


def by_ods(session: Session, ods_code: str) -> Organisation | None:
    return session.scalar(select(Organisation).where(Organisation.ods_code == ods_code))


def add(session: Session, org: Organisation) -> Organisation:
    session.add(org)
    session.flush()
    return org


def all_orgs(session: Session) -> list[Organisation]:
    return list(session.scalars(select(Organisation).order_by(Organisation.created_at)))
