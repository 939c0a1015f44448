"""Every query about time bank profiles."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from referral_service.timebanks.models import TimeBankProfile


def get(session: Session, org_id: str) -> TimeBankProfile | None:
    return session.get(TimeBankProfile, org_id)


def get_for_update(session: Session, org_id: str) -> TimeBankProfile | None:
    stmt = select(TimeBankProfile).where(TimeBankProfile.org_id == org_id).with_for_update()
    return session.scalar(stmt)


def serving(session: Session, district: str) -> list[TimeBankProfile]:
    """Profiles whose catchment names the district (filtered exactly in Python: few rows)."""
    stmt = select(TimeBankProfile).where(TimeBankProfile.catchment.contains(district))
    return [p for p in session.scalars(stmt) if district in p.districts]


def add(session: Session, profile: TimeBankProfile) -> None:
    session.add(profile)
    session.flush()
