"""rules: NHS number, UK Core / SDOH profile rules, and reference handling."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fhir_adapters import codes, rules
from fhir_adapters.outcome import FhirError

DATA = Path(__file__).resolve().parents[1] / "data"
Check = Callable[[dict[str, Any]], None]


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def failure(check: Check, data: dict[str, Any]) -> FhirError:
    with pytest.raises(FhirError) as caught:
        check(data)
    assert caught.value.status == 422
    return caught.value


# --- NHS number -----------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["9434765919", "9434765870", "9912003888", "9000000009"])
def test_valid_nhs_numbers(number: str) -> None:
    assert rules.nhs_number_is_valid(number)


def test_check_digit_eleven_becomes_zero() -> None:
    # 9434765870: weighted sum of the first nine digits is a multiple of 11 -> check digit 0.
    weighted = sum(int(d) * w for d, w in zip("943476587", range(10, 1, -1), strict=True))
    assert weighted % 11 == 0
    assert rules.nhs_number_is_valid("9434765870")


@pytest.mark.parametrize("last", "0123456789")
def test_a_computed_check_digit_of_ten_is_never_valid(last: str) -> None:
    # 123456789: weighted sum 210, 210 mod 11 = 1, 11 - 1 = 10.
    assert not rules.nhs_number_is_valid("123456789" + last)


@pytest.mark.parametrize(
    "number",
    [
        "9434765918",  # wrong check digit
        "9912003814",  # a UK Core example that fails the check (standards.md §2.4)
        "943476591",  # 9 digits
        "94347659190",  # 11 digits
        "943 476 5919",  # spaces are not part of the identifier value
        "94347659l9",  # a letter
        "",
        "".join(chr(0xFF10 + int(d)) for d in "9434765919"),  # full-width digits
    ],
)
def test_invalid_nhs_numbers(number: str) -> None:
    assert not rules.nhs_number_is_valid(number)


def test_nhs_number_reads_the_nhs_identifier() -> None:
    patient = load("patient.json")
    patient["identifier"].insert(0, {"system": "https://example.org/mrn", "value": "X1"})
    assert rules.nhs_number(patient) == "9434765919"
    assert rules.nhs_number({"resourceType": "Patient"}) is None


# --- check_patient --------------------------------------------------------------------------------


def test_good_patient_passes() -> None:
    rules.check_patient(load("patient.json"))


def test_patient_without_nhs_number_is_required() -> None:
    patient = load("patient.json")
    patient["identifier"][0]["system"] = "https://example.org/mrn"
    err = failure(rules.check_patient, patient)
    assert (err.code, err.expression) == ("required", ["Patient.identifier"])


def test_patient_with_two_nhs_numbers_breaks_the_profile() -> None:
    patient = load("patient.json")
    patient["identifier"].append({"system": codes.NHS_NUMBER_SYSTEM, "value": "9434765870"})
    err = failure(rules.check_patient, patient)
    assert (err.code, err.expression) == ("business-rule", ["Patient.identifier"])


def test_patient_nhs_number_without_value_is_required() -> None:
    patient = load("patient.json")
    del patient["identifier"][0]["value"]
    err = failure(rules.check_patient, patient)
    assert (err.code, err.expression) == ("required", ["Patient.identifier[0].value"])


def test_failing_modulus_11_is_value_and_not_echoed() -> None:
    patient = load("patient.json")
    patient["identifier"][0]["value"] = "9434765918"
    err = failure(rules.check_patient, patient)
    assert err.code == "value"
    assert str(err) == "Patient.identifier: NHS number fails the Modulus 11 check"
    assert err.expression == ["Patient.identifier[0].value"]
    assert "9434765918" not in json.dumps(err.to_outcome())


@pytest.mark.parametrize("value", ["94347", "94347659180", "943476591X", "943 476 5919"])
def test_an_nhs_number_of_the_wrong_shape_says_so(value: str) -> None:
    patient = load("patient.json")
    patient["identifier"][0]["value"] = value
    err = failure(rules.check_patient, patient)
    assert (err.code, str(err)) == ("value", "Patient.identifier: NHS number is not 10 digits")


# --- check_consent --------------------------------------------------------------------------------


def test_good_consent_passes() -> None:
    rules.check_consent(load("consent.json"))


def _consent_without_scope_coding(consent: dict[str, Any]) -> None:
    consent["scope"]["coding"][0]["code"] = "research"


@pytest.mark.parametrize(
    ("mutate", "code", "expression"),
    [
        (lambda c: c.update(status="signed"), "code-invalid", "Consent.status"),
        (lambda c: c.pop("status"), "required", "Consent.status"),
        (_consent_without_scope_coding, "code-invalid", "Consent.scope.coding"),
        (lambda c: c.pop("scope"), "required", "Consent.scope"),
        (lambda c: c.pop("patient"), "required", "Consent.patient"),
        (lambda c: c.update(patient={"display": "x"}), "required", "Consent.patient"),
        (lambda c: c["provision"].pop("type"), "required", "Consent.provision.type"),
        (lambda c: c.pop("provision"), "required", "Consent.provision.type"),
        (lambda c: c["provision"].update(type="allow"), "code-invalid", "Consent.provision.type"),
    ],
)
def test_bad_consent(
    mutate: Callable[[dict[str, Any]], object], code: str, expression: str
) -> None:
    consent = load("consent.json")
    mutate(consent)
    err = failure(rules.check_consent, consent)
    assert (err.code, err.expression) == (code, [expression])


# --- check_service_request ------------------------------------------------------------------------


def test_good_service_request_passes() -> None:
    rules.check_service_request(load("servicerequest.json"))


@pytest.mark.parametrize(
    ("mutate", "code", "expression"),
    [
        (lambda s: s.update(status="requested"), "code-invalid", "ServiceRequest.status"),
        (lambda s: s.update(intent="filler-order"), "code-invalid", "ServiceRequest.intent"),
        (lambda s: s.update(intent="nonsense"), "code-invalid", "ServiceRequest.intent"),
        (lambda s: s.pop("code"), "required", "ServiceRequest.code"),
        (
            lambda s: s["code"]["coding"][0].update(code="390893007"),
            "code-invalid",
            "ServiceRequest.code.coding",
        ),
        (
            lambda s: s["code"]["coding"][0].update(system="http://example.org/other"),
            "code-invalid",
            "ServiceRequest.code.coding",
        ),
        (lambda s: s.pop("subject"), "required", "ServiceRequest.subject"),
        (lambda s: s.pop("requester"), "required", "ServiceRequest.requester"),
    ],
)
def test_bad_service_request(
    mutate: Callable[[dict[str, Any]], object], code: str, expression: str
) -> None:
    sr = load("servicerequest.json")
    mutate(sr)
    err = failure(rules.check_service_request, sr)
    assert (err.code, err.expression) == (code, [expression])


def test_several_broken_rules_are_reported_together() -> None:
    sr = load("servicerequest.json")
    del sr["subject"], sr["requester"]
    err = failure(rules.check_service_request, sr)
    issues = err.to_outcome()["issue"]
    assert [i["expression"] for i in issues] == [
        ["ServiceRequest.subject"],
        ["ServiceRequest.requester"],
    ]


# --- check_referral_task --------------------------------------------------------------------------


def test_good_referral_task_passes() -> None:
    rules.check_referral_task(load("task.json"))


@pytest.mark.parametrize(
    ("mutate", "code", "expression"),
    [
        (lambda t: t.update(intent="plan"), "code-invalid", "Task.intent"),
        (lambda t: t.pop("intent"), "required", "Task.intent"),
        (lambda t: t.pop("code"), "required", "Task.code"),
        (
            lambda t: t["code"]["coding"][0].update(code="approve"),
            "code-invalid",
            "Task.code.coding",
        ),
        (lambda t: t.pop("focus"), "required", "Task.focus"),
        (lambda t: t.pop("for"), "required", "Task.for"),
        (lambda t: t.pop("requester"), "required", "Task.requester"),
        (lambda t: t.pop("authoredOn"), "required", "Task.authoredOn"),
        (lambda t: t.update(status="received"), "code-invalid", "Task.status"),
        (lambda t: t.update(status="ready"), "code-invalid", "Task.status"),
        (lambda t: t.update(status="rejected"), "required", "Task.statusReason.text"),
        (
            lambda t: t.update(status="on-hold", statusReason={"text": "  "}),
            "required",
            "Task.statusReason.text",
        ),
    ],
)
def test_bad_referral_task(
    mutate: Callable[[dict[str, Any]], object], code: str, expression: str
) -> None:
    task = load("task.json")
    mutate(task)
    err = failure(rules.check_referral_task, task)
    assert (err.code, err.expression) == (code, [expression])


@pytest.mark.parametrize("status", sorted(codes.STATUS_REASON_REQUIRED))
def test_stopping_statuses_pass_with_a_reason(status: str) -> None:
    task = load("task.json")
    task.update(status=status, statusReason={"text": "No capacity in the catchment"})
    rules.check_referral_task(task)


@pytest.mark.parametrize(
    "status", sorted(codes.REFERRAL_TASK_STATUSES - codes.STATUS_REASON_REQUIRED)
)
def test_other_statuses_need_no_reason(status: str) -> None:
    task = load("task.json")
    task["status"] = status
    rules.check_referral_task(task)


def test_referral_task_status_set_is_the_sdoh_one() -> None:
    assert len(codes.REFERRAL_TASK_STATUSES) == 10
    assert not {"ready", "received"} & codes.REFERRAL_TASK_STATUSES


# --- references -----------------------------------------------------------------------------------


def test_reference_reads_the_reference_string() -> None:
    assert rules.reference({"reference": "Patient/1", "display": "x"}) == "Patient/1"
    assert rules.reference({"display": "x"}) is None
    assert rules.reference({"reference": ""}) is None
    assert rules.reference(None) is None


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("Patient/123", ("Patient", "123")),
        (
            "ServiceRequest/c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
            ("ServiceRequest", "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"),
        ),
        ("https://spis.example.org/fhir/Task/abc", ("Task", "abc")),
        ("http://other.example/fhir/R4/Patient/9/_history/3", ("Patient", "9")),
        ("Patient/9/_history/3", ("Patient", "9")),
        ("urn:uuid:7c4f3a2b-1e0d-4c9b-8a7f-6e5d4c3b2a19", None),
        ("urn:oid:1.2.3", None),
        ("Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919", None),
        ("#contained-1", None),
        ("Patient", None),
        ("Patient/", None),
        ("patient/1", None),
        ("Patient/1/extra", None),
        ("Patient/has space", None),
        ("", None),
    ],
)
def test_split_reference(ref: str, expected: tuple[str, str] | None) -> None:
    assert rules.split_reference(ref) == expected


def test_references_finds_every_reference_with_its_path() -> None:
    bundle = load("referral-bundle.json")
    found = dict(rules.references(bundle))
    consent = found[("entry", 1, "resource", "patient", "reference")]
    assert consent.startswith("urn:uuid:")
    # Consent.provision.actor.reference is itself a Reference, hence reference.reference.
    actor: tuple[str | int, ...] = ("entry", 1, "resource", "provision", "provision", 0, "actor", 0)
    actor += ("reference", "reference")
    assert found[actor].startswith("Organization/")
    assert found[("entry", 2, "resource", "supportingInfo", 0, "reference")].startswith("urn:uuid:")


ODD_REFERENCES: dict[str, Any] = {
    "resourceType": "QuestionnaireResponse",
    "contained": [{"resourceType": "Patient", "id": "c", "link": [{"other": {"reference": "a"}}]}],
    "subject": {"reference": "Patient/1", "extension": [{"valueReference": {"reference": "b"}}]},
    "basedOn": [{"reference": "c"}, {"display": "no reference"}, {"reference": 7}, None],
    "nested": [[{"reference": "d"}], [], [[{"reference": "e"}]]],
    "item": [{"answer": [{"valueReference": {"reference": "f"}}]}, {"item": []}],
    "reference": "g",
    "text": "a reference: h",
}


@pytest.mark.parametrize(
    "data",
    [load("referral-bundle.json"), load("task.json"), ODD_REFERENCES, {}, {"reference": None}],
)
def test_reference_strings_are_the_references_in_the_same_order(data: dict[str, Any]) -> None:
    assert rules.reference_strings(data) == [ref for _, ref in rules.references(data)]


def test_reference_strings_in_document_order() -> None:
    expected = ["g", "a", "Patient/1", "b", "c", "d", "e", "f"]
    assert rules.reference_strings(ODD_REFERENCES) == expected


def test_rewrite_references_replaces_bundle_local_ids() -> None:
    bundle = load("referral-bundle.json")
    mapping = {
        bundle["entry"][0]["fullUrl"]: "Patient/p1",
        bundle["entry"][1]["fullUrl"]: "Consent/c1",
    }
    rules.rewrite_references(bundle, mapping)
    consent, sr = bundle["entry"][1]["resource"], bundle["entry"][2]["resource"]
    assert consent["patient"] == {"reference": "Patient/p1"}
    assert sr["subject"] == {"reference": "Patient/p1"}
    assert sr["supportingInfo"] == [{"reference": "Consent/c1"}]
    assert sr["requester"]["reference"].startswith("Organization/")  # untouched
    assert not [ref for _, ref in rules.references(bundle) if ref.startswith("urn:uuid:")]
    assert bundle["entry"][0]["fullUrl"].startswith("urn:uuid:")  # fullUrl is not a Reference
