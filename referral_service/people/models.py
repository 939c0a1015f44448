"""People who use the web workspace (brokers, practice staff, health-board analysts), their
server-side sessions and their one-time set-up links.

No raw secret is stored: sessions and set-up links are kept by the SHA-256 of their token (the
token itself lives only in the cookie or the link), passwords as argon2id hashes, and the TOTP
secrets sealed at rest like other secrets (store/sealing.py `seal_text`, which leaves None as NULL).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base
from referral_service.organisations.models import OrgKind
from referral_service.store.sealing import seal_text


class Role(enum.StrEnum):
    BROKER = "broker"
    PRACTICE = "practice"
    ANALYST = "analyst"


# The kind of organisation each role belongs to: a broker works for a time bank, practice staff
# for a GP practice, an analyst for a health board (aggregates only).
ROLE_ORG_KIND: dict[Role, OrgKind] = {
    Role.BROKER: OrgKind.TIMEBANK,
    Role.PRACTICE: OrgKind.PRACTICE,
    Role.ANALYST: OrgKind.HEALTHBOARD,
}


class Person(Base):
    """One person at one organisation, with one role. `password_hash` is None until the person
    has used their set-up link; the TOTP secrets are sealed (the ORM sees the base32 text)."""

    __tablename__ = "person"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), index=True)
    # Lower-case, so the unique constraint is case-insensitive.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[Role] = mapped_column(
        Enum(
            Role,
            native_enum=False,
            length=16,
            values_callable=lambda roles: [r.value for r in roles],
        )
    )
    active: Mapped[bool] = mapped_column(default=True)
    disabled_at: Mapped[datetime | None]
    password_hash: Mapped[str | None] = mapped_column(String(255))
    totp_secret: Mapped[str | None] = mapped_column(LargeBinary)  # sealed; set once confirmed
    totp_pending_secret: Mapped[str | None] = mapped_column(LargeBinary)  # sealed; enrolling
    totp_confirmed_at: Mapped[datetime | None]
    # The last TOTP time-step accepted: a code (or an older one) is never accepted twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    failed_sign_ins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # no email: it names someone
        return f"Person(id={self.id!r}, role={self.role.value!r}, active={self.active!r})"


class WebSession(Base):
    """A signed-in browser. Revocable: ending the row ends the session, whatever the cookie."""

    __tablename__ = "web_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id"), index=True)
    # False between the password and the second factor: such a session shows no data.
    second_factor_done: Mapped[bool] = mapped_column(default=False)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]

    def __repr__(self) -> str:  # the id is a credential's hash: not worth printing either
        return f"WebSession(person_id={self.person_id!r}, ended={self.ended_at is not None})"


class SetupLink(Base):
    """A one-time link to choose a password (and enrol a second factor), by the SHA-256 of its
    token. Revoked when a newer link is issued for the same person, or the person is disabled."""

    __tablename__ = "setup_link"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the token
    person_id: Mapped[str] = mapped_column(ForeignKey("person.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_setup_link_person", "person_id", "created_at"),)

    def __repr__(self) -> str:
        return f"SetupLink(person_id={self.person_id!r})"


seal_text(Person, "totp_secret", "org_id")
seal_text(Person, "totp_pending_secret", "org_id")
