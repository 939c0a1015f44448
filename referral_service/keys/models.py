"""Data keys, stored only wrapped by the KEK."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, LargeBinary
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base


class DataKey(Base):
    __tablename__ = "data_key"

    # Also the key id inside every value sealed with it; the highest live id is the current key.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once re-encryption has left nothing under this key; a retired key opens nothing.
    retired_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"DataKey({self.id})"
