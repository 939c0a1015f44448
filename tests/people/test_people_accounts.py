"""Adding, listing and disabling people; set-up links: once only, expiring, replaced by a newer
one; the password policy."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.errors import BusinessRuleViolation, Invalid, NotFound
from referral_service.people import service
from referral_service.people.models import Person, Role, SetupLink, WebSession
from tests.people.conftest import PASSWORD, FakeClock, Orgs, People, audit_rows, token_of


def person_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(Person)) or 0


@pytest.mark.parametrize(
    ("role", "org", "says"),
    [
        (
            Role.BROKER,
            "practice",
            "The broker role belongs to a time bank; this organisation is a GP practice",
        ),
        (
            Role.PRACTICE,
            "timebank",
            "The practice role belongs to a GP practice; this organisation is a time bank",
        ),
        (
            Role.ANALYST,
            "practice",
            "The analyst role belongs to a health board; this organisation is a GP practice",
        ),
    ],
)
def test_a_role_needs_its_kind_of_organisation(
    people: People, orgs: Orgs, role: Role, org: str, says: str
) -> None:
    with pytest.raises(Invalid) as refused:
        people.add("ann@example.org", role, getattr(orgs, org))
    assert refused.value.message == says
    assert refused.value.expression == ["role"]
    assert person_count(people.factory) == 0


def test_a_new_person_gets_a_link_that_expires_in_a_day(
    people: People, fake_clock: FakeClock
) -> None:
    added = people.run(
        lambda s: service.add_person(
            s,
            people.settings,
            org_id=people.orgs.practice,
            email=" Ann@Example.ORG ",
            role=Role.PRACTICE,
        )
    )
    token = token_of(added.setup_url)
    assert added.setup_url == f"http://testserver/setup/{token}"
    assert len(token) >= 43
    assert added.expires_at == fake_clock.now.replace(day=29)
    person = people.person("ann@example.org")
    assert (person.email, person.role, person.org_id) == (
        "ann@example.org",
        Role.PRACTICE,
        people.orgs.practice,
    )
    assert person.password_hash is None
    assert person.totp_secret is None
    assert "ann" not in repr(person).lower()
    with people.factory() as session:
        link = session.scalars(select(SetupLink)).one()
    assert link.id == hashlib.sha256(token.encode()).hexdigest()  # the token is stored nowhere
    [event] = audit_rows(people.factory, "person-account")
    assert (event.action, event.outcome, event.detail) == ("C", 0, "added as practice")
    assert event.entities == f"Person/{person.id} Organization/{people.orgs.practice}"
    assert "ann" not in (event.detail or "") + event.entities


def test_an_email_address_is_unique_whatever_its_case(people: People) -> None:
    people.add("ann@example.org")
    with pytest.raises(BusinessRuleViolation) as refused:
        people.add("ANN@Example.org", Role.PRACTICE)
    assert refused.value.status == 409
    assert refused.value.message == "A person with this email address already exists"
    assert person_count(people.factory) == 1


@pytest.mark.parametrize("email", ["ann", "ann@", "@example.org", "ann@example", "a b@x.org", ""])
def test_a_malformed_email_address_is_refused(people: People, email: str) -> None:
    with pytest.raises(Invalid) as refused:
        people.add(email)
    assert refused.value.message == "The email address is not well-formed"
    assert person_count(people.factory) == 0


def test_an_unknown_organisation_is_refused(people: People) -> None:
    with pytest.raises(NotFound):
        people.add("ann@example.org", Role.BROKER, "no-such-org")


def test_people_are_listed_by_organisation(people: People, fake_clock: FakeClock) -> None:
    people.add("ann@example.org", Role.BROKER)
    fake_clock.advance(1)  # listed in the order they were added
    people.add("bob@example.org", Role.PRACTICE)
    everyone = people.run(lambda s: [p.email for p in service.people(s)])
    brokers = people.run(lambda s: [p.email for p in service.people(s, people.orgs.timebank)])
    assert (everyone, brokers) == (["ann@example.org", "bob@example.org"], ["ann@example.org"])


# -- set-up links ---------------------------------------------------------------------------------


def test_a_set_up_link_works_once(people: People) -> None:
    token = people.add("ann@example.org")
    person = people.run(lambda s: service.setup_link_person(s, token))
    assert person.email == "ann@example.org"
    started = people.run(lambda s: service.complete_setup(s, people.settings, token, PASSWORD))
    assert started.next_step == "totp-setup"  # a broker sees person-level data
    assert not started.web_session.second_factor_done
    assert people.person("ann@example.org").password_hash.startswith("$argon2id$")  # type: ignore[union-attr]

    for attempt in (
        lambda s: service.setup_link_person(s, token),
        lambda s: service.complete_setup(s, people.settings, token, "another long password"),
    ):
        with pytest.raises(service.SetupLinkInvalid) as refused:
            people.run(attempt)
        assert refused.value.status == 410
        assert refused.value.message == (
            "This set-up link has already been used: ask your administrator for a new link"
        )
    [event] = audit_rows(people.factory, "sign-in")
    assert (event.outcome, event.detail) == (0, "set-up link used; second factor to enrol")


def test_an_expired_set_up_link_is_refused(people: People, fake_clock: FakeClock) -> None:
    token = people.add("ann@example.org")
    fake_clock.advance(24 * 3600 - 1)
    people.run(lambda s: service.setup_link_person(s, token))  # still good a second before
    fake_clock.advance(1)
    with pytest.raises(service.SetupLinkInvalid) as refused:
        people.run(lambda s: service.complete_setup(s, people.settings, token, PASSWORD))
    assert refused.value.status == 410
    assert refused.value.message == (
        "This set-up link has expired: ask your administrator for a new link"
    )
    assert people.person("ann@example.org").password_hash is None


def test_an_unknown_set_up_link_is_not_found(people: People) -> None:
    for token in ("not-a-token", "x" * 10_000, ""):
        with pytest.raises(service.SetupLinkInvalid) as refused:
            people.run(lambda s, t=token: service.setup_link_person(s, t))  # type: ignore[misc]
        assert refused.value.status == 404
        assert "ask your administrator for a new link" in refused.value.message


def test_a_reissued_link_replaces_the_older_one(people: People) -> None:
    first = people.add("ann@example.org")
    second = people.run(lambda s: service.new_setup_link(s, people.settings, "Ann@example.org"))
    with pytest.raises(service.SetupLinkInvalid) as refused:
        people.run(lambda s: service.setup_link_person(s, first))
    assert refused.value.message == (
        "This set-up link has been replaced by a newer one or withdrawn: ask your administrator "
        "for a new link"
    )
    started = people.run(
        lambda s: service.complete_setup(s, people.settings, token_of(second), PASSWORD)
    )
    assert started.person.email == "ann@example.org"


def test_a_reissued_link_resets_password_and_second_factor_and_unlocks(
    people: People, fake_clock: FakeClock
) -> None:
    started = people.set_up("ann@example.org")
    people.enrol(started, fake_clock.now)
    for _ in range(people.settings.sign_in_lockout_threshold):
        with pytest.raises((service.SignInRefused, service.AccountLocked)):
            people.sign_in("ann@example.org", "wrong password!!")
    assert people.person("ann@example.org").locked_until is not None

    url = people.run(lambda s: service.new_setup_link(s, people.settings, "ann@example.org"))
    person = people.person("ann@example.org")
    assert (person.password_hash, person.totp_secret, person.totp_confirmed_at) == (
        None,
        None,
        None,
    )
    assert (person.failed_sign_ins, person.locked_until) == (0, None)
    # The old password no longer signs in: it could otherwise enrol a second factor of its own.
    with pytest.raises(service.SignInRefused):
        people.sign_in("ann@example.org")
    again = people.run(
        lambda s: service.complete_setup(s, people.settings, token_of(url), PASSWORD + "!")
    )
    assert again.next_step == "totp-setup"


def test_no_link_for_a_disabled_person(people: People) -> None:
    token = people.add("ann@example.org")
    people.run(lambda s: service.disable(s, "ann@example.org"))
    with pytest.raises(service.SetupLinkInvalid) as refused:
        people.run(lambda s: service.setup_link_person(s, token))
    assert refused.value.status == 410
    with pytest.raises(BusinessRuleViolation):
        people.run(lambda s: service.new_setup_link(s, people.settings, "ann@example.org"))


@pytest.mark.parametrize(
    ("password", "says"),
    [
        ("short pass", "The password must be at least 12 characters long"),
        ("x" * 257, "The password must be at most 256 characters long"),
        ("my name is ANN.SMITH ok", "The password must not contain your email address"),
    ],
)
def test_the_password_policy(people: People, password: str, says: str) -> None:
    token = people.add("ann.smith@example.org")
    with pytest.raises(Invalid) as refused:
        people.run(lambda s: service.complete_setup(s, people.settings, token, password))
    assert refused.value.message.startswith(says)
    assert refused.value.expression == ["password"]
    assert password not in refused.value.message
    people.run(lambda s: service.setup_link_person(s, token))  # the link is still good
    assert people.person("ann.smith@example.org").password_hash is None


# -- disabling ------------------------------------------------------------------------------------


def test_disabling_ends_every_session_and_refuses_sign_in(people: People) -> None:
    analyst = people.set_up("ann@example.org", Role.ANALYST)
    other = people.sign_in("ann@example.org")
    assert people.current(analyst.token) is not None

    disabled = people.run(lambda s: service.disable(s, "ANN@example.org"))
    assert (disabled.active, disabled.disabled_at is not None) == (False, True)
    assert people.current(analyst.token) is None
    assert people.current(other.token) is None
    with people.factory() as session:
        ended = session.scalars(select(WebSession.ended_at)).all()
    assert len(ended) == 2
    assert all(ended)
    with pytest.raises(service.SignInRefused):
        people.sign_in("ann@example.org")
    events = audit_rows(people.factory, "person-account")
    assert [e.detail for e in events] == ["added as analyst", "disabled"]


def test_disabling_an_unknown_person_is_not_found(people: People) -> None:
    with pytest.raises(NotFound) as refused:
        people.run(lambda s: service.disable(s, "nobody@example.org"))
    assert "nobody" not in refused.value.message


# -- a password set directly, for development (the demo's sign-ins) ------------------------------


def test_a_development_password_replaces_the_set_up_link_and_works_at_once(
    people: People,
) -> None:
    token = people.add("ann@example.org", Role.PRACTICE)
    earlier = people.set_up("bob@example.org")  # a session of someone else: untouched
    new_password = "demo-0123456789abcdef"

    person = people.run(
        lambda s: service.set_password_for_development(
            s, people.settings, "ANN@example.org", new_password
        )
    )

    assert person.email == "ann@example.org"
    started = people.sign_in("ann@example.org", new_password)
    assert started.next_step == "totp-setup"  # the second factor is still required here
    with pytest.raises(service.SetupLinkInvalid):  # the unused link stopped working
        people.run(lambda s: service.setup_link_person(s, token))
    assert people.current(earlier.token) is not None
    events = audit_rows(people.factory, "person-account")
    assert [e.detail for e in events][-1] == "password set for development"
    assert new_password not in "".join(e.detail or "" for e in events)

    # Again (a second `spis demo`): the same password still works, earlier sessions end.
    people.run(
        lambda s: service.set_password_for_development(
            s, people.settings, "ann@example.org", new_password
        )
    )
    assert people.current(started.token) is None
    assert people.sign_in("ann@example.org", new_password).person.email == "ann@example.org"


def test_a_development_password_is_refused_in_production(people: People) -> None:
    people.add("ann@example.org")
    production = people.settings.model_copy(update={"environment": "production"})

    with pytest.raises(BusinessRuleViolation) as refused:
        people.run(
            lambda s: service.set_password_for_development(
                s, production, "ann@example.org", "demo-0123456789abcdef"
            )
        )

    assert "set-up link" in refused.value.message
    assert people.person("ann@example.org").password_hash is None


def test_a_development_password_follows_the_password_policy(people: People) -> None:
    people.add("ann@example.org")
    with pytest.raises(Invalid) as refused:
        people.run(
            lambda s: service.set_password_for_development(
                s, people.settings, "ann@example.org", "short"
            )
        )
    assert refused.value.expression == ["password"]
    assert people.person("ann@example.org").password_hash is None
