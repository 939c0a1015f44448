"""What signing in can refuse with. Each message names no one; service.py raises them (and
exports them: `from referral_service.people.service import SignInRefused` works)."""

from __future__ import annotations

from referral_service.errors import ServiceError, Unauthenticated
from referral_service.people import rules


class SetupLinkInvalid(ServiceError):
    """404 for a link SPIS never issued, 410 for one expired, used or replaced."""

    def __init__(self, why: str, *, status: int = 410) -> None:
        super().__init__(
            f"This set-up link {why}: ask your administrator for a new link",
            status=status,
            issue_code="not-found" if status == 404 else "business-rule",
        )


class SignInRefused(Unauthenticated):
    """The one refusal for an unknown email, a wrong password, no password yet, a disabled
    account: which of them it was is not told."""

    def __init__(self) -> None:
        super().__init__("Email or password is not right")


class SecondFactorRefused(Unauthenticated):
    def __init__(self) -> None:
        super().__init__(
            "The code is not right: enter the current 6-digit code from your authenticator app"
        )


class SessionEnded(Unauthenticated):
    """The session a second-factor code was sent with has ended or expired."""

    def __init__(self) -> None:
        super().__init__("Your sign-in has ended or expired: sign in again")


class AccountLocked(ServiceError):
    """Too many failures in a row. 429 with `retry_after_s` (for a Retry-After header)."""

    status = 429
    issue_code = "throttled"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many failed attempts: sign-in is locked for this account. "
            f"Try again in {rules.wait_words(retry_after_s)}"
        )
        self.retry_after_s = retry_after_s
