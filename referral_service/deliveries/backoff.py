"""When a failed delivery is tried again, and when SPIS gives up: pure, so tests pin it down."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

from referral_service.config import Settings

JITTER = 0.2  # ±20 %: subscribers that failed together do not all come back at once
_MAX_EXPONENT = 40


def delay_s(
    attempts: int,
    settings: Settings,
    retry_after_s: float | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """base · 2^(attempts − 1), at most max, with jitter; never sooner than the receiver's
    Retry-After."""
    exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)
    backoff = settings.delivery_backoff_base_s * 2.0**exponent
    jittered = backoff * (1 + uniform(-JITTER, JITTER))
    return max(min(settings.delivery_backoff_max_s, jittered), retry_after_s or 0.0)


def gives_up(occurred_at: datetime, next_attempt_at: datetime, settings: Settings) -> bool:
    """True when the next attempt would fall beyond the retry window of the event."""
    return next_attempt_at > occurred_at + timedelta(seconds=settings.delivery_retry_window_s)


def window_text(settings: Settings) -> str:
    """The retry window as an operator reads it: "24 h", "90 min", "30 s"."""
    seconds = settings.delivery_retry_window_s
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
