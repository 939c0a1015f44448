"""What a service call needs to know about its caller: the unit of work, who, and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from referral_service.config import Settings
from referral_service.principal import Principal


@dataclass(frozen=True, slots=True)
class Context:
    session: Session
    principal: Principal
    settings: Settings
