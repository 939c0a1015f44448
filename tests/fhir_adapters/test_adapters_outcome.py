"""outcome: FhirError renders as an OperationOutcome; pydantic errors never echo input values."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from pydantic import ValidationError

from fhir_adapters._shape import resource_class
from fhir_adapters.outcome import FhirError, Issue, from_validation_error, operation_outcome

NHS_NUMBER = "9434765919"


def validation_error(resource_type: str, data: Mapping[str, object]) -> ValidationError:
    model = resource_class(resource_type)
    assert model is not None
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return caught.value


def test_fhir_error_carries_status_code_and_diagnostics() -> None:
    err = FhirError(422, "code-invalid", "Task.status: not allowed", ["Task.status"])
    assert (err.status, err.code, err.expression) == (422, "code-invalid", ["Task.status"])
    assert str(err) == "Task.status: not allowed"
    assert err.to_outcome() == {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "code-invalid",
                "diagnostics": "Task.status: not allowed",
                "expression": ["Task.status"],
            }
        ],
    }


def test_expression_is_left_out_when_not_given() -> None:
    issue = FhirError(404, "not-found", "Task not found").to_outcome()["issue"][0]
    assert "expression" not in issue


def test_many_issues() -> None:
    err = FhirError.many(
        422,
        [Issue("required", "Task.for: required", ("Task.for",)), Issue("value", "B")],
    )
    assert (err.code, str(err), err.expression) == ("required", "Task.for: required", ["Task.for"])
    assert [i["code"] for i in err.to_outcome()["issue"]] == ["required", "value"]
    with pytest.raises(ValueError, match="at least one"):
        FhirError.many(422, [])


def test_operation_outcome_is_valid_r4() -> None:
    body = operation_outcome("processing", "Queued", severity="information", expression=["Task"])
    model = resource_class("OperationOutcome")
    assert model is not None
    model.model_validate(body)
    assert body["issue"][0]["severity"] == "information"


def test_from_validation_error_unknown_element_without_value() -> None:
    exc = validation_error("Patient", {"resourceType": "Patient", "nhs": NHS_NUMBER})
    err = from_validation_error(exc, "Patient")
    assert (err.status, err.code) == (400, "structure")
    assert str(err) == "Invalid Patient: Patient.nhs: unknown element"
    assert NHS_NUMBER not in str(err.to_outcome())


def test_from_validation_error_missing_is_required() -> None:
    exc = validation_error("Task", {"resourceType": "Task"})
    err = from_validation_error(exc, "Task")
    assert err.code == "required"
    assert err.expression == ["Task.intent", "Task.status"]
    assert "Task.intent: field required" in str(err)


def test_from_validation_error_uses_fhir_names() -> None:
    task = {"resourceType": "Task", "status": "x", "intent": "order", "for": {"reference": 5}}
    err = from_validation_error(validation_error("Task", task), "Task")
    assert err.expression == ["Task.for.reference"]


def test_from_validation_error_lists_only_the_first_few() -> None:
    data: dict[str, object] = {"resourceType": "Patient", **{f"x{i}": i for i in range(8)}}
    err = from_validation_error(validation_error("Patient", data), "Patient")
    assert str(err).endswith("(and 3 more)")
    assert len(err.expression or []) == 8
