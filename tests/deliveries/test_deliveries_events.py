"""What happens in SPIS becomes event delivery rows, in the transaction that makes it happen
(deliveries/events.py): numbered per subscription, only for subscribers that may read the focus,
only when their filters match, never for a change that was rolled back."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters import task as fhir_task
from referral_service.config import Settings
from referral_service.deliveries import event_repository
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Payload,
    Subscription,
    SubscriptionStatus,
)
from referral_service.deliveries.topics import (
    ROUTED,
    SHARED_BACK,
    SLA_REMINDER,
    TASK,
    Filter,
    Topic,
    encode_filters,
)
from referral_service.kit import changes
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.organisations.models import OrgKind
from referral_service.routing import service as routing
from referral_service.routing import sla
from referral_service.store import service as resources
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.routing import add_timebank, route_now, swemwbs
from tests.fixtures.systems import TestSystem, bearer
from tests.ledger.conftest import add_member, enrol, exchange

Event = tuple[int, str, str]  # (event number, focus type, focus id)


def subscribe(
    session_factory: sessionmaker[Session],
    subscriber: TestSystem,
    topic: Topic,
    *filters: Filter,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    **columns: Any,
) -> str:
    """A Subscription row as the Subscription API leaves it (the API is not needed here)."""
    sid = new_id()
    with session_factory() as session, session.begin():
        session.add(
            Subscription(
                id=sid,
                org_id=subscriber.org_id,
                client_id=subscriber.client_id,
                status=status,
                topic=topic.url,
                filters=encode_filters(list(filters)),
                payload=Payload.ID_ONLY,
                content_type="application/jose",
                endpoint="https://receiver.example/hook",
                reason="tests",
                **columns,
            )
        )
    return sid


def events(session_factory: sessionmaker[Session], sid: str) -> list[Event]:
    """The subscription's event rows in send order (seq), after checking what every one holds."""
    with session_factory() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.subscription_id == sid).order_by(Delivery.seq)
        ).all()
        subscription = session.get_one(Subscription, sid)
    for row in rows:
        assert row.kind is DeliveryKind.EVENT
        assert row.status is DeliveryStatus.PENDING
        assert row.org_id == subscription.org_id
        assert row.attempts == 0
    numbers = [row.event_number for row in rows]
    assert subscription.events_since_start == len(rows)
    assert numbers == list(range(1, len(rows) + 1))  # 1, 2, 3 … in seq order, no gaps
    return [(int(row.event_number or 0), str(row.focus_type), str(row.focus_id)) for row in rows]


def foci(session_factory: sessionmaker[Session], sid: str) -> list[str]:
    return [f"{rtype}/{rid}" for _, rtype, rid in events(session_factory, sid)]


def answer(client: TestClient, system: TestSystem, task_id: str, **changes: Any) -> None:
    headers = {**bearer(client, system), **FHIR_JSON}
    task = client.get(f"/fhir/Task/{task_id}", headers=headers).json()
    response = client.put(f"/fhir/Task/{task_id}", json={**task, **changes}, headers=headers)
    assert response.status_code == 200, response.text


# --- TASK ------------------------------------------------------------------------------------------


def test_a_practice_hears_of_each_task_it_may_read_created_and_each_status_change(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
) -> None:
    mine = subscribe(session_factory, practice, TASK)
    theirs = subscribe(session_factory, practice_b, TASK)
    broker = subscribe(session_factory, timebank_a, TASK)

    referral = make_referral(client, practice_headers, practice.org_id)
    child = route_now(session_factory, settings, referral.task_id)  # businessStatus only
    assert child is not None
    answer(client, timebank_a, child, status="accepted")  # the referral Task follows
    cancelled = {"status": "cancelled", "statusReason": {"text": "Patient moved away"}}
    answer(client, practice, referral.task_id, **cancelled)  # the child Task is cancelled too

    assert foci(session_factory, mine) == [
        referral.task,  # created
        f"Task/{child}",  # routed: the practice's own record, shared with the time bank
        f"Task/{child}",  # accepted by the time bank ...
        referral.task,  # ... and the referral Task followed, in the same commit
        referral.task,  # cancelled by the practice ...
        f"Task/{child}",  # ... which cancelled the child Task
    ]
    # the time bank reads its own Task only, never the practice's referral Task
    assert foci(session_factory, broker) == [f"Task/{child}"] * 3
    assert events(session_factory, theirs) == []


