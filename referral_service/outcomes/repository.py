"""Every query of the outcome rows' upkeep: writing one patient's rows, the immediate exclusion,
and the few reads of other domains' tables the refresh needs that their repositories do not offer
(read only, by ids, with the tenant in the query).

Tenancy: the rows are SPIS's own, written and read by SPIS (`Principal.spis()`); each write names
the practice whose referrals they are, each ledger read the time bank whose ledger it is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, exists, insert, or_, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from fhir_adapters.search_params import stored_name
from referral_service.ledger.models import Exchange, Member
from referral_service.organisations.models import Organisation
from referral_service.outcomes.models import (
    BoardVersion,
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from referral_service.store.models import SearchIndex, StoredResource

# Namespaces the per-patient advisory lock (PostgreSQL), so it cannot meet another lock's key.
_LOCK_NAMESPACE = b"spis.outcomes.patient:"
_PATIENT_PREFIX = "Patient/"


def lock_patient(session: Session, patient_id: str) -> None:
    """Serialise, until commit, everything that writes this patient's outcome rows: a refresh
    (which reads the sources after taking it, so it sees every commit before it) and an
    immediate exclusion (which then updates the rows the refresh wrote). SQLite runs one writer
    at a time anyway."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(_LOCK_NAMESPACE + patient_id.encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


# --- the rows ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PatientRows:
    """Everything one patient's referrals contribute, ready to insert."""

    referrals: list[ReferralOutcome]
    declines: list[OutcomeDecline]
    activity: list[OutcomeActivity]
    partners: list[OutcomePartner]
    scores: list[OutcomeScore]


def replace_patient_rows(
    session: Session, practice_id: str, patient_id: str, rows: PatientRows
) -> None:
    """Delete the patient's rows at this practice (their declines, activity, partners and scores
    go with them: ON DELETE CASCADE) and write the new ones. Inserts run in dependency order."""
    session.execute(
        delete(ReferralOutcome).where(
            ReferralOutcome.practice_id == practice_id, ReferralOutcome.patient_id == patient_id
        )
    )
    for model, found in (
        (ReferralOutcome, rows.referrals),
        (OutcomeDecline, rows.declines),
        (OutcomeActivity, rows.activity),
        (OutcomePartner, rows.partners),
        (OutcomeScore, rows.scores),
    ):
        if found:
            session.execute(insert(model), [_values(model, row) for row in found])
    rows_changed(session, practice_id)


def _values(model: type[object], row: object) -> dict[str, object]:
    table = model.__table__  # type: ignore[attr-defined]
    return {column.key: getattr(row, column.key) for column in table.columns}


def set_ineligible(session: Session, practice_id: str, patient_id: str) -> int:
    """The immediate exclusion: the patient's referrals at this practice count in no report."""
    result = session.execute(
        update(ReferralOutcome)
        .where(
            ReferralOutcome.practice_id == practice_id,
            ReferralOutcome.patient_id == patient_id,
            ReferralOutcome.eligible.is_(True),
        )
        .values(eligible=False)
        .execution_options(synchronize_session=False)
    )
    changed = int(result.rowcount)  # type: ignore[attr-defined]
    if changed:
        rows_changed(session, practice_id)
    return changed


def rows_changed(session: Session, practice_id: str) -> None:
    """The outcome rows of the practice's referrals changed: move its board's data version on,
    in this transaction, so reports cached before it are not served again (report_cache.py).
    The version row stays locked until commit: writers of one board's rows queue here, at
    their last step."""
    board = session.scalar(select(Organisation.board_id).where(Organisation.id == practice_id))
    if board is None:
        return
    if not _bump(session, board):
        try:
            with session.begin_nested():
                session.execute(insert(BoardVersion).values(board_id=board, version=1))
        except IntegrityError:  # another transaction made the row first
            _bump(session, board)


