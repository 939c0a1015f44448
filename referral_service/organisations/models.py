from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base


class OrgKind(enum.StrEnum):
    PRACTICE = "practice"
    TIMEBANK = "timebank"
    HEALTHBOARD = "healthboard"
    PLATFORM = "platform"  # SPIS itself: background jobs only, never a registered organisation


class Organisation(Base):
    __tablename__ = "organisation"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[OrgKind] = mapped_column(
        Enum(
            OrgKind,
            native_enum=False,
            length=16,
            values_callable=lambda kinds: [k.value for k in kinds],
        )
    )
    name: Mapped[str] = mapped_column(String(200))
    # ODS code for practices and boards; time banks may have none.
    ods_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    # The health board whose area a practice or a time bank is in (DESIGN §9): a board's figures
    # cover the referrals its practices made. None for boards themselves and for unplaced ones.
    board_id: Mapped[str | None] = mapped_column(ForeignKey("organisation.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Organisation(id={self.id!r}, kind={self.kind.value!r})"
