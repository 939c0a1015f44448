"""Every query about referral submissions; tenancy inside each query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, insert, select
from sqlalchemy.orm import Session

from referral_service.principal import Principal
from referral_service.referrals.models import Submission


@dataclass(frozen=True, slots=True)
class Previous:
    """What a resend is answered from: the first answer's references and its content digest."""

    response: bytes
    digest: str | None


# Built once: every intake asks, and building the statement cost more than running it.
_FIND = select(Submission.response, Submission.digest).where(
    Submission.org_id == bindparam("org", type_=String()),
    Submission.key == bindparam("key", type_=String()),
)


def find_submission(session: Session, principal: Principal, key: str) -> Previous | None:
    """Core, not the ORM: a resend needs two columns."""
    found = session.execute(_FIND, {"org": principal.org_id, "key": key}).first()
    return None if found is None else Previous(found.response, found.digest)


def add_submission(session: Session, submission: Submission | dict[str, Any]) -> None:
    """Sent now, with Core rather than the unit of work (which costs more than the row): the
    store's queued rows (store/write_queue.py), its ServiceRequest among them, go first. The
    row as column values (intake), or as an entity that is not added to the session (the
    synthetic data set); columns left out or None take their defaults."""
    table = cast(Table, Submission.__table__)
    if isinstance(submission, Submission):
        values = {column.key: getattr(submission, column.key) for column in table.columns}
    else:
        values = submission
    session.execute(insert(table), [{k: v for k, v in values.items() if v is not None}])