def _bump(session: Session, board_id: str) -> bool:
    result = session.execute(
        update(BoardVersion)
        .where(BoardVersion.board_id == board_id)
        .values(version=BoardVersion.version + 1)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def has_rows(session: Session, practice_id: str, patient_id: str) -> bool:
    stmt = select(
        exists().where(
            ReferralOutcome.practice_id == practice_id, ReferralOutcome.patient_id == patient_id
        )
    )
    return bool(session.scalar(stmt))


def referral_rows(session: Session, practice_id: str, patient_id: str) -> list[ReferralOutcome]:
    stmt = (
        select(ReferralOutcome)
        .where(ReferralOutcome.practice_id == practice_id, ReferralOutcome.patient_id == patient_id)
        .order_by(ReferralOutcome.received_at, ReferralOutcome.referral_id)
    )
    return list(session.scalars(stmt))


# --- which patients (rebuild) --------------------------------------------------------------------


def referred_patients(session: Session, practice_id: str | None) -> list[str]:
    """Every patient with a referral Task (a Task without partOf), or with outcome rows, at one
    practice or at all of them; by id, so batches are stable."""
    part_of = aliased(SearchIndex)
    tasks = (
        select(SearchIndex.value)
        .join(StoredResource, StoredResource.id == SearchIndex.resource_id)
        .where(
            SearchIndex.resource_type == "Task",
            SearchIndex.name == stored_name("Task", "patient"),
            SearchIndex.value.startswith(_PATIENT_PREFIX),
            StoredResource.type == "Task",
            ~exists().where(
                part_of.resource_id == SearchIndex.resource_id, part_of.name == "part-of"
            ),
        )
    )
    rows = select(ReferralOutcome.patient_id)
    if practice_id is not None:
        tasks = tasks.where(StoredResource.org_id == practice_id)
        rows = rows.where(ReferralOutcome.practice_id == practice_id)
    found = {value.removeprefix(_PATIENT_PREFIX) for value in session.scalars(tasks) if value}
    found.update(session.scalars(rows))
    return sorted(found)


# --- the ledger, read for the refresh ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Enrolled:
    member_id: str
    org_id: str  # the time bank whose member this is
    child_task_id: str
    enrolled_at: datetime


def enrolled_from(session: Session, tasks: Iterable[tuple[str, str]]) -> list[Enrolled]:
    """Members enrolled from these time bank Tasks, each given with the time bank that owns it
    as (org_id, task_id): a member counts only in the ledger of the Task's own time bank. The
    sealed alias is not read."""
    wanted = sorted(set(tasks))
    if not wanted:
        return []
    stmt = (
        select(Member.id, Member.org_id, Member.referral_task_id, Member.enrolled_at)
        .where(
            tuple_(Member.org_id, Member.referral_task_id).in_(wanted),
            Member.enrolled_at.is_not(None),
        )
        .order_by(Member.enrolled_at, Member.id)
    )
    return [
        Enrolled(member_id, org_id, str(task_id), enrolled_at)
        for member_id, org_id, task_id, enrolled_at in session.execute(stmt)
        if enrolled_at is not None
    ]


@dataclass(frozen=True, slots=True)
class Given:
    """One standing exchange: neither reversed nor itself a reversal."""

    performed_on: date
    giver_id: str
    receiver_id: str
    minutes: int


def standing_exchanges(session: Session, org_id: str, member_id: str) -> list[Given]:
    """The member's exchanges in their time bank's ledger, reversed ones and reversals left out,
    in the order they happened. The sealed descriptions are not read."""
    reversal = aliased(Exchange, name="reversal")
    stmt = (
        select(Exchange.performed_on, Exchange.giver_id, Exchange.receiver_id, Exchange.minutes)
        .outerjoin(reversal, (reversal.reverses_id == Exchange.id) & (reversal.org_id == org_id))
        .where(
            Exchange.org_id == org_id,
            or_(Exchange.giver_id == member_id, Exchange.receiver_id == member_id),
            Exchange.reverses_id.is_(None),
            reversal.id.is_(None),
        )
        .order_by(Exchange.performed_on, Exchange.created_at, Exchange.id)
    )
    return [Given(*row) for row in session.execute(stmt)]


def patients_of_members(session: Session, members: Iterable[tuple[str, str]]) -> list[str]:
    """The Patients behind these (org_id, member_id) members, for those enrolled from a referral."""
    wanted: Sequence[tuple[str, str]] = sorted(set(members))
    if not wanted:
        return []
    stmt = select(Member.patient_id).where(
        tuple_(Member.org_id, Member.id).in_(wanted), Member.patient_id.is_not(None)
    )
    return sorted({patient for patient in session.scalars(stmt) if patient})
