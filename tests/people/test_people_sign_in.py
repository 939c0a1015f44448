"""Signing in with a password: one refusal for every reason, lock-out with back-off, and an audit
event for every attempt."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from referral_service.db import unit_of_work
from referral_service.people import service
from referral_service.people.models import Person, Role, WebSession
from tests.people.conftest import PASSWORD, FakeClock, People, audit_rows


def refusal(people: People, email: str, password: str) -> tuple[type[Exception], int, str]:
    with pytest.raises(service.SignInRefused) as refused:
        people.sign_in(email, password)
    return type(refused.value), refused.value.status, refused.value.message


def test_an_analyst_signs_in_with_a_password_alone(people: People, fake_clock: FakeClock) -> None:
    people.set_up("ann@example.org", Role.ANALYST)
    fake_clock.advance(60)
    started = people.sign_in("ANN@example.org ", PASSWORD)
    assert started.next_step == "done"
    assert started.web_session.second_factor_done
    signed = people.current(started.token)
    assert signed is not None
    assert signed.signed_in
    assert signed.person.last_sign_in_at == fake_clock.now
    principal = service.principal_of(signed.person)
    assert principal.client_id == f"person/{signed.person.id}"
    assert (principal.org_id, principal.org_kind.value) == (people.orgs.healthboard, "healthboard")
    assert principal.allows("MeasureReport", "r")
    assert not principal.allows("Patient", "r")


def test_unknown_email_and_wrong_password_are_refused_alike(people: People) -> None:
    people.set_up("ann@example.org", Role.ANALYST)
    people.add("bob@example.org")  # no password yet
    wrong = refusal(people, "ann@example.org", "not the password")
    assert wrong == (service.SignInRefused, 401, "Email or password is not right")
    assert refusal(people, "nobody@example.org", "not the password") == wrong
    assert refusal(people, "bob@example.org", "") == wrong
    people.run(lambda s: service.disable(s, "ann@example.org"))
    assert refusal(people, "ann@example.org", PASSWORD) == wrong  # disabled: the right password

    events = audit_rows(people.factory, "sign-in")[1:]  # after the set-up
    assert [(e.outcome, e.detail) for e in events] == [
        (4, "password refused"),
        (4, "password refused: no such account"),
        (4, "password refused"),
        (4, "password refused"),
    ]
    assert events[1].actor_client_id == "unknown"
    assert events[1].entities == ""
    for event in events:
        text = f"{event.detail} {event.entities} {event.actor_client_id}"
        assert "example.org" not in text
        assert "password" + "!" not in text
        assert event.purpose is None


def test_lock_out_backs_off_and_a_right_password_does_not_help(
    people: People, fake_clock: FakeClock
) -> None:
    people.set_up("ann@example.org", Role.ANALYST)
    threshold = people.settings.sign_in_lockout_threshold  # 5
    for _ in range(threshold - 1):
        refusal(people, "ann@example.org", "wrong password")
    with pytest.raises(service.AccountLocked) as locked:
        people.sign_in("ann@example.org", "wrong password")
    assert (locked.value.status, locked.value.retry_after_s) == (429, 60)
    assert locked.value.message == (
        "Too many failed attempts: sign-in is locked for this account. Try again in 60 seconds"
    )

    fake_clock.advance(30)
    with pytest.raises(service.AccountLocked) as still:
        people.sign_in("ann@example.org", PASSWORD)  # right, but locked: checked first
    assert still.value.retry_after_s == 30
    assert people.person("ann@example.org").failed_sign_ins == threshold  # not counted again

    fake_clock.advance(30)  # unlocked: the next failure doubles the wait
    with pytest.raises(service.AccountLocked) as doubled:
        people.sign_in("ann@example.org", "wrong again")
    assert doubled.value.retry_after_s == 120
    fake_clock.advance(120)
    with pytest.raises(service.AccountLocked) as again:
        people.sign_in("ann@example.org", "wrong again")
    assert again.value.retry_after_s == 240
    assert again.value.message.endswith("Try again in 4 minutes")

    fake_clock.advance(240)
    started = people.sign_in("ann@example.org", PASSWORD)
    assert started.next_step == "done"
    person = people.person("ann@example.org")
    assert (person.failed_sign_ins, person.locked_until) == (0, None)

    details = [e.detail for e in audit_rows(people.factory, "sign-in")]
    assert details[threshold : threshold + 4] == [
        "password refused; locked for 60 s",
        "refused: locked for 30 s",
        "password refused; locked for 120 s",
        "password refused; locked for 240 s",
    ]
    assert details[-1] == "password accepted; signed in"


def test_the_back_off_stops_at_its_maximum(people: People, fake_clock: FakeClock) -> None:
    people.set_up("ann@example.org", Role.ANALYST)
    waits = []
    for _ in range(12):
        try:
            people.sign_in("ann@example.org", "wrong password")
        except service.AccountLocked as locked:
            waits.append(locked.retry_after_s)
            fake_clock.advance(locked.retry_after_s)
        except service.SignInRefused:
            pass
    assert waits == [60, 120, 240, 480, 960, 1920, 3600, 3600]


def test_a_failure_counts_even_when_the_caller_rolls_back(people: People) -> None:
    """A page that lets the refusal reach its unit of work rolls the transaction back; the
    count and the audit event survive it."""
    people.set_up("ann@example.org", Role.ANALYST)
    for _ in range(people.settings.sign_in_lockout_threshold):
        with (
            pytest.raises((service.SignInRefused, service.AccountLocked)),
            unit_of_work(people.factory) as session,
        ):
            service.sign_in(session, people.settings, "ann@example.org", "wrong password")
    person = people.person("ann@example.org")
    assert person.failed_sign_ins == people.settings.sign_in_lockout_threshold
    assert person.locked_until is not None
    assert [e.outcome for e in audit_rows(people.factory, "sign-in")][1:] == [4] * 5


def test_a_failure_is_counted_once_when_the_caller_commits(people: People) -> None:
    people.set_up("ann@example.org", Role.ANALYST)
    with unit_of_work(people.factory) as session, pytest.raises(service.SignInRefused):
        service.sign_in(session, people.settings, "ann@example.org", "wrong password")
    assert people.person("ann@example.org").failed_sign_ins == 1


def test_every_sign_in_starts_a_new_session(people: People) -> None:
    first = people.set_up("ann@example.org", Role.ANALYST)
    second = people.sign_in("ann@example.org")
    third = people.sign_in("ann@example.org")
    tokens = {first.token, second.token, third.token}
    rows = {first.web_session.id, second.web_session.id, third.web_session.id}
    assert len(tokens) == len(rows) == 3
    assert all(len(t) >= 43 for t in tokens)
    with people.factory() as session:
        stored = set(session.scalars(select(WebSession.id)))
        csrf = set(session.scalars(select(WebSession.csrf_token)))
    assert stored == rows
    assert not tokens & stored
    assert len(csrf) == 3


def test_a_weaker_stored_hash_is_upgraded_on_sign_in(people: People) -> None:
    from argon2 import PasswordHasher

    people.set_up("ann@example.org", Role.ANALYST)
    weak = PasswordHasher(time_cost=1, memory_cost=8192).hash(PASSWORD)

    person_id = people.person("ann@example.org").id

    def weaken(session: Session) -> None:
        session.get_one(Person, person_id).password_hash = weak

    people.run(weaken)
    people.sign_in("ann@example.org")
    upgraded = people.person("ann@example.org").password_hash
    assert upgraded != weak
    assert upgraded is not None
    assert "m=65536" in upgraded


def test_guesses_sent_at_once_all_count(people: People) -> None:
    """A page that shows the refusal (and so commits) sees every earlier guess: each is checked
    with the person's row locked, so the guess that locks is seen by the next."""
    people.set_up("ann@example.org", Role.ANALYST)
    threshold = people.settings.sign_in_lockout_threshold
    barrier = threading.Barrier(threshold + 1)

    def guess(n: int) -> str:
        barrier.wait()
        with unit_of_work(people.factory) as session:
            try:
                service.sign_in(session, people.settings, "ann@example.org", f"guess {n:04d}!!")
            except service.AccountLocked:
                return "locked"
            except service.SignInRefused:
                return "refused"
        return "signed in"

    with ThreadPoolExecutor(threshold + 1) as pool:
        outcomes = sorted(pool.map(guess, range(threshold + 1)))
    assert outcomes == ["locked", "locked"] + ["refused"] * (threshold - 1)
    assert people.person("ann@example.org").failed_sign_ins == threshold
