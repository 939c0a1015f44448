"""fhir_adapters/_model_imports.py: each resource inside a Bundle finds its model class once per
process, not by a failing import every time, and validation answers exactly as before."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_core import PydanticCustomError

from fhir_adapters import _model_imports
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.questionnaire_form import questionnaire_response


def _batch(*resources: dict[str, Any]) -> dict[str, Any]:
    entries = [
        {"resource": r, "request": {"method": "POST", "url": r["resourceType"]}} for r in resources
    ]
    return {"resourceType": "Bundle", "type": "batch", "entry": entries}


def _response(i: int) -> dict[str, Any]:
    answers = {str(n): str(1 + (i + n) % 5) for n in range(1, 8)}
    return questionnaire_response(
        "swemwbs",
        answers,
        patient_ref="Patient/p1",
        based_on_ref="ServiceRequest/s1",
        authored="2026-01-02T10:00:00Z",
    )


def test_a_resource_model_is_imported_once_however_often_it_is_validated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _model_imports.installed()
    imports: list[str] = []
    original = _model_imports._import_string

    def counted(value: Any) -> Any:
        imports.append(value)
        return original(value)

    monkeypatch.setattr(_model_imports, "_import_string", counted)
    _model_imports._imported.cache_clear()
    for _ in range(3):
        validate_resource(_batch(_response(1), _response(2)), expected_type="Bundle")
    # Every path once (the cache was emptied: the Bundle's own element models are among them).
    assert imports.count("fhir.resources.R4B.questionnaireresponse.QuestionnaireResponse") == 1
    assert len(imports) == len(set(imports))


def test_validation_still_refuses_a_bad_entry_and_a_bad_path_still_fails_every_time() -> None:
    bad = _response(3)
    bad["status"] = 7
    for _ in range(2):
        with pytest.raises(FhirError):
            validate_resource(_batch(_response(1), bad), expected_type="Bundle")
    for _ in range(2):
        with pytest.raises(PydanticCustomError):
            _model_imports.import_string("fhir.resources.R4B.nosuchmodule.NoSuchModel")
