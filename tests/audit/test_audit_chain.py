"""The chain on PostgreSQL: sealed events verify; an edited, deleted or moved event or chain row
fails verification at that position; an event neither chained nor queued fails it; the triggers
refuse UPDATE and DELETE; events commit and roll back with the work."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import repository, service
from referral_service.audit.models import Action, AuditChainLink, AuditEvent, Kind, Outcome
from referral_service.audit.service import record
from referral_service.audit.verify import VerifyResult, head, verify
from referral_service.config import Settings
from referral_service.context import Context
from tests.audit.conftest import Tamper, a_principal, seal


def append(factory: sessionmaker[Session], count: int, **fields: object) -> None:
    """Commit `count` events in one transaction, then chain them."""
    record_only(factory, count, **fields)
    seal(factory)


def record_only(factory: sessionmaker[Session], count: int, **fields: object) -> None:
    with factory.begin() as session:
        for n in range(count):
            record(
                session,
                a_principal(),
                kind=Kind.READ,
                action=Action.READ,
                entities=[f"Task/task-{n}"],
                patient_id="patient-1",
                tenant="org-a",
                **fields,  # type: ignore[arg-type]
            )


def verified(factory: sessionmaker[Session], **kwargs: object) -> VerifyResult:
    with factory() as session:
        return verify(session, **kwargs)  # type: ignore[arg-type]


def test_appends_form_one_chain_that_verifies(session_factory: sessionmaker[Session]) -> None:
    append(session_factory, 3)
    append(session_factory, 2)
    with session_factory() as session:
        rows = session.scalars(select(AuditChainLink).order_by(AuditChainLink.pos)).all()
    assert [(r.pos, r.event_seq) for r in rows] == [(n, n) for n in range(1, 6)]
    assert rows[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))
    assert verified(session_factory) == VerifyResult(True, 5)


def test_committed_events_wait_in_the_queue_until_sealed(
    session_factory: sessionmaker[Session],
) -> None:
    record_only(session_factory, 3)
    result = verified(session_factory)
    assert (result.ok, result.checked, result.queued) == (True, 0, 3)
    assert result.oldest_queued is not None
    assert seal(session_factory) == 3
    assert verified(session_factory) == VerifyResult(True, 3)


def test_an_empty_trail_verifies(session_factory: sessionmaker[Session]) -> None:
    assert verified(session_factory) == VerifyResult(True, 0)


def test_verify_walks_in_batches_and_reports_progress(
    session_factory: sessionmaker[Session],
) -> None:
    append(session_factory, 7)
    seen: list[tuple[int, int]] = []
    result = verified(session_factory, batch_size=3, progress=lambda n, t: seen.append((n, t)))
    assert result.ok
    assert seen == [(3, 7), (6, 7), (7, 7)]


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE audit_event SET detail = 'nothing to see' WHERE seq = 3",
        "UPDATE audit_event SET outcome = 4 WHERE seq = 3",
        "UPDATE audit_event SET patient_id = 'someone-else' WHERE seq = 3",
        "UPDATE audit_event SET recorded = recorded + interval '1 second' WHERE seq = 3",
    ],
)
def test_an_edited_row_fails_at_that_row(
    session_factory: sessionmaker[Session], tamper: Tamper, change: str
) -> None:
    append(session_factory, 5)
    tamper(change)
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert "edited" in str(result.reason)


def test_an_edited_row_with_its_hash_recomputed_breaks_the_next_link(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    with session_factory() as session:
        [link] = [lk for lk in repository.links_after(session, 2, 1)]
    from dataclasses import replace

    from referral_service.audit import chain

    assert link.event is not None
    forged = chain.link_hash(link.prev_hash, 3, replace(link.event, detail="forged"))
    tamper("UPDATE audit_event SET detail = 'forged' WHERE seq = 3")
    tamper("UPDATE audit_chain SET hash = :h WHERE pos = 3", h=forged)
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert "prev_hash" in str(result.reason)


def test_a_deleted_event_fails_at_its_position(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    tamper("DELETE FROM audit_event WHERE seq = 3")
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason == "the event this row chains (seq 3) is missing (deleted)"


def test_a_deleted_event_and_its_chain_row_fail_at_that_position(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    tamper("DELETE FROM audit_chain WHERE pos = 3")
    tamper("DELETE FROM audit_event WHERE seq = 3")
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.reason == "chain row missing (deleted)"


def test_a_deleted_chain_row_alone_fails(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    tamper("DELETE FROM audit_chain WHERE pos = 2")
    assert verified(session_factory).first_bad_seq == 2


def test_deleting_the_first_row_fails(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 3)
    tamper("DELETE FROM audit_chain WHERE pos = 1")
    tamper("DELETE FROM audit_event WHERE seq = 1")
    assert verified(session_factory).first_bad_seq == 1


def test_a_deleted_row_with_the_rest_renumbered_still_fails(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    tamper("DELETE FROM audit_chain WHERE pos = 3")
    tamper("DELETE FROM audit_event WHERE seq = 3")
    tamper("UPDATE audit_chain SET pos = pos - 1 WHERE pos > 3")
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_two_chain_rows_swapped_fail(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    tamper("UPDATE audit_chain SET pos = -2 WHERE pos = 2")
    tamper("UPDATE audit_chain SET pos = 2 WHERE pos = 4")
    tamper("UPDATE audit_chain SET pos = 4 WHERE pos = -2")
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_two_events_swapped_fail(session_factory: sessionmaker[Session], tamper: Tamper) -> None:
    """The chain rows stay, but point at each other's events."""
    append(session_factory, 5)
    tamper("UPDATE audit_chain SET event_seq = -2 WHERE pos = 2")
    tamper("UPDATE audit_chain SET event_seq = 2 WHERE pos = 4")
    tamper("UPDATE audit_chain SET event_seq = 4 WHERE event_seq = -2")
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "another event put in its place" in str(result.reason)


