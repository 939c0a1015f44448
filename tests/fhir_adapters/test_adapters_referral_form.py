"""referral_form: the practice's web form becomes the Bundle a GP system sends."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest

from fhir_adapters import codes, rules
from fhir_adapters.outcome import FhirError
from fhir_adapters.parse import validate_resource
from fhir_adapters.referral import home_postcode, needs
from fhir_adapters.referral_form import (
    ReferralForm,
    form_field_of,
    form_problems,
    referral_bundle,
)
from fhir_adapters.search_params import parse_token
from referral_service.consent.rules import NATIONAL_OPT_OUT, Purpose, opted_out, permits
from tests.fixtures.fhir import entry_of, load

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
FORM = ReferralForm(
    practice_org_id="practice-1",
    referral_id="WEB-0001",
    nhs_number="9434765919",
    family_name="Okafor",
    given_name="Grace",
    birth_date="1948-03-12",
    postcode="SE6 4RU",
    reason_text="Lonely since her husband died; would like company on walks",
    share_referral=True,
    share_back=True,
    secondary_use=True,
    phone="020 7946 0123",
    reason_code=codes.REASON_FEELING_LONELY,
    needs=("befriending", "walking-group"),
)


def resource(bundle: dict[str, Any], rtype: str) -> dict[str, Any]:
    found: dict[str, Any] = entry_of(bundle, rtype)["resource"]
    return found


def test_the_bundle_is_valid_fhir_and_passes_the_resource_rules() -> None:
    bundle = referral_bundle(FORM, NOW)

    assert validate_resource(bundle) == "Bundle"
    rules.check_patient(resource(bundle, "Patient"))
    rules.check_consent(resource(bundle, "Consent"))
    rules.check_service_request(resource(bundle, "ServiceRequest"))


def test_the_bundle_has_the_shape_of_the_sample_gp_referral() -> None:
    """Same entries, methods, references and codes as tests/data/referral-bundle.json."""
    sample = load("referral-bundle.json", "practice-1")
    bundle = referral_bundle(FORM, NOW)

    assert bundle["type"] == sample["type"] == "transaction"
    assert [e["request"]["method"] for e in bundle["entry"]] == ["POST"] * 3
    assert [e["request"]["url"] for e in bundle["entry"]] == [
        e["request"]["url"] for e in sample["entry"]
    ]
    for built, expected in zip(bundle["entry"], sample["entry"], strict=True):
        assert built["fullUrl"].startswith("urn:uuid:")
        assert set(built["resource"]) <= set(expected["resource"]) | {"orderDetail", "extension"}
    patient_url, consent_url, _ = (e["fullUrl"] for e in bundle["entry"])
    sr, consent = resource(bundle, "ServiceRequest"), resource(bundle, "Consent")
    sample_sr = resource(sample, "ServiceRequest")
    for name in ("status", "intent", "category", "code", "requester", "priority"):
        assert sr[name] == sample_sr[name], name
    assert sr["subject"] == consent["patient"] == {"reference": patient_url}
    assert sr["supportingInfo"] == [{"reference": consent_url}]
    assert sr["authoredOn"] == consent["dateTime"] == "2026-03-02T09:30:00Z"
    for name in ("status", "scope", "category", "organization", "policyRule"):
        assert consent[name] == resource(sample, "Consent")[name], name


def test_the_person_and_the_referral_are_as_typed() -> None:
    bundle = referral_bundle(FORM, NOW)
    patient, sr = resource(bundle, "Patient"), resource(bundle, "ServiceRequest")

    assert rules.nhs_number(patient) == "9434765919"
    assert patient["name"] == [{"use": "official", "family": "Okafor", "given": ["Grace"]}]
    assert patient["birthDate"] == "1948-03-12"
    assert home_postcode(patient) == "SE6 4RU"
    assert patient["telecom"] == [{"system": "phone", "value": "020 7946 0123", "use": "home"}]
    assert needs(sr) == {"befriending", "walking-group"}
    assert sr["reasonCode"] == [
        {
            "coding": [{"system": codes.SNOMED, "code": "267076002", "display": "Feeling lonely"}],
            "text": "Lonely since her husband died; would like company on walks",
        }
    ]
    assert sr["identifier"] == [{"system": codes.WEB_REFERRAL_ID_SYSTEM, "value": "WEB-0001"}]
    assert entry_of(bundle, "ServiceRequest")["request"]["ifNoneExist"] == (
        f"identifier={codes.WEB_REFERRAL_ID_SYSTEM}|WEB-0001"
    )


def test_the_same_form_gives_the_same_bundle() -> None:
    assert referral_bundle(FORM, NOW) == referral_bundle(FORM, NOW)
    other = referral_bundle(replace(FORM, referral_id="WEB-0002"), NOW)
    assert other["entry"][0]["fullUrl"] != referral_bundle(FORM, NOW)["entry"][0]["fullUrl"]


@pytest.mark.parametrize(
    ("choices", "permitted"),
    [
        ((True, True, True), {Purpose.REFERRAL, Purpose.SHARE_BACK, Purpose.SECONDARY_USE}),
        ((True, False, False), {Purpose.REFERRAL}),
        ((True, False, True), {Purpose.REFERRAL, Purpose.SECONDARY_USE}),
        ((False, True, True), set()),  # nothing flows unless the referral itself may
    ],
)
def test_the_consent_permits_exactly_the_chosen_flows(
    choices: tuple[bool, bool, bool], permitted: set[Purpose]
) -> None:
    share_referral, share_back, secondary_use = choices
    form = replace(
        FORM, share_referral=share_referral, share_back=share_back, secondary_use=secondary_use
    )
    consent = resource(referral_bundle(form, NOW), "Consent")

    rules.check_consent(consent)
    assert {p for p in Purpose if permits(consent, p)} == permitted
    if share_back:  # to the referring practice, and it alone
        assert permits(consent, Purpose.SHARE_BACK, "Organization/practice-1") == share_referral
    assert consent["provision"]["type"] == ("permit" if share_referral else "deny")


def test_the_national_opt_out_is_recorded_on_the_patient() -> None:
    assert codes.NATIONAL_OPT_OUT_EXTENSION == NATIONAL_OPT_OUT
    opted = resource(referral_bundle(replace(FORM, national_opt_out=True), NOW), "Patient")
    assert opted_out(opted)
    assert not opted_out(resource(referral_bundle(FORM, NOW), "Patient"))
    assert validate_resource(referral_bundle(replace(FORM, national_opt_out=True), NOW))


def test_blank_fields_are_left_out_not_sent_empty() -> None:
    form = replace(
        FORM, given_name=" ", phone="", email=None, reason_code=None, needs=(), birth_date=""
    )
    bundle = referral_bundle(form, NOW)
    patient, sr = resource(bundle, "Patient"), resource(bundle, "ServiceRequest")

    validate_resource(bundle)
    assert patient["name"] == [{"use": "official", "family": "Okafor"}]
    assert "telecom" not in patient
    assert "birthDate" not in patient
    assert "orderDetail" not in sr
    assert sr["reasonCode"] == [{"text": FORM.reason_text}]


def test_a_blank_nhs_number_is_left_for_intake_to_refuse() -> None:
    patient = resource(referral_bundle(replace(FORM, nhs_number=""), NOW), "Patient")
    assert patient["identifier"] == [{"system": codes.NHS_NUMBER_SYSTEM}]
    with pytest.raises(FhirError, match="no value") as caught:
        rules.check_patient(patient)
    assert form_field_of(caught.value.issues[0].expression[0]) == "nhs_number"


def test_form_problems_are_what_intake_does_not_check() -> None:
    assert form_problems(FORM) == {}
    blank = replace(FORM, family_name="", postcode=" ", reason_text="", referral_id="")
    assert set(form_problems(blank)) == {"family_name", "postcode", "reason_text", "referral_id"}
    odd = replace(FORM, reason_code="12345", needs=("befriending", "skydiving"))
    assert set(form_problems(odd)) == {"reason_code", "needs"}
    # An NHS number that fails Modulus 11 is intake's to refuse, with its own message.
    assert form_problems(replace(FORM, nhs_number="9434765918")) == {}


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("Patient.identifier[0].value", "nhs_number"),
        ("Patient.identifier", "nhs_number"),
        ("Bundle.entry[0].resource.identifier[0].value", "nhs_number"),
        ("Bundle.entry[0].resource.birthDate", "birth_date"),
        ("Bundle.entry[0].resource.name[0].family", "family_name"),
        ("Bundle.entry[0].resource.name[0].given[0]", "given_name"),
        ("Bundle.entry[0].resource.address[0].postalCode", "postcode"),
        ("ServiceRequest.supportingInfo", "share_referral"),
        ("Bundle.entry[2].resource.identifier[0].value", "referral_id"),
        ("Bundle.entry[2].request.ifNoneExist", "referral_id"),
        ("ServiceRequest.reasonCode[0].coding[0].code", "reason_code"),
        ("ServiceRequest.reasonCode[0].text", "reason_text"),
        ("Bundle.entry[2].resource.orderDetail[1]", "needs"),
        ("ServiceRequest.requester", None),
        ("Bundle.entry[2].resource.subject", None),
        ("Bundle.entry[7].resource.birthDate", None),
        ("Bundle.type", None),
        ("Patient.birthDateX", None),
    ],
)
def test_form_field_of(expression: str, field: str | None) -> None:
    assert form_field_of(expression) == field


def test_now_must_say_its_time_zone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        referral_bundle(FORM, datetime(2026, 3, 2, 9, 30))


@pytest.mark.parametrize("referral_id", ["WEB-0001", "a|b,c$d\\e & f=g%/h"])
def test_if_none_exist_round_trips_any_identifier(referral_id: str) -> None:
    bundle = referral_bundle(replace(FORM, referral_id=referral_id), NOW)
    condition = entry_of(bundle, "ServiceRequest")["request"]["ifNoneExist"]

    [(name, value)] = parse_qsl(condition, keep_blank_values=True)

    assert (name, parse_token(value)) == (
        "identifier",
        (codes.WEB_REFERRAL_ID_SYSTEM, referral_id, True),
    )


def test_no_condition_without_an_identifier() -> None:
    bundle = referral_bundle(replace(FORM, referral_id=" "), NOW)
    assert "ifNoneExist" not in entry_of(bundle, "ServiceRequest")["request"]
    assert "value" not in entry_of(bundle, "ServiceRequest")["resource"]["identifier"][0]
