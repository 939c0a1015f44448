"""Every query a report makes: the outcome rows of one board's practices and one period, the
programme costs boards enter, and the report cache (its rows, the boards' data versions, the
area a report's fingerprint names: report_cache.py).

A board's rows are the referrals made by practices whose `organisation.board_id` is the board,
read when the report runs (a practice moved to another board takes its referrals with it); only
`eligible` rows (secondary use permitted, no national opt-out). One query per family of figures,
each driven by an index of models.py, selecting the columns the figures need as plain tuples: no
ORM objects, no resource bodies, no ledger tables. Datetime bounds are half-open: [start, end);
months are first days, both bounds included.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import TypeVarTuple

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    String,
    case,
    delete,
    func,
    insert,
    null,
    select,
    type_coerce,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referral_service.kit.clock import utcnow
from referral_service.organisations.models import Organisation
from referral_service.outcomes.models import (
    BoardVersion,
    CachedReport,
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ProgrammeCost,
    ReferralOutcome,
)

R = ReferralOutcome
Ts = TypeVarTuple("Ts")
_PRACTICE = Organisation.id == R.practice_id
REJECTED = "rejected"  # the referral Task status of a referral no time bank could take


def _board(board_id: str) -> tuple[ColumnElement[bool], ...]:
    """Eligible referrals of the board's practices (joined on `_PRACTICE`), as the area is now."""
    return Organisation.board_id == board_id, R.eligible.is_(True)


ReferralRow = Row[
    str, str, str, str | None, datetime, datetime | None, datetime | None, date | None,
    datetime | None, str | None,
]  # fmt: skip


def referrals_received(
    session: Session, board_id: str, start: datetime, end: datetime
) -> Sequence[ReferralRow]:
    """The funnel's rows: referrals received in [start, end) (ix_outcome_referral_practice_received):
    id, patient, practice, time bank, received, routed, accepted, first exchange, completed, and
    the reason SPIS gave when the referral is `rejected` (None otherwise)."""
    rejected = case((R.status == REJECTED, R.rejected_reason), else_=None)
    query = (
        select(
            R.referral_id,
            R.patient_id,
            R.practice_id,
            R.timebank_id,
            R.received_at,
            R.routed_at,
            R.accepted_at,
            R.first_exchange_on,
            R.completed_at,
            rejected,
        )
        .join(Organisation, _PRACTICE)
        .where(*_board(board_id), R.received_at >= start, R.received_at < end)
    )
    return _rows(session, query)


def declines(
    session: Session, board_id: str, start: datetime, end: datetime
) -> Sequence[Row[str, str, str]]:
    """Time banks' declines of the referrals received in [start, end): referral, declining time
    bank, reason."""
    query = (
        select(OutcomeDecline.referral_id, OutcomeDecline.timebank_id, OutcomeDecline.reason)
        .join(R, R.referral_id == OutcomeDecline.referral_id)
        .join(Organisation, _PRACTICE)
        .where(*_board(board_id), R.received_at >= start, R.received_at < end)
    )
    return _rows(session, query)


ActivityRow = Row[str, str, str, str | None, datetime, date, int, int, str | None]
PARTNER_SEPARATOR = ","  # between partner member ids (uuids) in an activity row


def activity(
    session: Session, board_id: str, first_month: date, last_month: date, *, partners: bool = True
) -> Sequence[ActivityRow]:
    """Monthly activity with at least one exchange, months in [first, last] (ix_outcome_activity_
    month): referral, patient, practice, time bank, received, month, minutes given, received, and
    with `partners` that month's exchange partners, joined by PARTNER_SEPARATOR (looked up by the
    partner primary key, referral and month, for the board's rows only)."""
    P, A = OutcomePartner, OutcomeActivity
    met = (
        select(func.aggregate_strings(P.partner_member_id, PARTNER_SEPARATOR))
        .where(P.referral_id == A.referral_id, P.month == A.month)
        .scalar_subquery()
        if partners
        else null()
    )
    query = (
        select(
            A.referral_id,
            R.patient_id,
            R.practice_id,
            R.timebank_id,
            R.received_at,
            A.month,
            A.minutes_given,
            A.minutes_received,
            type_coerce(met, String),
        )
        .join(R, R.referral_id == A.referral_id)
        .join(Organisation, _PRACTICE)
        .where(
            *_board(board_id),
            A.month >= first_month,
            A.month <= last_month,
            A.exchanges > 0,
        )
    )
    return _rows(session, query)


EnrolmentRow = Row[str, str, str, str | None, datetime | None, date | None]


def enrolments(
    session: Session, board_id: str, start: datetime, end: datetime
) -> Sequence[EnrolmentRow]:
    """Referrals enrolled at a time bank in [start, end) (ix_outcome_referral_practice_enrolled):
    referral, patient, practice, time bank, enrolled, first gift."""
    query = (
        select(
            R.referral_id,
            R.patient_id,
            R.practice_id,
            R.timebank_id,
            R.enrolled_at,
            R.first_gift_on,
        )
        .join(Organisation, _PRACTICE)
        .where(*_board(board_id), R.enrolled_at >= start, R.enrolled_at < end)
    )
    return _rows(session, query)


ScoreRow = Row[str, str, str, str | None, str, float, datetime, float | None, datetime | None]


