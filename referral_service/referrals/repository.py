"""Every query about referral submissions; tenancy inside each query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import String, Table, bindparam, select
from sqlalchemy.orm import Session

from referral_service.kit.clock import utcnow
from referral_service.kit.prepared import Prepared
from referral_service.principal import Principal
from referral_service.referrals.models import Submission
from referral_service.store import write_queue


@dataclass(frozen=True, slots=True)
class Previous:
    """What a resend is answered from: the first answer's references and its content digest."""

    response: bytes
    digest: str | None


_TABLE = cast(Table, Submission.__table__)
# Built once and sent by the driver (kit/prepared.py): every intake asks and writes one, and
# building a statement and executing it through SQLAlchemy cost several times what it costs
# PostgreSQL (about 190 against 40 µs of client CPU for a statement like these).
_FIND = Prepared(
    select(Submission.response, Submission.digest).where(
        Submission.org_id == bindparam("org", type_=String()),
        Submission.key == bindparam("key", type_=String()),
    )
)


def find_submission(session: Session, principal: Principal, key: str) -> Previous | None:
    """Core, not the ORM: a resend needs two columns."""
    found = _FIND.rows(session.connection(), {"org": principal.org_id, "key": key})
    return None if not found else Previous(found[0][0], found[0][1])


def add_submission(session: Session, submission: Submission | dict[str, Any]) -> None:
    """Queued with the store's rows (store/write_queue.py), its ServiceRequest among them, and
    sent with them, rather than through the unit of work (which costs more than the row) or in
    a statement of its own. The row as column values (intake), or as an entity that is not
    added to the session (the synthetic data set); a column left out or None is NULL,
    `created_at` now."""
    if isinstance(submission, Submission):
        values = {column.key: getattr(submission, column.key) for column in _TABLE.columns}
    else:
        values = submission
    row = {column.key: values.get(column.key) for column in _TABLE.columns}
    if row["created_at"] is None:
        row["created_at"] = utcnow()
    write_queue.add_rows(session, _TABLE, [row])
