"""OperationOutcome building and the one error type the adapters raise.

Diagnostics never carry patient data: they name the element or rule that failed, never the value
that was sent. That is why ``from_validation_error`` builds its text from pydantic's error *type*
and *location*, and never from ``msg`` or ``input`` (both can echo what the client sent).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

# How many pydantic errors to spell out: enough to fix a payload, short enough to read.
_MAX_REPORTED = 5


@dataclass(frozen=True, slots=True)
class Issue:
    """One OperationOutcome issue (severity is always ``error`` for a raised FhirError)."""

    code: str
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_json(self, severity: str = "error") -> dict[str, Any]:
        return operation_outcome_issue(self.code, self.diagnostics, severity, list(self.expression))


class FhirError(Exception):
    """A FHIR-level failure carrying its HTTP status and OperationOutcome issue(s).

    ``code`` is an OperationOutcome issue-type code (structure, required, value, code-invalid,
    business-rule, not-supported, ...). ``str(err)`` is the diagnostics text.
    """

    def __init__(
        self, status: int, code: str, diagnostics: str, expression: list[str] | None = None
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.code = code
        self.diagnostics = diagnostics
        self.expression = expression
        self.issues: tuple[Issue, ...] = (Issue(code, diagnostics, tuple(expression or ())),)

    @classmethod
    def many(cls, status: int, issues: Sequence[Issue]) -> FhirError:
        """One error reporting several issues; the first one gives ``code`` and ``diagnostics``."""
        if not issues:
            raise ValueError("FhirError.many needs at least one issue")
        first = issues[0]
        err = cls(status, first.code, first.diagnostics, list(first.expression) or None)
        err.issues = tuple(issues)
        return err

    def __str__(self) -> str:
        return self.diagnostics

    def to_outcome(self) -> dict[str, Any]:
        return outcome_of(i.to_json() for i in self.issues)


def operation_outcome_issue(
    code: str, diagnostics: str, severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = list(expression)
    return issue


def operation_outcome(
    code: str, diagnostics: str, severity: str = "error", expression: list[str] | None = None
) -> dict[str, Any]:
    """A one-issue OperationOutcome as JSON."""
    return outcome_of([operation_outcome_issue(code, diagnostics, severity, expression)])


def outcome_of(issues: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome of issues made by `operation_outcome_issue`: the one place the
    resource is put together."""
    return {"resourceType": "OperationOutcome", "issue": list(issues)}


# --- pydantic ValidationError -> FhirError -------------------------------------------------------

_MISSING = frozenset({"missing", "model_field_validation.missing"})

# Error-type fragments mapped to plain words. Checked in order; the first fragment found wins.
_TYPE_WORDS: tuple[tuple[str, str], ...] = (
    ("extra_forbidden", "unknown element"),
    ("wrong-resource-type", "wrong resourceType for this position"),
    ("model_validation_format", "expected an object of the right type"),
    ("list_type", "expected a JSON array"),
    ("string_type", "expected a JSON string"),
    ("bool", "expected a JSON boolean"),
    ("int", "expected a JSON integer"),
    ("decimal", "expected a JSON number"),
    ("float", "expected a JSON number"),
    ("too_short", "must not be empty"),
    ("too_long", "is too long"),
    ("pattern_mismatch", "has an invalid format"),
    ("greater_than", "is out of range"),
    ("less_than", "is out of range"),
    ("date", "is not a valid date/time"),
    ("time", "is not a valid date/time"),
    ("json_invalid", "expected an object, not a string"),
    ("dict_type", "expected a JSON object"),
    ("model_type", "expected a JSON object"),
    ("value_error", "has an invalid value"),
)

# pydantic-side names that differ from the FHIR JSON names.
_LOC_NAMES = {"resource_type": "resourceType", "for_fhir": "for"}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def from_validation_error(exc: ValidationError, resource_type: str) -> FhirError:
    """Turn a fhir.resources/pydantic ValidationError into a 400 without echoing input values."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    paths = [fhirpath(resource_type, err["loc"]) for err in errors]
    shown = [
        f"{path}: {describe_error_type(err['type'])}"
        for path, err in zip(paths, errors, strict=True)
    ]
    text = "; ".join(shown[:_MAX_REPORTED])
    if len(shown) > _MAX_REPORTED:
        text += f" (and {len(shown) - _MAX_REPORTED} more)"
    all_missing = all(err["type"] in _MISSING for err in errors)
    code = "required" if errors and all_missing else "structure"
    return FhirError(400, code, f"Invalid {resource_type}: {text}", _unique(paths))


def describe_error_type(error_type: str) -> str:
    if error_type in _MISSING:
        return "field required"
    for fragment, words in _TYPE_WORDS:
        if fragment in error_type:
            return words
    return f"invalid ({error_type})"


def fhirpath(resource_type: str, loc: Iterable[int | str]) -> str:
    """``('entry', 0, 'resource', 'foo')`` -> ``Bundle.entry[0].resource.foo``."""
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part == "root" or not _IDENTIFIER.match(part):
            continue  # pydantic-internal markers such as 'root' or 'function-wrap[...]'
        else:
            path += "." + _fhir_name(part)
    return path


def _fhir_name(name: str) -> str:
    if name in _LOC_NAMES:
        return _LOC_NAMES[name]
    if name.endswith("__ext"):
        return "_" + name[: -len("__ext")]  # the primitive's extension sibling, e.g. _status
    return name


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
