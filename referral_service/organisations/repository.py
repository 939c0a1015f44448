"""Every query about organisations."""

from __future__ import annotations

from sqlalchemy import String, bindparam, select
from sqlalchemy.orm import Session

from referral_service.kit.prepared import Prepared
from referral_service.organisations.models import Organisation, OrgKind


def get(session: Session, org_id: str) -> Organisation | None:
    return session.get(Organisation, org_id)


_READ = Prepared(
    select(
        Organisation.id,
        Organisation.kind,
        Organisation.name,
        Organisation.ods_code,
        Organisation.board_id,
        Organisation.created_at,
    ).where(Organisation.id == bindparam("org_id", type_=String()))
)


def read(session: Session, org_id: str) -> Organisation | None:
    """`get` for a look that changes nothing (every intake checks its practice): one statement
    built once and sent by the driver, about a fifth of the ORM's client CPU. The organisation
    comes back out of the session: never change it or pass it to one."""
    found = _READ.rows(session.connection(), {"org_id": org_id})
    if not found:
        return None
    id_, kind, name, ods_code, board_id, created_at = found[0]
    return Organisation(
        id=id_,
        kind=OrgKind(kind),
        name=name,
        ods_code=ods_code,
        board_id=board_id,
        created_at=created_at,
    )


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