def test_cut_off_newest_chain_rows_leave_their_events_unaccounted(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    tamper("DELETE FROM audit_chain WHERE pos >= 4")
    result = verified(session_factory)
    assert (result.ok, result.first_bad_seq) == (False, None)
    assert result.reason is not None
    assert result.reason.startswith("event seq 4 is neither chained nor queued")


def test_cut_off_newest_rows_with_their_events_need_an_anchor(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 5)
    with session_factory() as session:
        anchor = head(session)
    assert anchor is not None
    assert anchor.seq == 5
    tamper("DELETE FROM audit_chain WHERE pos >= 4")
    tamper("DELETE FROM audit_event WHERE seq >= 4")
    assert verified(session_factory).ok  # the chain alone cannot tell
    result = verified(session_factory, anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_an_event_slipped_in_past_the_queue_fails(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    """Inserted with the queue trigger off, it would never be chained: verify names it."""
    append(session_factory, 2)
    tamper(
        "INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, actor_org_id, "
        "entities, outcome) VALUES ('forged', now(), 'R', 'read', 'c', 'o', '', 0)"
    )
    result = verified(session_factory)
    assert (result.ok, result.checked) == (False, 2)
    assert str(result.reason).startswith("event seq 3 is neither chained nor queued")
    assert seal(session_factory) == 0  # the sealer never picks it up
    assert not verified(session_factory).ok


def test_an_unsealed_event_taken_off_the_queue_fails(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 2)
    record_only(session_factory, 1)
    tamper("DELETE FROM audit_unsealed")
    assert seal(session_factory) == 0
    result = verified(session_factory)
    assert not result.ok
    assert str(result.reason).startswith("event seq 3 is neither chained nor queued")


def test_an_unsealed_event_deleted_fails(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 2)
    record_only(session_factory, 1)
    tamper("DELETE FROM audit_event WHERE seq = 3")
    assert seal(session_factory) == 0  # left in the queue, for verify to show
    result = verified(session_factory)
    assert not result.ok
    assert result.reason == "event seq 3 was queued for sealing and is missing (deleted)"


def test_a_queue_row_put_back_for_a_chained_event_is_only_dequeued(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 3)
    tamper("INSERT INTO audit_unsealed (event_seq) VALUES (2)")
    seal(session_factory)
    assert verified(session_factory) == VerifyResult(True, 3)


def test_a_rewritten_chain_differs_from_its_anchor(
    session_factory: sessionmaker[Session], tamper: Tamper
) -> None:
    append(session_factory, 3)
    with session_factory() as session:
        anchor = head(session)
    tamper("DELETE FROM audit_chain")
    tamper("DELETE FROM audit_event")
    append(session_factory, 3)  # a whole new, self-consistent chain
    assert verified(session_factory).ok
    result = verified(session_factory, anchor=anchor)
    assert (result.ok, result.first_bad_seq) == (False, 3)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET detail = 'x' WHERE seq = 1",
        "UPDATE audit_event SET outcome = 0",
        "DELETE FROM audit_event WHERE seq = 1",
        "DELETE FROM audit_event",
        "UPDATE audit_chain SET hash = prev_hash WHERE pos = 1",
        "DELETE FROM audit_chain WHERE pos = 2",
        "DELETE FROM audit_chain",
    ],
)
def test_the_trigger_refuses_update_and_delete(
    session_factory: sessionmaker[Session], statement: str
) -> None:
    append(session_factory, 2)
    with session_factory() as session, pytest.raises(DBAPIError, match="append-only"):
        session.execute(text(statement))
    assert verified(session_factory) == VerifyResult(True, 2)


@pytest.mark.parametrize(
    "statement", ["DELETE FROM audit_unsealed", "UPDATE audit_unsealed SET event_seq = 9"]
)
def test_an_event_leaves_the_queue_only_once_chained(
    session_factory: sessionmaker[Session], statement: str
) -> None:
    record_only(session_factory, 2)
    with session_factory() as session, pytest.raises(DBAPIError, match="only once chained"):
        session.execute(text(statement))
    assert seal(session_factory) == 2


def test_an_event_rolls_back_with_the_work(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as session:
        record(session, a_principal(), kind=Kind.CREATE, action=Action.CREATE, entities=[])
        session.rollback()
    with session_factory() as session:
        record(session, a_principal(), kind=Kind.CREATE, action=Action.CREATE, entities=[])
        # closed without commit: the work never happened
    assert count(session_factory) == 0


def refused_intake(factory: sessionmaker[Session]) -> None:
    with factory.begin() as session:
        record(session, a_principal(), kind=Kind.CREATE, action=Action.CREATE, entities=[])
        record(
            session,
            a_principal(),
            kind=Kind.CONSENT_DECISION,
            action=Action.EXECUTE,
            entities=["Consent/c-1"],
            outcome=Outcome.MINOR_FAILURE,
            detail="deny referral",
        )
        raise RuntimeError("the intake is refused")


def test_a_failure_outlives_the_rollback(session_factory: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError):
        refused_intake(session_factory)
    with session_factory() as session:
        kinds = session.scalars(select(AuditEvent.kind)).all()
    assert kinds == ["consent-decision"]
    assert verified(session_factory).ok


def test_a_rolled_back_savepoint_drops_its_successes_only(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        record(session, a_principal(), kind=Kind.READ, action=Action.READ, entities=["Task/kept"])
        savepoint = session.begin_nested()
        record(session, a_principal(), kind=Kind.CREATE, action=Action.CREATE, entities=["Task/x"])
        record(
            session,
            a_principal(),
            kind=Kind.CREATE,
            action=Action.CREATE,
            entities=["Task/refused"],
            outcome=Outcome.MINOR_FAILURE,
        )
        savepoint.rollback()
        with session.begin_nested():
            record(
                session, a_principal(), kind=Kind.CREATE, action=Action.CREATE, entities=["Task/y"]
            )
    with session_factory() as session:
        entities = session.scalars(select(AuditEvent.entities).order_by(AuditEvent.seq)).all()
    assert entities == ["Task/kept", "Task/refused", "Task/y"]


def test_record_outcome_failure_has_its_own_transaction(
    session_factory: sessionmaker[Session],
) -> None:
    service.record_outcome_failure(
        session_factory,
        a_principal(),
        kind=Kind.READ,
        action=Action.READ,
        entities=["Task/elsewhere"],
        detail="404 not-found",
    )
    with session_factory() as session:
        row = session.scalars(select(AuditEvent)).one()
    assert (row.outcome, row.detail, row.entities) == (4, "404 not-found", "Task/elsewhere")


def test_entities_that_are_not_plain_references_are_dropped(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        event = record(
            session,
            a_principal(),
            kind=Kind.SEARCH,
            action=Action.EXECUTE,
            entities=["Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919", "Task/1"],
        )
    assert event.entities == ("Task/1",)


def test_the_cli_handler_reports_the_chain(
    session_factory: sessionmaker[Session],
    settings: Settings,
    tamper: Tamper,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from referral_service.audit.cli import verify_command

    record_only(session_factory, 4)  # queued: the command chains them first
    assert verify_command(settings) == {
        "ok": True,
        "checked": 4,
        "first_bad_seq": None,
        "reason": None,
        "queued": 0,
        "oldest_queued_s": None,
    }
    err = capsys.readouterr().err
    assert "chained 4 queued events first" in err
    assert "4 of 4 rows checked" in err
    tamper("UPDATE audit_event SET kind = 'search' WHERE seq = 2")
    broken = verify_command(settings)
    assert (broken["ok"], broken["first_bad_seq"]) == (False, 2)
    record_only(session_factory, 1)
    tamper("UPDATE audit_event SET kind = 'read' WHERE seq = 2")
    unsealed = verify_command(settings, seal_first=False)
    assert (unsealed["ok"], unsealed["checked"], unsealed["queued"]) == (True, 4, 1)
    assert isinstance(unsealed["oldest_queued_s"], float)


def count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def refused_referral(factory: sessionmaker[Session], settings: Settings) -> None:
    with factory.begin() as session:
        ctx = Context(session, a_principal("practice-1"), settings)
        service.record_consent_decision(
            ctx,
            permitted=False,
            flow="referral",
            patient_id="patient-1",
            consents=["Consent/c-1"],
            reason="no active Consent",
        )
        raise RuntimeError("422: the referral needs a Consent")


def test_a_consent_denial_is_kept_when_the_intake_is_refused(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with pytest.raises(RuntimeError):
        refused_referral(session_factory, settings)
    with session_factory() as session:
        row = session.scalars(select(AuditEvent)).one()
    assert (row.kind, row.action, row.outcome, row.purpose) == ("consent-decision", "E", 4, "TREAT")
    assert (row.tenant_org_id, row.patient_id, row.entities) == (
        "practice-1",
        "patient-1",
        "Consent/c-1",
    )
    assert row.detail == "deny referral: no active Consent"