def test_a_draft_is_no_event_until_it_is_requested(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    referral = make_referral(client, practice_headers, practice.org_id)
    mine = subscribe(session_factory, practice, TASK)
    with session_factory() as session, session.begin():
        ctx = routing.system_context(session, settings)
        draft = resources.as_dict(resources.load(ctx, "Task", referral.task_id))
        draft = {k: v for k, v in draft.items() if k not in ("id", "meta")}
        made = resources.create(ctx, "Task", {**draft, "status": "draft"}, tenant=practice.org_id)
    assert events(session_factory, mine) == []
    answer(client, practice, made.id, status="requested")
    assert foci(session_factory, mine) == [f"Task/{made.id}"]


def test_filters_match_as_a_search_would(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
) -> None:
    timebank_ref = f"Organization/{timebank_a.org_id}"
    accepted = subscribe(session_factory, practice, TASK, Filter("Task", "status", "accepted"))
    either = subscribe(
        session_factory, practice, TASK, Filter("Task", "status", "cancelled,accepted")
    )
    routed = subscribe(session_factory, practice, TASK, Filter("Task", "owner", timebank_ref))
    absolute = subscribe(
        session_factory,
        practice,
        TASK,
        Filter("Task", "owner", f"{settings.fhir_base_url}/{timebank_ref}"),
    )
    referral_only = subscribe(
        session_factory, practice, TASK, Filter("Task", "owner", "Organization/spis")
    )
    both = subscribe(
        session_factory,
        practice,
        TASK,
        Filter("Task", "owner", timebank_ref),
        Filter("Task", "status", "accepted"),
    )
    by_id = subscribe(session_factory, practice, TASK, Filter("Task", "_id", "not-this-one"))
    bare = subscribe(session_factory, practice, TASK, Filter("Task", "owner", timebank_a.org_id))
    other_type = subscribe(session_factory, practice, TASK, Filter("Procedure", "code", "x"))

    referral = make_referral(client, practice_headers, practice.org_id)
    child = route_now(session_factory, settings, referral.task_id)
    answer(client, timebank_a, str(child), status="accepted")

    child_ref, task_ref = f"Task/{child}", referral.task
    assert foci(session_factory, accepted) == [child_ref, task_ref]
    assert foci(session_factory, either) == [child_ref, task_ref]
    assert foci(session_factory, routed) == [child_ref, child_ref]
    assert foci(session_factory, absolute) == [child_ref, child_ref]
    assert foci(session_factory, referral_only) == [task_ref, task_ref]
    assert foci(session_factory, both) == [child_ref]
    assert foci(session_factory, by_id) == []
    assert foci(session_factory, bare) == []  # a bare id names nothing, as in a search
    # a filter on another resource type leaves Tasks alone
    assert foci(session_factory, other_type) == [task_ref, child_ref, child_ref, task_ref]


def test_a_subscription_that_is_off_or_ended_hears_nothing_requested_and_error_do(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    off = subscribe(session_factory, practice, TASK, status=SubscriptionStatus.OFF)
    ended = subscribe(session_factory, practice, TASK, end=utcnow() - timedelta(minutes=1))
    ending = subscribe(session_factory, practice, TASK, end=utcnow() + timedelta(days=1))
    requested = subscribe(session_factory, practice, TASK, status=SubscriptionStatus.REQUESTED)
    error = subscribe(session_factory, practice, TASK, status=SubscriptionStatus.ERROR)

    referral = make_referral(client, practice_headers, practice.org_id)

    assert events(session_factory, off) == []
    assert events(session_factory, ended) == []
    for sid in (ending, requested, error):
        assert foci(session_factory, sid) == [referral.task]


# --- ROUTED ----------------------------------------------------------------------------------------


def test_a_time_bank_hears_of_a_referral_routed_to_it_and_not_of_one_routed_elsewhere(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    first = add_timebank(session_factory, "Catford Time Bank", ["SE6"], ["befriending"], 3)
    second = add_timebank(session_factory, "Lewisham Time Bank", ["SE6"], ["befriending"], 2)
    first_hears = subscribe(session_factory, first, ROUTED)
    second_hears = subscribe(session_factory, second, ROUTED)
    practice_hears = subscribe(session_factory, practice, ROUTED)  # not a time bank: never

    referral = make_referral(client, practice_headers, practice.org_id)
    offered = route_now(session_factory, settings, referral.task_id)  # most room first
    assert foci(session_factory, first_hears) == [f"Task/{offered}"]
    assert events(session_factory, second_hears) == []

    answer(client, first, str(offered), status="rejected", statusReason={"text": "Full"})
    assert events(session_factory, second_hears) == []  # declined: routed by the next job
    again = route_now(session_factory, settings, referral.task_id)

    assert foci(session_factory, first_hears) == [f"Task/{offered}"]  # its decline is no news
    assert foci(session_factory, second_hears) == [f"Task/{again}"]
    assert events(session_factory, practice_hears) == []


# --- SHARED_BACK -----------------------------------------------------------------------------------


@pytest.fixture
def accepted_child(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> dict[str, Any]:
    child_id = route_now(session_factory, settings, referral.task_id)
    answer(client, timebank_a, str(child_id), status="accepted")
    headers = bearer(client, timebank_a)
    return dict(client.get(f"/fhir/Task/{child_id}", headers=headers).json())


def change_consent(
    client: TestClient, headers: dict[str, str], referral: Referral, **changes: Any
) -> None:
    consent = client.get(f"/fhir/{referral.consent}", headers=headers).json()
    consent.update(changes)
    response = client.put(
        f"/fhir/{referral.consent}", json=consent, headers={**headers, **FHIR_JSON}
    )
    assert response.status_code == 200, response.text


def scores_found(client: TestClient, headers: dict[str, str], referral: Referral) -> list[str]:
    url = f"/fhir/Observation?based-on={referral.service_request}&_sort=_lastUpdated"
    return [
        f"Observation/{e['resource']['id']}"
        for e in client.get(url, headers=headers).json()["entry"]
    ]


def test_shared_back_while_consent_allows_and_when_it_allows_again(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_b: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    accepted_child: dict[str, Any],
) -> None:
    mine = subscribe(session_factory, practice, SHARED_BACK)
    theirs = subscribe(session_factory, practice_b, SHARED_BACK)
    broker = {**bearer(client, timebank_a), **FHIR_JSON}
    filler = accepted_child["focus"]["reference"]

    first = swemwbs(referral.patient, filler, [3] * 7, "2026-02-01T10:00:00Z")
    assert client.post("/fhir/QuestionnaireResponse", json=first, headers=broker).status_code == 201
    shared = scores_found(client, practice_headers, referral)
    assert shared
    assert sorted(foci(session_factory, mine)) == sorted(shared)  # not the response itself

    consent = client.get(f"/fhir/{referral.consent}", headers=practice_headers).json()
    referral_only = {**consent["provision"], "provision": []}
    change_consent(client, practice_headers, referral, provision=referral_only)
    later = swemwbs(referral.patient, filler, [4] * 7, "2026-03-01T10:00:00Z")
    assert client.post("/fhir/QuestionnaireResponse", json=later, headers=broker).status_code == 201
    assert sorted(foci(session_factory, mine)) == sorted(shared)  # withheld: no event

    change_consent(client, practice_headers, referral, provision=consent["provision"])
    everything = scores_found(client, practice_headers, referral)
    assert len(everything) == 2 * len(shared)
    # granted again: each is readable again, so each is news again
    assert sorted(foci(session_factory, mine)[: len(shared)]) == sorted(shared)
    assert sorted(foci(session_factory, mine)[len(shared) :]) == sorted(everything)
    assert events(session_factory, theirs) == []


def test_an_exchange_shares_back_its_procedure_and_hours_and_filters_narrow_by_type(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    accepted_child: dict[str, Any],
) -> None:
    everything = subscribe(session_factory, practice, SHARED_BACK)
    procedures = subscribe(
        session_factory,
        practice,
        SHARED_BACK,
        Filter("Procedure", "based-on", referral.service_request),
        Filter("Observation", "based-on", "ServiceRequest/another"),
    )
    headers = bearer(client, timebank_a)
    member = enrol(client, headers, timebank_a, accepted_child["id"]).json()["member"]["id"]
    helper = add_member(client, headers, timebank_a, alias="Helper")
    assert exchange(client, headers, timebank_a, helper, member).status_code == 201

    url = f"/fhir/Procedure?based-on={referral.service_request}"
    [procedure] = client.get(url, headers=practice_headers).json()["entry"]
    procedure_ref = f"Procedure/{procedure['resource']['id']}"
    heard = foci(session_factory, everything)
    assert procedure_ref in heard
    assert {ref.split("/")[0] for ref in heard} == {"Procedure", "Observation"}
    assert sorted(heard) == sorted(
        [procedure_ref, *scores_found(client, practice_headers, referral)]
    )  # the enrolment and the hours, both Observations based on the referral
    assert foci(session_factory, procedures) == [procedure_ref]


def test_no_share_back_no_event(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
    referral: Referral,
    accepted_child: dict[str, Any],
) -> None:
    consent = client.get(f"/fhir/{referral.consent}", headers=practice_headers).json()
    change_consent(
        client, practice_headers, referral, provision={**consent["provision"], "provision": []}
    )
    mine = subscribe(session_factory, practice, SHARED_BACK)
    broker = {**bearer(client, timebank_a), **FHIR_JSON}
    qr = swemwbs(
        referral.patient, accepted_child["focus"]["reference"], [3] * 7, "2026-02-01T10:00:00Z"
    )
    assert client.post("/fhir/QuestionnaireResponse", json=qr, headers=broker).status_code == 201
    headers = bearer(client, timebank_a)
    member = enrol(client, headers, timebank_a, accepted_child["id"]).json()["member"]["id"]
    helper = add_member(client, headers, timebank_a, alias="Helper")
    assert exchange(client, headers, timebank_a, helper, member).status_code == 201

    assert scores_found(client, practice_headers, referral) == []
    assert events(session_factory, mine) == []


# --- SLA_REMINDER ----------------------------------------------------------------------------------

AS_OF = "2099-01-12T12:00:00+00:00"  # a Monday; a Task authored on Friday 2nd is past its SLA
SILENT = "2099-01-02T09:00:00Z"


def test_the_sweep_marking_a_task_reminder_due_is_an_event_once(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank_a: TestSystem,
) -> None:
    referral = make_referral(client, practice_headers, practice.org_id)
    child = str(route_now(session_factory, settings, referral.task_id))
    with session_factory() as session, session.begin():
        ctx = routing.system_context(session, settings)
        row = resources.load(ctx, "Task", child, for_update=True)
        resources.update(ctx, row, {**resources.as_dict(row), "authoredOn": SILENT})
    broker = subscribe(session_factory, timebank_a, SLA_REMINDER)
    gp = subscribe(session_factory, practice, SLA_REMINDER)
    gp_task = subscribe(session_factory, practice, TASK)

    for _ in range(2):  # the second sweep finds the Task marked already
        with session_factory() as session, session.begin():
            sla.sweep(session, settings, as_of=AS_OF)

    marked = resources.as_dict(_load(session_factory, settings, child))
    assert fhir_task.REMINDER_DUE in fhir_task.business_status_codes(marked)
    assert foci(session_factory, broker) == [f"Task/{child}"]
    assert foci(session_factory, gp) == [f"Task/{child}"]
    assert events(session_factory, gp_task) == []  # the status did not change


def _load(session_factory: sessionmaker[Session], settings: Settings, task_id: str) -> Any:
    with session_factory() as session:
        return resources.load(routing.system_context(session, settings), "Task", task_id)


# --- what is not an event --------------------------------------------------------------------------


def cancel(session: Session, settings: Settings, task_id: str) -> None:
    ctx = routing.system_context(session, settings)
    row = resources.load(ctx, "Task", task_id, for_update=True)
    resources.update(ctx, row, fhir_task.cancelled(resources.as_dict(row), "tests"))


def test_a_change_in_a_savepoint_that_rolled_back_is_no_event(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    mine = subscribe(session_factory, practice, TASK)
    second = make_referral(client, practice_headers, practice.org_id, referral_id="REF-0002")

    with session_factory() as session, session.begin():
        failed = session.begin_nested()  # a batch entry that fails, say
        cancel(session, settings, referral.task_id)
        failed.rollback()
        with session.begin_nested():
            cancel(session, settings, second.task_id)  # this one stands
        assert [c.rid for c in changes.pending(session)] == [second.task_id]

    assert foci(session_factory, mine) == [second.task, second.task]
    assert _load(session_factory, settings, referral.task_id).version_id == 1


def test_a_change_whose_version_is_not_stored_is_no_event(
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    referral: Referral,
) -> None:
    """However a change outlived its version (the savepoint bookkeeping above is the usual
    way), the version is looked for before an event is numbered."""
    mine = subscribe(session_factory, practice, TASK)
    with session_factory() as session, session.begin():
        row = _load(session_factory, settings, referral.task_id)
        task = {**resources.as_dict(row), "status": "cancelled"}
        changes.record(
            session,
            changes.Change(
                "Task",
                referral.task_id,
                row.version_id + 1,
                changes.What.UPDATED,
                status="cancelled",
                previous_status="requested",
                body=orjson.dumps(task),
            ),
        )
    assert events(session_factory, mine) == []


def test_a_rolled_back_transaction_leaves_nothing(
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    referral: Referral,
) -> None:
    mine = subscribe(session_factory, practice, TASK)
    with session_factory() as session:
        cancel(session, settings, referral.task_id)
        session.rollback()
        assert changes.pending(session) == []
        session.commit()
    assert events(session_factory, mine) == []


@contextmanager
def subscription_queries(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "subscription" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_cheap_when_nobody_listens(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    engine = session_factory.kw["bind"]
    off = subscribe(session_factory, practice, TASK, status=SubscriptionStatus.OFF)
    with subscription_queries(engine) as seen, session_factory() as session, session.begin():
        ctx = routing.system_context(session, settings)
        row = resources.load(ctx, "Patient", referral.patient.partition("/")[2], for_update=True)
        resources.update(ctx, row, resources.as_dict(row))  # a change, but no topic's
        row = resources.load(ctx, "Task", referral.task_id, for_update=True)
        task = resources.as_dict(row)
        resources.update(ctx, row, {**task, "note": [{"text": "no status change"}]})
    assert seen == []  # no query at all

    with subscription_queries(engine) as seen, session_factory() as session, session.begin():
        cancel(session, settings, referral.task_id)
    assert len(seen) == 1  # one look for listeners, none found: done
    assert events(session_factory, off) == []


def test_concurrent_events_on_one_subscription_get_consecutive_numbers(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_headers: dict[str, str],
) -> None:
    """Two sessions, each in its own thread, both read the subscription (0 events so far) before
    either writes; each then changes a Task and commits. The second to commit must number its
    event from what the first left, not from what it read."""
    referrals = [
        make_referral(client, practice_headers, practice.org_id, referral_id=f"REF-{n}")
        for n in range(2)
    ]
    mine = subscribe(session_factory, practice, TASK)
    both_read = threading.Barrier(len(referrals))
    failures: list[BaseException] = []

    def change(referral: Referral) -> None:
        try:
            with session_factory() as session, session.begin():
                assert session.get_one(Subscription, mine).events_since_start == 0
                both_read.wait()
                cancel(session, settings, referral.task_id)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=change, args=(r,)) for r in referrals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    numbered = events(session_factory, mine)  # 1, 2 in seq order, events_since_start 2
    assert sorted(focus for _, _, focus in numbered) == sorted(r.task_id for r in referrals)


def test_every_process_that_writes_has_the_processor(pg_url: str) -> None:
    """In a fresh interpreter that never imported deliveries (nor audit, outcomes or jobs, whose
    modules register session listeners of their own): the first change recorded loads the `hooks`
    modules, so the processor runs for its commit."""
    script = textwrap.dedent(
        f"""
        import sys
        from sqlalchemy import create_engine
        from sqlalchemy.orm import Session
        from referral_service.kit import changes
        for name in ("deliveries.events", "audit.pending", "outcomes.triggers", "jobs.service"):
            assert "referral_service." + name not in sys.modules, name
        with Session(create_engine({pg_url!r})) as session, session.begin():
            changes.record(session, changes.Change("Patient", "p", 1, changes.What.UPDATED))
        from referral_service.deliveries import events
        print(changes.registered(events.notify))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], check=True, capture_output=True, text=True, timeout=120
    )
    assert out.stdout.split() == ["True"], out.stderr


def test_listening_names_every_topic_asked_about_however_many(
    session_factory: sessionmaker[Session], practice: TestSystem, timebank_a: TestSystem
) -> None:
    """The built-once statement asks about a few topics at a time: asked about more, it still
    finds each listening subscription once, in id order, with its subscriber's kind."""
    task = subscribe(session_factory, practice, TASK)
    shared = subscribe(session_factory, practice, SHARED_BACK)
    routed = subscribe(session_factory, timebank_a, ROUTED)
    subscribe(session_factory, practice, TASK, status=SubscriptionStatus.OFF)
    topics = {TASK.url, SHARED_BACK.url, ROUTED.url, SLA_REMINDER.url, "urn:a", "urn:b"}
    with session_factory() as session:
        found = event_repository.listening(session, topics, utcnow())
        assert [(s.id, s.kind) for s in found] == sorted(
            [(task, OrgKind.PRACTICE), (shared, OrgKind.PRACTICE), (routed, OrgKind.TIMEBANK)]
        )
        only = event_repository.listening(session, {ROUTED.url}, utcnow())
        assert [(s.id, s.topic, s.org_id) for s in only] == [
            (routed, ROUTED.url, timebank_a.org_id)
        ]