def score_pairs(
    session: Session, board_id: str, scales: Collection[str], start: datetime, end: datetime
) -> Sequence[ScoreRow]:
    """Baseline and follow-up pairs of `scales` with the follow-up in [start, end)
    (ix_outcome_score_follow_up): referral, patient, practice, time bank, scale, baseline,
    baseline time, follow-up, follow-up time."""
    query = (
        select(
            OutcomeScore.referral_id,
            R.patient_id,
            R.practice_id,
            R.timebank_id,
            OutcomeScore.scale,
            OutcomeScore.baseline,
            OutcomeScore.baseline_at,
            OutcomeScore.follow_up,
            OutcomeScore.follow_up_at,
        )
        .join(R, R.referral_id == OutcomeScore.referral_id)
        .join(Organisation, _PRACTICE)
        .where(
            *_board(board_id),
            OutcomeScore.scale.in_(list(scales)),
            OutcomeScore.follow_up_at >= start,
            OutcomeScore.follow_up_at < end,
            OutcomeScore.follow_up.is_not(None),
        )
    )
    return _rows(session, query)


def names(session: Session, org_ids: Collection[str]) -> Sequence[Row[str, str, str | None]]:
    """Organisations' names and ODS codes, for strata labels: id, name, ODS code."""
    if not org_ids:
        return ()
    query = select(Organisation.id, Organisation.name, Organisation.ods_code).where(
        Organisation.id.in_(list(org_ids))
    )
    return _rows(session, query)


def _rows(session: Session, query: Select[*Ts]) -> Sequence[Row[*Ts]]:
    """The rows of `query` through the session's connection, past the ORM's per-row loading (a
    report reads tens of thousands of plain tuples). Pending changes are flushed first, as an ORM
    query would."""
    session.flush()
    return session.connection().execute(query).all()


def programme_cost(session: Session, board_id: str, start: date, end: date) -> int | None:
    query = select(ProgrammeCost.amount_pence).where(
        ProgrammeCost.board_id == board_id,
        ProgrammeCost.period_start == start,
        ProgrammeCost.period_end == end,
    )
    return session.scalar(query)


def put_programme_cost(
    session: Session, board_id: str, start: date, end: date, amount_pence: int, entered_by: str
) -> ProgrammeCost:
    """The board's cost for exactly this period, replacing one entered before."""
    row = session.get(ProgrammeCost, (board_id, start, end), with_for_update=True)
    if row is None:
        row = ProgrammeCost(board_id=board_id, period_start=start, period_end=end)
        session.add(row)
    row.amount_pence = amount_pence
    row.entered_by = entered_by
    row.entered_at = utcnow()
    session.flush()
    return row


# --- the report cache (report_cache.py) ---------------------------------------------------------


def data_version(session: Session, board_id: str) -> int:
    """How many times the board's outcome rows have changed (0: never)."""
    found = session.scalar(select(BoardVersion.version).where(BoardVersion.board_id == board_id))
    return found or 0


def area(session: Session, board_id: str) -> Sequence[Row[str, str, str, str | None]]:
    """The organisations in the board's area, by id: id, kind, name, ODS code."""
    query = (
        select(Organisation.id, Organisation.kind, Organisation.name, Organisation.ods_code)
        .where(Organisation.board_id == board_id)
        .order_by(Organisation.id)
    )
    return session.execute(query).all()


CacheKey = tuple[str, str, date, date, str]  # board, measure, period start and end, focus or ""


def _key(key: CacheKey) -> tuple[ColumnElement[bool], ...]:
    board, measure, start, end, focus = key
    return (
        CachedReport.board_id == board,
        CachedReport.measure == measure,
        CachedReport.period_start == start,
        CachedReport.period_end == end,
        CachedReport.focus == focus,
    )


def cached(session: Session, key: CacheKey) -> Row[int, str, bytes, datetime] | None:
    """The cached report under `key`: version, fingerprint, cells, when last pulled."""
    query = select(
        CachedReport.version, CachedReport.fingerprint, CachedReport.cells, CachedReport.pulled_at
    ).where(*_key(key))
    return session.execute(query).first()


def cached_keys(session: Session) -> list[CacheKey]:
    query = select(
        CachedReport.board_id,
        CachedReport.measure,
        CachedReport.period_start,
        CachedReport.period_end,
        CachedReport.focus,
    ).order_by(CachedReport.board_id, CachedReport.pulled_at.desc())
    return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]


def pulled(session: Session, key: CacheKey, at: datetime) -> None:
    session.execute(
        update(CachedReport)
        .where(*_key(key))
        .values(pulled_at=at)
        .execution_options(synchronize_session=False)
    )


def put_cached(
    session: Session,
    key: CacheKey,
    version: int,
    fingerprint: str,
    cells: bytes,
    pulled_at: datetime,
) -> None:
    """Keep the report under `key`, replacing the one there. Another transaction caching the
    same report at the same moment wins: this one's copy is not needed."""
    session.execute(
        delete(CachedReport).where(*_key(key)).execution_options(synchronize_session=False)
    )
    board, measure, start, end, focus = key
    row = insert(CachedReport).values(
        board_id=board,
        measure=measure,
        period_start=start,
        period_end=end,
        focus=focus,
        version=version,
        fingerprint=fingerprint,
        cells=cells,
        computed_at=utcnow(),
        pulled_at=pulled_at,
    )
    try:
        with session.begin_nested():
            session.execute(row)
    except IntegrityError:
        pass


def drop_cached(session: Session, key: CacheKey) -> None:
    session.execute(
        delete(CachedReport).where(*_key(key)).execution_options(synchronize_session=False)
    )


def drop_unpulled(session: Session, before: datetime) -> int:
    """Forget the reports no one has pulled since `before`; how many."""
    result = session.execute(
        delete(CachedReport)
        .where(CachedReport.pulled_at < before)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
