"""load_json and validate_resource: what reaches storage is valid FHIR R4 JSON, or a clear 400."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import SUPPORTED_TYPES, load_json, validate_resource

DATA = Path(__file__).resolve().parents[1] / "data"
NHS_NUMBER = "9434765919"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def raises(data: dict[str, Any], **kwargs: Any) -> FhirError:
    with pytest.raises(FhirError) as caught:
        validate_resource(data, **kwargs)
    return caught.value


def nested(kind: str, depth: int) -> bytes:
    """A JSON object whose deepest container sits at `depth` (the top object counts as 1)."""
    inner = "[]" if kind == "list" else "{}"
    for _ in range(depth - 2):
        inner = f"[{inner}]" if kind == "list" else f'{{"a":{inner}}}'
    return f'{{"resourceType":"Patient","x":{inner}}}'.encode()


# --- load_json ------------------------------------------------------------------------------------


def test_load_json_returns_the_object() -> None:
    assert load_json(b'{"resourceType": "Patient"}') == {"resourceType": "Patient"}


@pytest.mark.parametrize("body", [b"", b"{", b'{"a":1,}', b"not json", b"\xff\xfe", b"{'a': 1}"])
def test_malformed_json_is_400_structure(body: bytes) -> None:
    with pytest.raises(FhirError) as caught:
        load_json(body)
    assert (caught.value.status, caught.value.code) == (400, "structure")
    assert str(caught.value) == "Request body is not valid JSON"


@pytest.mark.parametrize("body", [b"[]", b'[{"resourceType":"Patient"}]', b'"x"', b"1", b"null"])
def test_top_level_must_be_an_object(body: bytes) -> None:
    with pytest.raises(FhirError) as caught:
        load_json(body)
    assert (caught.value.status, caught.value.code) == (400, "structure")


def test_a_depth_bomb_is_refused_with_400() -> None:
    bomb = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(FhirError) as caught:
        load_json(bomb)
    assert (caught.value.status, caught.value.code) == (400, "too-costly")
    assert "nested too deeply" in str(caught.value)


def test_a_deep_but_malformed_body_is_still_400() -> None:
    with pytest.raises(FhirError) as caught:
        load_json(b"[" * 100_000)
    assert caught.value.status == 400


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_depth_limit_counts_dicts_and_lists(kind: str) -> None:
    assert load_json(nested(kind, 32), max_depth=32)
    with pytest.raises(FhirError) as caught:
        load_json(nested(kind, 33), max_depth=32)
    assert (caught.value.status, caught.value.code) == (400, "too-costly")
    assert "nested too deeply" in str(caught.value)


def test_depth_just_below_orjson_limit_is_ours_to_refuse() -> None:
    with pytest.raises(FhirError) as caught:
        load_json(nested("list", 1000))
    assert caught.value.code == "too-costly"


def test_the_sample_payloads_load_and_validate() -> None:
    for name in ["patient", "consent", "servicerequest", "task", "referral-bundle"]:
        data = load_json((DATA / f"{name}.json").read_bytes())
        assert validate_resource(data) == data["resourceType"]


# --- validate_resource: resourceType --------------------------------------------------------------


def test_resource_type_is_required_and_a_string() -> None:
    assert raises({"id": "x"}).code == "structure"
    assert raises({"resourceType": 5}).code == "structure"


def test_expected_type_mismatch_is_400_invalid() -> None:
    err = raises(load("patient.json"), expected_type="Task")
    assert (err.status, err.code) == (400, "invalid")
    assert str(err) == "Expected a Task, got Patient"


def test_expected_type_match_passes() -> None:
    assert validate_resource(load("task.json"), expected_type="Task") == "Task"


@pytest.mark.parametrize("resource_type", ["Practitioner", "Coding", "Nope", "Resource"])
def test_unsupported_types_are_400_not_supported(resource_type: str) -> None:
    err = raises({"resourceType": resource_type})
    assert (err.status, err.code) == (400, "not-supported")


def test_unsupported_known_type_is_named() -> None:
    assert (
        str(raises({"resourceType": "Practitioner"})) == "Resource type not supported: Practitioner"
    )


@pytest.mark.parametrize("client_text", [NHS_NUMBER, "Okafor"])
def test_client_text_in_resource_type_is_not_echoed(client_text: str) -> None:
    err = raises({"resourceType": client_text})
    assert err.code == "not-supported"
    assert client_text not in str(err)
    assert client_text not in str(raises({"resourceType": client_text}, expected_type="Task"))


def test_supported_types_are_the_referral_loop_resources() -> None:
    assert {"Patient", "Consent", "ServiceRequest", "Task", "Bundle"} <= SUPPORTED_TYPES
    assert "Practitioner" not in SUPPORTED_TYPES


# --- validate_resource: structure, without echoing values -----------------------------------------


def test_unknown_element_names_its_path_and_not_its_value() -> None:
    sr = load("servicerequest.json")
    sr["foo"] = NHS_NUMBER
    err = raises(sr)
    assert (err.status, err.code) == (400, "structure")
    assert "ServiceRequest.foo: unknown element" in str(err)
    assert err.expression == ["ServiceRequest.foo"]
    assert NHS_NUMBER not in json.dumps(err.to_outcome())


def test_missing_required_element_is_400_required() -> None:
    task = load("task.json")
    del task["intent"]
    err = raises(task)
    assert (err.status, err.code) == (400, "required")
    assert "Task.intent: field required" in str(err)
    assert err.expression == ["Task.intent"]


def test_bad_date_is_reported_without_the_value() -> None:
    patient = load("patient.json")
    patient["birthDate"] = "1948-02-30"
    err = raises(patient)
    assert err.expression == ["Patient.birthDate"]
    assert "1948-02-30" not in str(err)


def test_wrong_type_deep_inside_reports_the_fhirpath() -> None:
    patient = load("patient.json")
    patient["identifier"][0]["value"] = 9434765919
    err = raises(patient)
    assert err.expression == ["Patient.identifier[0].value"]
    assert NHS_NUMBER not in str(err)


@pytest.mark.parametrize(
    ("change", "path"),
    [
        # fhir.resources would parse a string holding JSON as the object it should be.
        ({"subject": '{"reference": "Patient/1"}'}, "ServiceRequest.subject"),
        ({"doNotPerform": "true"}, "ServiceRequest.doNotPerform"),  # booleans accept "true"
        ({"doNotPerform": 1}, "ServiceRequest.doNotPerform"),
        ({"priority": None}, "ServiceRequest.priority"),  # JSON null is not FHIR JSON
        ({"fhir_comments": "x"}, "ServiceRequest.fhir_comments"),  # pydantic-only names
        ({"status__ext": {"id": "x"}}, "ServiceRequest.status__ext"),
        ({"category": {"text": "x"}}, "ServiceRequest.category"),  # 0..* must be an array
    ],
)
def test_lenient_model_inputs_are_refused(change: dict[str, Any], path: str) -> None:
    sr = load("servicerequest.json")
    sr.update(change)
    err = raises(sr)
    assert (err.status, err.code) == (400, "structure")
    assert path in (err.expression or [])


def test_json_number_types_are_checked() -> None:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "SWEMWBS"},
        "valueQuantity": {"value": "21.54"},
    }
    assert raises(obs).expression == ["Observation.valueQuantity.value"]
    obs["valueQuantity"]["value"] = 21.54
    assert validate_resource(obs) == "Observation"


def test_primitive_arrays_may_hold_null_paired_with_extensions() -> None:
    patient = load("patient.json")
    patient["name"][0]["given"] = ["Grace", None]
    patient["name"][0]["_given"] = [None, {"extension": [{"url": "http://x", "valueString": "y"}]}]
    assert validate_resource(patient) == "Patient"


def test_contained_resources_must_be_known_resources() -> None:
    task = load("task.json")
    task["contained"] = [{"resourceType": "Nope", "id": "a"}]
    err = raises(task)
    assert err.code == "structure"
    assert err.expression == ["Task.contained[0].resourceType"]
    task["contained"] = [{"resourceType": "Practitioner", "id": "a", "bogus": 1}]
    assert raises(task).expression == ["Task.contained[0].bogus"]


# --- Bundles --------------------------------------------------------------------------------------


def bundle_entry(bundle: dict[str, Any], resource_type: str) -> dict[str, Any]:
    entry: dict[str, Any] = next(
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type
    )
    return entry


def test_bundle_entries_are_validated_by_their_own_model() -> None:
    bundle = load("referral-bundle.json")
    del bundle_entry(bundle, "ServiceRequest")["intent"]
    err = raises(bundle)
    assert err.code == "required"
    assert err.expression == ["Bundle.entry[2].resource.intent"]


def test_bundle_entry_unknown_element_has_entry_path() -> None:
    bundle = load("referral-bundle.json")
    bundle_entry(bundle, "Patient")["nhsNumber"] = NHS_NUMBER
    err = raises(bundle)
    assert err.expression == ["Bundle.entry[0].resource.nhsNumber"]
    assert NHS_NUMBER not in str(err)


def test_bundle_entry_of_unsupported_type_is_not_supported() -> None:
    bundle = load("referral-bundle.json")
    bundle["entry"].append({"resource": {"resourceType": "Practitioner"}})
    err = raises(bundle)
    assert (err.status, err.code) == (400, "not-supported")
    assert err.expression == ["Bundle.entry[3].resource"]


@pytest.mark.parametrize(
    "resource",
    [{"resourceType": "NotAType"}, {"resourceType": 7}, {"id": "x"}, "{}", ["x"]],
)
def test_bundle_entry_without_a_usable_resource_type_is_400(resource: object) -> None:
    bundle = load("referral-bundle.json")
    bundle["entry"][0]["resource"] = resource
    err = raises(bundle)
    assert err.status == 400
    assert err.code in {"structure", "not-supported"}


def test_validation_leaves_the_dict_untouched() -> None:
    bundle = load("referral-bundle.json")
    before = copy.deepcopy(bundle)
    validate_resource(bundle)
    assert orjson.dumps(bundle) == orjson.dumps(before)
