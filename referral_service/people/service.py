"""People and sign-in: adding people, one-time set-up links, passwords, the TOTP second factor,
server-side sessions and lock-out. Takes a session (and the settings), never commits.

A sign-in is one to three steps, each of which starts a NEW session row (the old one, if any, is
ended): password (or set-up link) → second factor, enrolled on first use → signed in. Only a
session whose `second_factor_done` is true may see data (`Signed.signed_in`). Tokens are random,
given to the caller once, and stored only as their SHA-256.

Refusals name no one and do not tell an unknown email address from a wrong password. Failed
attempts (passwords and codes alike) count towards lock-out even when the caller rolls back
(lockout.py); every step, accepted or refused, is an audit event (events.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, NoReturn

import pyotp
import segno
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from referral_service.audit.models import Action
from referral_service.config import Settings
from referral_service.errors import BusinessRuleViolation, Invalid, NotFound, ServiceError
from referral_service.kit import clock
from referral_service.kit.clock import as_utc
from referral_service.kit.ids import new_person_id
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.people import events, lockout, passwords, repository, rules, tokens
from referral_service.people.models import ROLE_ORG_KIND, Person, Role, SetupLink, WebSession
from referral_service.people.refusals import AccountLocked as AccountLocked
from referral_service.people.refusals import SecondFactorRefused as SecondFactorRefused
from referral_service.people.refusals import SessionEnded as SessionEnded
from referral_service.people.refusals import SetupLinkInvalid as SetupLinkInvalid
from referral_service.people.refusals import SignInRefused as SignInRefused
from referral_service.principal import Principal

NextStep = Literal["totp-setup", "totp", "done"]
TOTP_ISSUER = "SPIS"
_ORG_WORDS = {
    OrgKind.TIMEBANK: "a time bank",
    OrgKind.PRACTICE: "a GP practice",
    OrgKind.HEALTHBOARD: "a health board",
    OrgKind.PLATFORM: "SPIS itself",
}


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPerson:
    person: Person
    setup_url: str
    expires_at: datetime | None = None  # when setup_url stops working


@dataclass(frozen=True)
class Started:
    """A new session: `token` goes into the cookie (it is stored nowhere)."""

    token: str
    web_session: WebSession
    person: Person
    next_step: NextStep


@dataclass(frozen=True)
class Signed:
    person: Person
    web_session: WebSession

    @property
    def signed_in(self) -> bool:
        """Past the second factor (or needing none): only such a session may see data."""
        return self.web_session.second_factor_done


# -- people (the operator's `spis user` commands) ---------------------------------------------


def add_person(
    session: Session, settings: Settings, *, org_id: str, email: str, role: Role
) -> NewPerson:
    """A person at an organisation of the kind their role needs, and their first set-up link."""
    role = Role(role)
    email = rules.check_email(email)
    org = organisations.get(session, org_id)
    if org is None:
        raise NotFound(f"Organisation {org_id} is not registered", expression=["org"])
    needed = ROLE_ORG_KIND[role]
    if org.kind is not needed:
        raise Invalid(
            f"The {role.value} role belongs to {_ORG_WORDS[needed]}; this organisation is "
            f"{_ORG_WORDS[org.kind]}",
            expression=["role"],
        )
    if repository.by_email(session, email) is not None:
        raise _email_taken()
    now = clock.utcnow()
    person = Person(
        id=new_person_id(),
        org_id=org.id,
        email=email,
        role=role,
        active=True,
        failed_sign_ins=0,
        created_at=now,
    )
    try:
        with session.begin_nested():  # another operator adding the same address at once
            repository.add(session, person)
    except IntegrityError:
        raise _email_taken() from None
    url, link = _issue_link(session, settings, person, now)
    events.account_changed(session, person, Action.CREATE, f"added as {role.value}")
    return NewPerson(person, url, as_utc(link.expires_at))


def _email_taken() -> BusinessRuleViolation:
    return BusinessRuleViolation(
        "A person with this email address already exists",
        issue_code="duplicate",
        expression=["email"],
    )


def people(session: Session, org_id: str | None = None) -> list[Person]:
    return repository.people(session, org_id)


def disable(session: Session, email: str) -> Person:
    """The person can no longer sign in; every session of theirs ends, every unused link too."""
    person = _person_by_email(session, email, lock=True)
    now = clock.utcnow()
    if person.active:
        person.active = False
        person.disabled_at = now
        events.account_changed(session, person, Action.UPDATE, "disabled")
    repository.end_sessions(session, person.id, now)
    repository.revoke_links(session, person.id, now)
    return person


def new_setup_link(session: Session, settings: Settings, email: str) -> str:
    return reissue_setup_link(session, settings, email).setup_url


def reissue_setup_link(session: Session, settings: Settings, email: str) -> NewPerson:
    """A new set-up link (a forgotten password, a lost phone): earlier unused links stop
    working, the account is unlocked, every session ends, and the person chooses a password and
    enrols a second factor again. The old password stops working too: otherwise whoever knew it
    could enrol their own second factor before the person used the link."""
    person = _person_by_email(session, email, lock=True)
    if not person.active:
        raise BusinessRuleViolation("This account is disabled: no set-up link is issued for it")
    now = clock.utcnow()
    person.password_hash = None
    person.totp_secret = person.totp_pending_secret = None
    person.totp_confirmed_at = None
    person.totp_last_step = None
    person.failed_sign_ins = 0
    person.locked_until = None
    repository.end_sessions(session, person.id, now)
    url, link = _issue_link(session, settings, person, now)
    events.account_changed(session, person, Action.UPDATE, "new set-up link issued")
    return NewPerson(person, url, as_utc(link.expires_at))


def set_password_for_development(
    session: Session, settings: Settings, email: str, password: str
) -> Person:
    """Development only (`spis demo` prints the sign-ins it makes with this): set a person's
    password without a set-up link. Refused in production, where only the person chooses their
    password. Unused set-up links stop working, a lock-out ends, and earlier sessions end."""
    if settings.environment == "production":
        raise BusinessRuleViolation(
            "Passwords are only set directly in development: in production a person chooses "
            "their own through a set-up link (`spis user link`)"
        )
    person = _person_by_email(session, email, lock=True)
    if not person.active:
        raise BusinessRuleViolation("This account is disabled: no password is set for it")
    rules.check_password(password, person.email)
    now = clock.utcnow()
    person.password_hash = passwords.hash_password(password)
    person.failed_sign_ins = 0
    person.locked_until = None
    repository.revoke_links(session, person.id, now)
    repository.end_sessions(session, person.id, now)
    events.account_changed(session, person, Action.UPDATE, "password set for development")
    return person


def _person_by_email(session: Session, email: str, *, lock: bool = False) -> Person:
    person = repository.by_email(session, rules.normalise_email(email), lock=lock)
    if person is None:
        raise NotFound("No person with this email address is registered", expression=["email"])
    return person


def _issue_link(
    session: Session, settings: Settings, person: Person, now: datetime
) -> tuple[str, SetupLink]:
    repository.revoke_links(session, person.id, now)
    token, digest = tokens.new()
    lifetime = timedelta(seconds=settings.setup_link_lifetime_s)
    link = SetupLink(id=digest, person_id=person.id, created_at=now, expires_at=now + lifetime)
    repository.add(session, link)
    return f"{settings.public_base_url.rstrip('/')}/setup/{token}", link


# -- set-up links ------------------------------------------------------------------------------


def setup_link_person(session: Session, token: str) -> Person:
    """Whose link this is, while it can still be used."""
    return _usable_link(session, token, clock.utcnow(), lock=False)[1]


def complete_setup(session: Session, settings: Settings, token: str, password: str) -> Started:
    """The person chooses a password; the link is used up, older sessions end, and a new session
    starts (its next step is enrolling the second factor, when one is needed)."""
    now = clock.utcnow()
    link, person = _usable_link(session, token, now, lock=True)
    rules.check_password(password, person.email)
    person.password_hash = passwords.hash_password(password)
    link.used_at = now
    person.failed_sign_ins = 0
    person.locked_until = None
    repository.end_sessions(session, person.id, now)
    started = _start(session, person, now, _after_password(settings, person))
    events.sign_in(session, person, f"set-up link used; {_step_words(started)}", refused=False)
    return started


def _usable_link(
    session: Session, token: str, now: datetime, *, lock: bool
) -> tuple[SetupLink, Person]:
    """With `lock`, the person's row is locked first, then the link's (the order every path that
    locks both keeps), and the link is checked again once locked."""
    link_id = tokens.digest(token)
    link = _usable(repository.setup_link(session, link_id) if link_id else None, now)
    person = repository.person(session, link.person_id, lock=lock)
    if person is None or not person.active:
        raise SetupLinkInvalid("is no longer valid")
    if lock:
        link = _usable(repository.setup_link(session, link.id, lock=True), now)
    return link, person


def _usable(link: SetupLink | None, now: datetime) -> SetupLink:
    if link is None:
        raise SetupLinkInvalid("is not known", status=404)
    if link.used_at is not None:
        raise SetupLinkInvalid("has already been used")
    if link.revoked_at is not None:
        raise SetupLinkInvalid("has been replaced by a newer one or withdrawn")
    if as_utc(link.expires_at) <= now:
        raise SetupLinkInvalid("has expired")
    return link


# -- signing in --------------------------------------------------------------------------------


def sign_in(session: Session, settings: Settings, email: str, password: str) -> Started:
    now = clock.utcnow()
    passwords.warm()  # the first sign-in of a process is as slow whoever it is for
    person = repository.by_email(session, rules.normalise_email(email), lock=True)
    if person is None:
        passwords.refuse_in_time(password)  # as long as a wrong password takes
        events.sign_in(session, None, "password refused: no such account", refused=True)
        raise SignInRefused
    _refuse_while_locked(session, person, now)
    stored = person.password_hash if person.active else None  # disabled: as if none were set
    if not passwords.matches(stored, password):  # None: checked against the dummy hash
        _fail(session, settings, person, now, "password", SignInRefused())
    if stored is not None and passwords.needs_rehash(stored):
        person.password_hash = passwords.hash_password(password)
    started = _start(session, person, now, _after_password(settings, person))
    events.sign_in(session, person, f"password accepted; {_step_words(started)}", refused=False)
    return started


def totp_provisioning(session: Session, person: Person) -> tuple[str, str]:
    """(secret, otpauth URI) for enrolling an authenticator app: the pending secret, made on
    first call and the same on every later one until the enrolment is confirmed."""
    if person.totp_confirmed_at is not None:
        raise BusinessRuleViolation("A second factor is already set up for this account")
    secret = person.totp_pending_secret
    if secret is None:
        secret = person.totp_pending_secret = pyotp.random_base32()
        session.flush()
    uri = pyotp.TOTP(secret).provisioning_uri(name=person.email, issuer_name=TOTP_ISSUER)
    return secret, uri


def qr_svg(uri: str) -> str:
    """The URI as an inline SVG QR code, made here: the secret never leaves for a QR service."""
    return str(segno.make(uri, error="m").svg_inline(scale=4))


def confirm_second_factor(session: Session, settings: Settings, token: str, code: str) -> Started:
    """Check a TOTP code for a session past its password (confirming the enrolment when the
    secret is still pending); the session is then replaced by a new, signed-in one."""
    now = clock.utcnow()
    found = _live_session(session, settings, token, now)
    if found is None:
        raise SessionEnded
    # The person's row first, then the session's, as every path that locks both: one code, one
    # rotation, however many requests race with it.
    person = repository.person(session, found.person_id, lock=True)
    old = repository.web_session(session, found.id, lock=True)
    if person is None or not person.active or old is None or old.ended_at is not None:
        raise SessionEnded
    if old.second_factor_done:
        raise BusinessRuleViolation("This session has already passed its second factor")
    _refuse_while_locked(session, person, now)
    enrolling = person.totp_confirmed_at is None
    secret = person.totp_pending_secret if enrolling else person.totp_secret
    if secret is None:
        raise BusinessRuleViolation(
            "Set up the second factor first: scan the QR code with an authenticator app"
        )
    step = rules.matching_step(secret, code, now, person.totp_last_step)
    if step is None:
        _fail(session, settings, person, now, "second factor", SecondFactorRefused())
    if enrolling:
        person.totp_secret, person.totp_pending_secret = secret, None
        person.totp_confirmed_at = now
    person.totp_last_step = step
    old.ended_at = now
    started = _start(session, person, now, "done")
    what = "second factor enrolled" if enrolling else "second factor accepted"
    events.sign_in(session, person, f"{what}; signed in", refused=False)
    return started


def needs_second_factor(settings: Settings, person: Person) -> bool:
    """Roles that see person-level data need one (production always requires it); an analyst
    sees aggregates only."""
    if person.role is Role.ANALYST:
        return False
    return settings.web_second_factor == "required"


def principal_of(person: Person) -> Principal:
    return events.principal_of(person)


def _after_password(settings: Settings, person: Person) -> NextStep:
    if person.totp_confirmed_at is not None:
        return "totp"
    return "totp-setup" if needs_second_factor(settings, person) else "done"


def _refuse_while_locked(session: Session, person: Person, now: datetime) -> None:
    """Before any password or code is checked: while locked, even a right one is refused."""
    if person.locked_until is not None and as_utc(person.locked_until) > now:
        retry = rules.retry_after_s(as_utc(person.locked_until), now)
        events.sign_in(session, person, f"refused: locked for {retry} s", refused=True)
        raise AccountLocked(retry)


def _fail(
    session: Session,
    settings: Settings,
    person: Person,
    now: datetime,
    what: str,
    refusal: ServiceError,
) -> NoReturn:
    until = lockout.count_failure(session, person.id, lockout.Policy.of(settings), now)
    if until is None:
        events.sign_in(session, person, f"{what} refused", refused=True)
        raise refusal
    retry = rules.retry_after_s(until, now)
    events.sign_in(session, person, f"{what} refused; locked for {retry} s", refused=True)
    raise AccountLocked(retry)


def _step_words(started: Started) -> str:
    return {
        "totp-setup": "second factor to enrol",
        "totp": "second factor next",
        "done": "signed in",
    }[started.next_step]


# -- sessions ----------------------------------------------------------------------------------


def current(session: Session, settings: Settings, token: str | None) -> Signed | None:
    """The person behind a session cookie, or None (no cookie, unknown, ended, expired, or the
    person disabled). Seeing the session keeps it alive: `last_seen_at` moves on."""
    if not token:
        return None
    now = clock.utcnow()
    web_session = _live_session(session, settings, token, now)
    if web_session is None:
        return None
    person = repository.person(session, web_session.person_id)
    if person is None or not person.active:
        web_session.ended_at = now
        return None
    web_session.last_seen_at = now
    return Signed(person, web_session)


def sign_out(session: Session, token: str) -> None:
    """End the session (a no-op for one already ended or unknown)."""
    session_id = tokens.digest(token)
    web_session = repository.web_session(session, session_id) if session_id else None
    if web_session is None or web_session.ended_at is not None:
        return
    web_session.ended_at = clock.utcnow()
    person = repository.person(session, web_session.person_id)
    if person is not None:
        events.sign_out(session, person)


def csrf_matches(web_session: WebSession, submitted: str | None) -> bool:
    """A form's CSRF token against the session's, in constant time."""
    return bool(submitted) and secrets.compare_digest(
        web_session.csrf_token.encode(), (submitted or "").encode()
    )


def _start(session: Session, person: Person, now: datetime, next_step: NextStep) -> Started:
    """Always a new row and a new token: a session id known before sign-in is worth nothing
    after it (session fixation)."""
    token, digest = tokens.new()
    web_session = WebSession(
        id=digest,
        person_id=person.id,
        second_factor_done=next_step == "done",
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
    )
    repository.add(session, web_session)
    if next_step == "done":  # only a whole sign-in clears the count: codes count as well
        person.failed_sign_ins = 0
        person.locked_until = None
        person.last_sign_in_at = now
    return Started(token, web_session, person, next_step)


def _live_session(
    session: Session, settings: Settings, token: str, now: datetime
) -> WebSession | None:
    """The session row for a token, unless ended; one found expired is ended now."""
    session_id = tokens.digest(token)
    web_session = repository.web_session(session, session_id) if session_id else None
    if web_session is None or web_session.ended_at is not None:
        return None
    idle = now - as_utc(web_session.last_seen_at) > timedelta(seconds=settings.web_idle_timeout_s)
    age = now - as_utc(web_session.created_at)
    if idle or age > timedelta(seconds=settings.web_absolute_timeout_s):
        web_session.ended_at = now
        return None
    return web_session
