"""Issue 7 items 18 and 19 at the adapter: modifier extensions are refused wherever they sit, and
a JSON object may not repeat a key (in a resource or a JSON Patch)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import (
    DuplicateKeyError,
    load_json,
    load_json_patch,
    loads_unique,
    validate_resource,
)

DATA = Path(__file__).resolve().parents[1] / "data"
MODIFIER = [
    {"url": "https://example.org/fhir/StructureDefinition/not-really", "valueBoolean": True}
]


def bundle() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / "referral-bundle.json").read_text())
    return data


def refused(data: dict[str, Any]) -> FhirError:
    with pytest.raises(FhirError) as caught:
        validate_resource(data)
    return caught.value


# --- item 18: modifierExtension -----------------------------------------------------------------


def _on_resource(b: dict[str, Any]) -> str:
    b["entry"][2]["resource"]["modifierExtension"] = MODIFIER
    return "Bundle.entry[2].resource.modifierExtension"


def _on_nested_provision(b: dict[str, Any]) -> str:
    b["entry"][1]["resource"]["provision"]["provision"][1]["modifierExtension"] = MODIFIER
    return "Bundle.entry[1].resource.provision.provision[1].modifierExtension"


def _on_entry_request(b: dict[str, Any]) -> str:
    b["entry"][0]["request"]["modifierExtension"] = MODIFIER
    return "Bundle.entry[0].request.modifierExtension"


def _on_contained(b: dict[str, Any]) -> str:
    sr = b["entry"][2]["resource"]
    sr["contained"] = [
        {"resourceType": "Condition", "id": "c1", "subject": sr["subject"]},
        {
            "resourceType": "Condition",
            "id": "c2",
            "subject": sr["subject"],
            "modifierExtension": MODIFIER,
        },
    ]
    return "Bundle.entry[2].resource.contained[1].modifierExtension"


def _on_patient_contact(b: dict[str, Any]) -> str:
    b["entry"][0]["resource"]["contact"] = [{"name": {"text": "x"}, "modifierExtension": MODIFIER}]
    return "Bundle.entry[0].resource.contact[0].modifierExtension"


@pytest.mark.parametrize(
    "place",
    [_on_resource, _on_nested_provision, _on_entry_request, _on_contained, _on_patient_contact],
)
def test_a_modifier_extension_anywhere_is_refused_with_its_path(place: Any) -> None:
    data = bundle()
    where = place(data)

    err = refused(data)

    assert err.status == 422
    [issue] = err.to_outcome()["issue"]
    assert issue["code"] == "extension"
    assert issue["expression"] == [where]
    assert "modifier extension" in issue["diagnostics"]
    assert "not-really" not in issue["diagnostics"]  # the client's URL is not echoed


def test_every_modifier_extension_is_reported() -> None:
    data = bundle()
    wheres = {_on_resource(data), _on_entry_request(data)}

    issues = refused(data).to_outcome()["issue"]

    assert {issue["expression"][0] for issue in issues} == wheres


def test_plain_extensions_are_accepted() -> None:
    data = bundle()
    data["entry"][2]["resource"]["extension"] = MODIFIER
    assert validate_resource(data) == "Bundle"


def test_a_structural_error_is_reported_before_the_modifier() -> None:
    data = bundle()
    _on_resource(data)
    data["entry"][2]["resource"]["status"] = 1

    assert refused(data).status == 400


# --- item 19: duplicate keys --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"resourceType": "Patient", "resourceType": "Patient"}', "resourceType"),
        (b'{"resourceType":"Patient","gender":"male","gender":"female"}', "gender"),
        (b'{"a": {"b": [{"c": 1, "d": {"e": 1, "e": {"f": "x"}}}]}}', "e"),
        # A quote and backslashes inside strings must not hide the repeat from the count.
        (b'{"a": "say \\"hi\\"", "b": "\\\\", "b": "\\\\\\""}', "b"),
    ],
)
def test_a_repeated_key_is_400_and_named(body: bytes, key: str) -> None:
    with pytest.raises(FhirError) as caught:
        load_json(body)

    assert (caught.value.status, caught.value.code) == (400, "structure")
    assert str(caught.value) == f'Request body has a JSON object with "{key}" more than once'


def test_a_repeated_key_that_is_client_text_is_not_echoed() -> None:
    with pytest.raises(FhirError) as caught:
        load_json(b'{"resourceType":"Patient","Grace Okafor":1,"Grace Okafor":2}')
    assert "Grace" not in str(caught.value)
    assert "a key" in str(caught.value)


def test_a_json_patch_with_a_repeated_key_is_refused() -> None:
    body = b'[{"op": "replace", "path": "/status", "value": "active", "value": "revoked"}]'
    with pytest.raises(FhirError) as caught:
        load_json_patch(body)
    assert caught.value.status == 400
    assert '"value" more than once' in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        (DATA / "referral-bundle.json").read_bytes(),
        orjson.dumps(bundle()),
        # The same key in sibling objects is no repeat; quotes and backslashes in values.
        b'{"a": {"k": 1}, "b": {"k": 2}, "c": "\\"k\\": 1, \\"k\\"", "d": "\\\\", "e": ["\\\\\\""]}',
        b'{"resourceType": "Patient", "text": {"div": "<div xmlns=\\"http://www.w3.org/1999/xhtml\\">x</div>"}}',
    ],
)
def test_bodies_without_repeats_load_unchanged(body: bytes) -> None:
    assert load_json(body) == json.loads(body)


def test_loads_unique_names_the_key() -> None:
    with pytest.raises(DuplicateKeyError) as caught:
        loads_unique(b'{"alias": "a", "alias": "b"}')
    assert caught.value.key == "alias"
    assert loads_unique('{"alias": "a"}') == {"alias": "a"}


def test_the_dedicated_check_agrees_with_the_standard_library_on_every_test_payload() -> None:
    for path in sorted(DATA.glob("*.json")):
        body = path.read_bytes()
        assert load_json(body) == loads_unique(body)
        minified = orjson.dumps(copy.deepcopy(json.loads(body)))
        assert load_json(minified) == json.loads(body)
