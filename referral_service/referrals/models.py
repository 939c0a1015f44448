"""Referral submissions: the first answer to a referral, kept so that a resent referral (same
ServiceRequest identifier) gets the same answer and creates nothing new."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base
from referral_service.store.models import StoredResource


class Submission(Base):
    __tablename__ = "referral_submission"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"))
    # Blind index of the ServiceRequest identifier (system|value).
    key: Mapped[str] = mapped_column(String(64))
    service_request_id: Mapped[str] = mapped_column(ForeignKey("resource.id"))
    # JSON list of {"location", "etag", "lastModified"} in the order of the Bundle's entries.
    response: Mapped[bytes] = mapped_column(LargeBinary)
    # Keyed digest of the entries as first accepted (referrals.digest); NULL for older rows.
    digest: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Never loaded; makes the unit of work insert the ServiceRequest first.
    service_request: Mapped[StoredResource] = relationship(lazy="raise")

    __table_args__ = (UniqueConstraint("org_id", "key", name="uq_referral_submission_org_key"),)

    def __repr__(self) -> str:
        return f"Submission({self.id})"
