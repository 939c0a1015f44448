"""Schemathesis checks for SPIS, loaded by `st run` (config `hooks`): every error body is
well-formed for where it was sent.

- under /fhir and /api: a FHIR OperationOutcome, sent as application/fhir+json;
- /auth/token: OAuth error JSON (RFC 6749 §5.2).
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

OAUTH_ERRORS = {"invalid_request", "invalid_client", "invalid_scope", "unsupported_grant_type"}
SEVERITIES = {"fatal", "error", "warning", "information"}


@schemathesis.check
def error_bodies_are_well_formed(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    if response.status_code < 400:
        return None
    path = case.operation.path
    body = _json(response)
    if path == "/auth/token" and response.status_code in (400, 401):
        assert body.get("error") in OAUTH_ERRORS, f"not an OAuth error: {body}"
        return True
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/fhir+json"), f"error sent as {content_type}"
    assert_outcome(body)
    return True


def assert_outcome(body: Any) -> None:
    assert isinstance(body, dict), f"not a JSON object: {body!r}"
    assert body.get("resourceType") == "OperationOutcome", f"not an OperationOutcome: {body}"
    issues = body.get("issue")
    assert isinstance(issues, list), f"an OperationOutcome without issues: {body}"
    assert issues, f"an OperationOutcome without issues: {body}"
    for issue in issues:
        assert issue.get("severity") in SEVERITIES, f"bad severity: {issue}"
        assert isinstance(issue.get("code"), str), f"no issue code: {issue}"
        assert issue["code"], f"no issue code: {issue}"
        assert isinstance(issue.get("diagnostics", ""), str), f"bad diagnostics: {issue}"


def _json(response: schemathesis.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"the error body is not JSON: {response.content[:200]!r}") from exc
