"""What a service call needs to know about its caller: the unit of work, who, and the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from referral_service.config import Settings
from referral_service.principal import Principal


@dataclass(frozen=True, slots=True)
class Context:
    session: Session
    principal: Principal
    settings: Settings


class Caller(Protocol):
    """Who asks, and the settings, without a unit of work: what reading a request's parameters
    needs (a Context is one; so is `Asking`, for work on the event loop)."""

    @property
    def principal(self) -> Principal: ...

    @property
    def settings(self) -> Settings: ...


@dataclass(frozen=True, slots=True)
class Asking:
    principal: Principal
    settings: Settings
