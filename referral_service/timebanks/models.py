"""The routing-relevant facts about a time bank: the same fields Open Referral (HSDS) keeps for a
service, its service area and capacity."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.models import Base


class TimeBankProfile(Base):
    __tablename__ = "timebank_profile"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), primary_key=True)
    # Space-separated postcode districts, upper case: "SE6 SE13".
    catchment: Mapped[str] = mapped_column(Text)
    # Space-separated offer categories: "befriending walking-group".
    offers: Mapped[str] = mapped_column(Text)
    # Open referral slots; capacity in use is derived from the open child Tasks, never counted.
    capacity: Mapped[int] = mapped_column(Integer)
    contact: Mapped[str | None] = mapped_column(String(320))

    @property
    def districts(self) -> frozenset[str]:
        return frozenset(self.catchment.split())

    @property
    def offer_set(self) -> frozenset[str]:
        return frozenset(self.offers.split())

    def __repr__(self) -> str:
        return f"TimeBankProfile(org_id={self.org_id!r}, capacity={self.capacity})"
