"""Registered client systems and the replay store for their one-time assertions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.kit.models import Base


class Client(Base):
    """A SMART Backend Services client: one system at one organisation, with its public keys."""

    __tablename__ = "client"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)  # the client_id
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # Exactly one of these is set: a pasted public JWK Set (JSON text) or the URL the client serves
    # it from, which lets the client rotate keys without asking us.
    jwks: Mapped[str | None] = mapped_column(Text)
    jwks_url: Mapped[str | None] = mapped_column(String(2000))
    # Space-separated SMART v2 scopes: the most this client may ever be granted.
    scopes: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Client(id={self.id!r}, org_id={self.org_id!r}, active={self.active!r})"


class UsedAssertion(Base):
    """A `jti` seen from a client, kept until the assertion expires.

    In the database rather than in memory so that every API process sees every use: the primary
    key makes a second insert of the same (client, jti) fail, whichever process tries it.
    """

    __tablename__ = "used_assertion"

    client_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    jti: Mapped[str] = mapped_column(String(255), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
