"""The TOTP second factor: enrolment on first sign-in, codes from a real authenticator
(pyotp), refusals, replay, lock-out, rotation of the session at each step, and the secret
sealed at rest."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from sqlalchemy import text

from referral_service.errors import BusinessRuleViolation
from referral_service.keys import service as keys
from referral_service.people import service
from referral_service.people.models import Person, Role
from tests.people.conftest import FakeClock, People, audit_rows


def confirm(people: People, started: service.Started, code: str) -> service.Started:
    return people.run(
        lambda s: service.confirm_second_factor(s, people.settings, started.token, code)
    )


def test_enrolment_on_first_sign_in_then_sign_in_with_a_code(
    people: People, fake_clock: FakeClock
) -> None:
    started = people.set_up("ann@example.org", Role.BROKER)
    assert started.next_step == "totp-setup"
    half = people.current(started.token)
    assert half is not None
    assert not half.signed_in

    secret, uri = people.run(
        lambda s: service.totp_provisioning(s, s.get_one(Person, started.person.id))
    )
    again, _ = people.run(
        lambda s: service.totp_provisioning(s, s.get_one(Person, started.person.id))
    )
    assert again == secret  # the same pending secret until it is confirmed
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "otpauth",
        "totp",
        "/SPIS:ann%40example.org",
    )
    assert parse_qs(parts.query) == {"secret": [secret], "issuer": ["SPIS"]}
    assert service.qr_svg(uri).startswith("<svg")

    done = confirm(people, started, pyotp.TOTP(secret).at(fake_clock.now))
    assert done.next_step == "done"
    assert done.web_session.second_factor_done
    person = people.person("ann@example.org")
    assert person.totp_secret == secret
    assert person.totp_pending_secret is None
    assert person.totp_confirmed_at == fake_clock.now

    fake_clock.advance(60)
    next_time = people.sign_in("ann@example.org")
    assert next_time.next_step == "totp"
    signed_in = confirm(people, next_time, pyotp.TOTP(secret).at(fake_clock.now))
    signed = people.current(signed_in.token)
    assert signed is not None
    assert signed.signed_in

    details = [e.detail for e in audit_rows(people.factory, "sign-in")]
    assert details == [
        "set-up link used; second factor to enrol",
        "second factor enrolled; signed in",
        "password accepted; second factor next",
        "second factor accepted; signed in",
    ]
    with pytest.raises(BusinessRuleViolation):
        people.run(lambda s: service.totp_provisioning(s, s.get_one(Person, person.id)))


def test_each_step_rotates_the_session(people: People, fake_clock: FakeClock) -> None:
    started = people.set_up("ann@example.org")
    _secret, done = people.enrol(started, fake_clock.now)
    assert done.token != started.token
    assert done.web_session.id != started.web_session.id
    assert done.web_session.csrf_token != started.web_session.csrf_token
    assert people.current(started.token) is None  # the pre-second-factor session is over
    assert people.current(done.token) is not None
    with pytest.raises(service.SessionEnded):
        confirm(people, started, "123456")


def test_a_wrong_code_is_refused_and_counts(people: People, fake_clock: FakeClock) -> None:
    started = people.set_up("ann@example.org")
    secret, _ = people.enrol(started, fake_clock.now)
    fake_clock.advance(90)
    half = people.sign_in("ann@example.org")
    right = pyotp.TOTP(secret).at(fake_clock.now)
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    for code in (wrong, "abcdef", "12345", ""):
        with pytest.raises(service.SecondFactorRefused) as refused:
            confirm(people, half, code)
        assert refused.value.status == 401
    assert people.person("ann@example.org").failed_sign_ins == 4
    with pytest.raises(service.AccountLocked):  # the fifth failure in a row locks
        confirm(people, half, wrong)
    with pytest.raises(service.AccountLocked):  # and the right code does not help meanwhile
        confirm(people, half, right)
    assert people.current(half.token) is not None  # the half session lives on, still half
    assert not people.current(half.token).signed_in  # type: ignore[union-attr]


def test_a_right_password_does_not_clear_failed_codes(
    people: People, fake_clock: FakeClock
) -> None:
    """Otherwise a password thief could guess codes forever, four at a time."""
    started = people.set_up("ann@example.org")
    people.enrol(started, fake_clock.now)
    for _ in range(4):
        fake_clock.advance(31)
        half = people.sign_in("ann@example.org")
        with pytest.raises(service.SecondFactorRefused):
            confirm(people, half, "000000")
    assert people.person("ann@example.org").failed_sign_ins == 4
    half = people.sign_in("ann@example.org")
    with pytest.raises(service.AccountLocked):
        confirm(people, half, "000000")


def test_a_code_is_accepted_once(people: People, fake_clock: FakeClock) -> None:
    started = people.set_up("ann@example.org")
    secret, _ = people.enrol(started, fake_clock.now)
    enrolment_code = pyotp.TOTP(secret).at(fake_clock.now)
    half = people.sign_in("ann@example.org")
    with pytest.raises(service.SecondFactorRefused):
        confirm(people, half, enrolment_code)  # same time-step: already used
    fake_clock.advance(30)
    with pytest.raises(service.SecondFactorRefused):
        confirm(people, half, enrolment_code)  # the step before now: valid window, but used
    done = confirm(people, half, pyotp.TOTP(secret).at(fake_clock.now))
    assert done.next_step == "done"


def test_codes_one_step_either_side_are_accepted(people: People, fake_clock: FakeClock) -> None:
    started = people.set_up("ann@example.org")
    secret, _ = people.enrol(started, fake_clock.now)
    totp = pyotp.TOTP(secret)
    fake_clock.advance(120)
    half = people.sign_in("ann@example.org")
    with pytest.raises(service.SecondFactorRefused):
        confirm(people, half, totp.at(fake_clock.now, counter_offset=-2))
    confirm(people, half, totp.at(fake_clock.now, counter_offset=-1))
    half = people.sign_in("ann@example.org")
    confirm(people, half, totp.at(fake_clock.now, counter_offset=1))


def test_an_analyst_or_optional_setting_needs_no_second_factor(people: People) -> None:
    assert people.set_up("ann@example.org", Role.ANALYST).next_step == "done"
    optional = people.settings.model_copy(update={"web_second_factor": "optional"})
    person = people.person("ann@example.org")
    assert not service.needs_second_factor(people.settings, person)
    token = people.add("bob@example.org", Role.PRACTICE)
    started = people.run(lambda s: service.complete_setup(s, optional, token, "a long password!"))
    assert started.next_step == "done"
    assert service.needs_second_factor(people.settings, started.person)
    assert not service.needs_second_factor(optional, started.person)


def test_the_secret_is_sealed_at_rest_and_rotates_with_the_keys(
    people: People, fake_clock: FakeClock
) -> None:
    started = people.set_up("ann@example.org")
    pending, _ = people.run(
        lambda s: service.totp_provisioning(s, s.get_one(Person, started.person.id))
    )
    people.add("bob@example.org")  # no secret at all: NULL
    with people.factory() as session:
        raw = session.execute(
            text("SELECT totp_pending_secret FROM person WHERE email = 'ann@example.org'")
        ).scalar_one()
    assert pending.encode() not in bytes(raw)
    assert raw[0] == 2  # the envelope format (kit/envelope.py), under a data key

    people.run(keys.rotate)
    assert people.run(keys.status).stale == 1  # only ann's pending secret: bob's is NULL
    while people.run(lambda s: keys.reencrypt_batch(s, 10)):
        pass
    assert people.run(keys.finish) == 0
    secret, done = people.enrol(started, fake_clock.now)
    assert secret == pending
    assert done.next_step == "done"


def test_one_code_signs_in_once_however_many_requests_race(
    people: People, fake_clock: FakeClock
) -> None:
    """Two browsers past the password send the same code at once: the person's row is locked
    while a code is checked, so the second sees it used."""
    started = people.set_up("ann@example.org")
    secret, _ = people.enrol(started, fake_clock.now)
    fake_clock.advance(60)
    halves = [people.sign_in("ann@example.org") for _ in range(2)]
    code = pyotp.TOTP(secret).at(fake_clock.now)
    barrier = threading.Barrier(2)

    def send(half: service.Started) -> str:
        barrier.wait()
        try:
            confirm(people, half, code)
        except service.SecondFactorRefused:
            return "refused"
        return "signed in"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(send, halves))
    assert outcomes == ["refused", "signed in"]
