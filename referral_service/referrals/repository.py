"""Every query about referral submissions; tenancy inside each query."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from referral_service.principal import Principal
from referral_service.referrals.models import Submission


def find_submission(session: Session, principal: Principal, key: str) -> Submission | None:
    stmt = select(Submission).where(Submission.org_id == principal.org_id, Submission.key == key)
    return session.scalar(stmt)


def add_submission(session: Session, submission: Submission) -> None:
    session.add(submission)
    session.flush()
