"""fhir_adapters/_model_checks.py: the checks fhir-core makes after building each model (required
primitive elements, choice elements) read each model class once, and decide exactly as the
library's own: the same resources pass, the same ones fail with the same errors."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic import ValidationError

from fhir_adapters import _model_checks
from fhir_adapters._shape import resource_class
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.questionnaire_form import questionnaire_response
from fhir_adapters.wellbeing import score_answers, score_observations

DATA = Path(__file__).parents[1] / "data"

QR = questionnaire_response(
    "swemwbs",
    {str(n): "3" for n in range(1, 8)},
    patient_ref="Patient/p-1",
    based_on_ref="ServiceRequest/sr-1",
    authored="2026-01-05T10:00:00Z",
)
[OBSERVATION] = score_observations(
    "QuestionnaireResponse/qr-1",
    QR,
    "ServiceRequest/sr-1",
    score_answers("swemwbs", {str(n): 3 for n in range(1, 8)}),
)


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def _answer(**value: Any) -> dict[str, Any]:
    qr = copy.deepcopy(QR)
    qr["item"][0]["answer"] = [value]
    return qr


TASK = json.loads((DATA / "task.json").read_text())
PATIENT = json.loads((DATA / "patient.json").read_text())
WHY = {"extension": [{"url": "http://example.org/why", "valueString": "unknown"}]}

# (resource type, resource): valid ones, and ones each check refuses.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("QuestionnaireResponse", QR),
    ("Observation", OBSERVATION),
    *[
        (
            json.loads((DATA / name).read_text())["resourceType"],
            json.loads((DATA / name).read_text()),
        )
        for name in ("patient.json", "consent.json", "servicerequest.json", "task.json")
    ],
    ("Bundle", json.loads((DATA / "referral-bundle.json").read_text())),
    # a required primitive missing
    ("Observation", _without(OBSERVATION, "status")),
    ("QuestionnaireResponse", _without(QR, "status")),
    ("Task", _without(TASK, "intent")),
    # ... or missing with an extension saying why: allowed
    (
        "Observation",
        {
            **_without(OBSERVATION, "status"),
            "_status": {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                        "valueCode": "unknown",
                    }
                ]
            },
        },
    ),
    # two types of one choice element
    ("QuestionnaireResponse", _answer(valueString="a", valueInteger=1)),
    ("Observation", {**OBSERVATION, "valueString": "21.5"}),
    # a required choice element with no value
    ("Task", {**TASK, "input": [{"type": {"text": "why"}}]}),
    ("Task", {**TASK, "input": [{"type": {"text": "why"}, "valueString": "x", "valueInteger": 2}]}),
    # a null in a list of complex elements: refused; in a list of primitives: a placeholder
    ("QuestionnaireResponse", {**QR, "basedOn": [None]}),
    ("Observation", {**OBSERVATION, "category": [OBSERVATION["category"][0], None]}),
    (
        "Patient",
        {**PATIENT, "name": [{"family": "X", "given": ["A", None], "_given": [None, WHY]}]},
    ),
]


@pytest.fixture
def library_checks() -> Iterator[None]:
    _model_checks.uninstall()
    try:
        yield
    finally:
        _model_checks.install()


def _model_outcome(rtype: str, data: dict[str, Any]) -> Any:
    model = resource_class(rtype)
    assert model is not None
    try:
        model.model_validate(copy.deepcopy(data))
    except ValidationError as exc:
        return [(e["type"], e["loc"], e["msg"]) for e in exc.errors()]
    return "valid"


def _edge_outcome(rtype: str, data: dict[str, Any]) -> Any:
    try:
        validate_resource(copy.deepcopy(data), expected_type=rtype)
    except FhirError as exc:  # compare what the client is told
        return exc.to_outcome()
    return "valid"


def test_installed_for_every_model_class() -> None:
    assert _model_checks.installed()
    assert FHIRAbstractModel._validate_one_of_many is _model_checks.validate_one_of_many  # type: ignore[comparison-overlap]


def test_the_cases_pass_and_fail_as_expected() -> None:
    outcomes = [_model_outcome(rtype, data) for rtype, data in CASES]
    assert outcomes[:7] == ["valid"] * 7
    assert [outcome[0][:2] for outcome in outcomes[7:10]] == [
        ("model_field_validation.missing", ("status",)),
        ("model_field_validation.missing", ("status",)),
        ("model_field_validation.missing", ("intent",)),
    ]
    assert outcomes[10] == "valid"  # the missing status is explained by an extension
    messages = [outcome[0][2] for outcome in outcomes[11:15]]
    assert ["but got multiple" in m for m in messages] == [True, True, False, True]
    assert "Expect any of field value from this list" in messages[2]
    assert [outcome[0][:2] for outcome in outcomes[15:17]] == [
        ("list_type", ("basedOn",)),
        ("list_type", ("category",)),
    ]
    assert outcomes[17] == "valid"


def test_every_case_decides_as_the_library_does(library_checks: None) -> None:
    theirs = [(_model_outcome(t, d), _edge_outcome(t, d)) for t, d in CASES]
    _model_checks.install()
    ours = [(_model_outcome(t, d), _edge_outcome(t, d)) for t, d in CASES]
    assert ours == theirs


def test_a_class_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    model = resource_class("Observation")
    assert model is not None
    monkeypatch.setattr(_model_checks, "_PLANS", {})
    reads: list[str] = []
    original = model.get_required_fields

    def counted(self: Any) -> Any:
        reads.append(type(self).__name__)
        return original(self)

    monkeypatch.setattr(model, "get_required_fields", counted)
    for _ in range(3):
        model.model_validate(copy.deepcopy(OBSERVATION))
    assert reads == ["Observation"]


def _model_classes() -> list[type[FHIRAbstractModel]]:
    found, pending = [], [FHIRAbstractModel]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_the_remembered_answers_are_the_library_functions_answers() -> None:
    """For every field of every model class loaded (the validation warm-up loads them all)."""
    fields = [f for cls in _model_classes() for f in cls.model_fields.values()]
    assert len(fields) > 1000
    assert [_model_checks._IS_LIST[f] for f in fields] == [is_list_type(f) for f in fields]
    assert [_model_checks._IS_PRIMITIVE[f] for f in fields] == [
        is_primitive_type(f) for f in fields
    ]
