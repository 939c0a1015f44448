"""Server-side sessions: idle and absolute expiry, sign-out, CSRF tokens."""

from __future__ import annotations

from sqlalchemy.orm import Session

from referral_service.people import service
from referral_service.people.models import Role, WebSession
from tests.people.conftest import FakeClock, People, audit_rows


def ended_at(people: People, started: service.Started) -> object:
    return people.run(lambda s: s.get_one(WebSession, started.web_session.id).ended_at)


def test_no_token_or_an_unknown_one_is_nobody(people: People) -> None:
    for token in (None, "", "made-up", "x" * 5000):
        assert people.current(token) is None


def test_a_session_expires_after_being_idle(people: People, fake_clock: FakeClock) -> None:
    started = people.set_up("ann@example.org", Role.ANALYST)
    idle = people.settings.web_idle_timeout_s  # 30 minutes
    for _ in range(3):  # each request keeps it alive
        fake_clock.advance(idle - 1)
        assert people.current(started.token) is not None
    seen = people.run(lambda s: s.get_one(WebSession, started.web_session.id).last_seen_at)
    assert seen == fake_clock.now
    fake_clock.advance(idle + 1)
    assert people.current(started.token) is None
    assert ended_at(people, started) == fake_clock.now  # ended, not just ignored
    fake_clock.advance(-idle)  # even if the clock went back, an ended session stays ended
    assert people.current(started.token) is None


def test_a_session_ends_twelve_hours_after_sign_in(people: People, fake_clock: FakeClock) -> None:
    started = people.set_up("ann@example.org", Role.ANALYST)
    for _ in range(24):  # busy all day: never idle
        fake_clock.advance(29 * 60)
        assert people.current(started.token) is not None
    fake_clock.advance(12 * 3600 - 24 * 29 * 60 + 1)
    assert people.current(started.token) is None


def test_signing_out_ends_the_session(people: People) -> None:
    started = people.set_up("ann@example.org", Role.ANALYST)
    other = people.sign_in("ann@example.org")
    people.run(lambda s: service.sign_out(s, started.token))
    assert people.current(started.token) is None
    assert people.current(other.token) is not None  # another browser stays signed in
    people.run(lambda s: service.sign_out(s, started.token))  # twice: nothing more happens
    people.run(lambda s: service.sign_out(s, "made-up"))
    [event] = audit_rows(people.factory, "sign-out")
    assert (event.action, event.outcome, event.detail) == ("E", 0, "signed out")
    assert event.entities == f"Person/{started.person.id}"
    assert event.actor_client_id == f"person/{started.person.id}"
    assert event.tenant_org_id == people.orgs.healthboard


def test_csrf_tokens_are_per_session(people: People) -> None:
    started = people.set_up("ann@example.org", Role.ANALYST)
    other = people.sign_in("ann@example.org")
    session = started.web_session
    assert service.csrf_matches(session, session.csrf_token)
    for wrong in (other.web_session.csrf_token, "", None, session.csrf_token[:-1]):
        assert not service.csrf_matches(session, wrong)


def test_ending_a_session_that_expired_needs_no_second_request(
    people: People, fake_clock: FakeClock
) -> None:
    """`current` ends an expired row in the caller's unit of work; nothing else writes."""
    started = people.set_up("ann@example.org", Role.ANALYST)
    fake_clock.advance(people.settings.web_idle_timeout_s + 1)

    def look(session: Session) -> None:
        assert service.current(session, people.settings, started.token) is None

    people.run(look)
    assert ended_at(people, started) is not None
