"""One error hierarchy with real HTTP statuses; under /fhir every error is an OperationOutcome.

`issue_code` is an OperationOutcome issue-type code. Messages never carry patient data: they name
the element or rule that failed, not its value.
"""

from __future__ import annotations


class ServiceError(Exception):
    status = 400
    issue_code = "processing"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        issue_code: str | None = None,
        expression: list[str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if issue_code is not None:
            self.issue_code = issue_code
        self.expression = expression


class NotFound(ServiceError):
    status = 404
    issue_code = "not-found"


class BusinessRuleViolation(ServiceError):
    """A forbidden state change or referral rule: 409, or 422 where the input is at fault."""

    status = 409
    issue_code = "business-rule"


class Invalid(ServiceError):
    status = 422
    issue_code = "invalid"


class VersionConflict(ServiceError):
    status = 412
    issue_code = "conflict"


class MultipleMatches(ServiceError):
    status = 412
    issue_code = "multiple-matches"


class Unauthenticated(ServiceError):
    status = 401
    issue_code = "login"


class Forbidden(ServiceError):
    status = 403
    issue_code = "forbidden"
