"""search_params: index extraction per resource type, date search values and token syntax."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fhir_adapters import codes
from fhir_adapters.outcome import FhirError
from fhir_adapters.search_params import (
    PARAMS,
    IndexEntry,
    index_entries,
    parse_search_date,
    parse_token,
)

DATA = Path(__file__).resolve().parents[1] / "data"
PRACTICE = "Organization/0b6e3c36-0d3c-4d5e-9a0b-3c1f6c7b2a10"
PATIENT = "Patient/3f9a1c2e-7b4d-4e8f-a6c5-1d2e3f4a5b6c"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text())
    return data


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, sec: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, sec, micro, tzinfo=UTC)


def named(entries: list[IndexEntry], name: str) -> list[IndexEntry]:
    return [e for e in entries if e.name == name]


def test_params_cover_the_design_search_parameters() -> None:
    assert {"status", "owner", "requester", "focus", "patient", "part-of"} <= PARAMS["Task"].keys()
    assert PARAMS["Task"]["authored-on"] == "date"
    assert {"status", "patient", "requester", "category", "code", "identifier"} <= PARAMS[
        "ServiceRequest"
    ].keys()
    assert {"patient", "based-on", "code", "category", "date", "derived-from"} <= PARAMS[
        "Observation"
    ].keys()
    assert {"patient", "based-on", "status", "date"} <= PARAMS["Procedure"].keys()
    assert set(PARAMS["Patient"].values()) <= {"token", "reference", "date"}


def test_task_entries() -> None:
    task = load("task.json")
    task["partOf"] = [{"reference": "Task/parent-1"}]
    task["businessStatus"] = {
        "coding": [{"system": codes.SPIS_CODESYSTEM_BASE + "/bs", "code": "m"}]
    }
    entries = index_entries("Task", task)
    assert named(entries, "status") == [IndexEntry("status", "requested")]
    assert named(entries, "intent") == [IndexEntry("intent", "order")]
    assert named(entries, "code") == [
        IndexEntry("code", codes.TASK_CODE_FULFILL, codes.TASK_CODE_SYSTEM)
    ]
    assert named(entries, "requester") == [IndexEntry("requester", PRACTICE)]
    # `patient` is searched through `subject`'s rows (stored_name): no rows of its own
    assert named(entries, "subject") == [IndexEntry("subject", PATIENT)]
    assert named(entries, "patient") == []
    assert named(entries, "focus")[0].value is not None
    assert named(entries, "focus")[0].value.startswith("ServiceRequest/")  # type: ignore[union-attr]
    assert named(entries, "part-of") == [IndexEntry("part-of", "Task/parent-1")]
    assert named(entries, "business-status")[0].value == "m"
    [authored] = named(entries, "authored-on")
    assert authored.start == utc(2024, 5, 1, 9, 20)  # +01:00 -> UTC
    assert authored.end == utc(2024, 5, 1, 9, 20, 0, 999_999)


def test_patient_param_only_indexes_patient_targets() -> None:
    task = load("task.json")
    task["for"] = {"reference": "Group/g1"}
    entries = index_entries("Task", task)
    assert named(entries, "patient") == []
    assert named(entries, "subject") == [IndexEntry("subject", "Group/g1")]


def test_unsplittable_references_are_skipped() -> None:
    sr = load("servicerequest.json")
    sr["subject"] = {"reference": "urn:uuid:7c4f3a2b-1e0d-4c9b-8a7f-6e5d4c3b2a19"}
    sr["supportingInfo"] = [{"reference": "Patient?identifier=x|y"}, {"display": "no ref"}]
    entries = index_entries("ServiceRequest", sr)
    assert named(entries, "subject") == named(entries, "supporting-info") == []


def test_absolute_references_index_as_type_and_id() -> None:
    sr = load("servicerequest.json")
    sr["requester"] = {"reference": "https://gp.example.nhs.uk/fhir/Organization/o1/_history/2"}
    assert named(index_entries("ServiceRequest", sr), "requester") == [
        IndexEntry("requester", "Organization/o1")
    ]


def test_service_request_entries() -> None:
    entries = index_entries("ServiceRequest", load("servicerequest.json"))
    assert IndexEntry("status", "active") in entries
    assert IndexEntry("intent", "order") in entries
    assert (
        IndexEntry("identifier", "REF-0001", "https://fhir.example-practice.nhs.uk/referral-id")
        in entries
    )
    assert IndexEntry("category", codes.SOCIAL_SERVICE_PROCEDURE, codes.SNOMED) in entries
    assert IndexEntry("code", codes.SOCIAL_PRESCRIBING_REFERRAL, codes.SNOMED) in entries
    assert IndexEntry("subject", PATIENT) in entries
    assert named(entries, "patient") == []  # searched through `subject` (stored_name)
    assert named(entries, "supporting-info")[0].value.startswith("Consent/")  # type: ignore[union-attr]
    assert len(named(entries, "authored")) == 1


def test_entries_are_deduplicated() -> None:
    sr = load("servicerequest.json")
    sr["category"] = sr["category"] * 3
    assert len(named(index_entries("ServiceRequest", sr), "category")) == 1


def test_observation_entries_with_effective_period() -> None:
    obs = {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": codes.SNOMED, "code": "718466001"}], "text": "SWEMWBS"},
        "subject": {"reference": PATIENT},
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "derivedFrom": [{"reference": "QuestionnaireResponse/qr1"}],
        "effectivePeriod": {"start": "2024-05", "end": "2024-06-15"},
    }
    entries = index_entries("Observation", obs)
    assert IndexEntry("code", "718466001", codes.SNOMED) in entries
    assert IndexEntry("based-on", "ServiceRequest/sr1") in entries
    assert IndexEntry("derived-from", "QuestionnaireResponse/qr1") in entries
    assert named(entries, "category")[0].value == "survey"
    [date] = named(entries, "date")
    assert (date.start, date.end) == (utc(2024, 5, 1), utc(2024, 6, 15, 23, 59, 59, 999_999))


def test_open_period_end_is_none() -> None:
    proc = {
        "resourceType": "Procedure",
        "status": "in-progress",
        "subject": {"reference": PATIENT},
        "performedPeriod": {"start": "2024-05-03T10:00:00Z"},
    }
    [date] = named(index_entries("Procedure", proc), "date")
    assert (date.start, date.end) == (utc(2024, 5, 3, 10), None)


def test_procedure_entries() -> None:
    proc = {
        "resourceType": "Procedure",
        "status": "completed",
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "category": {"coding": [{"system": codes.SNOMED, "code": codes.SOCIAL_SERVICE_PROCEDURE}]},
        "subject": {"reference": PATIENT},
        "performedDateTime": "2024",
    }
    entries = index_entries("Procedure", proc)
    assert IndexEntry("status", "completed") in entries
    assert IndexEntry("category", codes.SOCIAL_SERVICE_PROCEDURE, codes.SNOMED) in entries
    assert IndexEntry("subject", PATIENT) in entries
    [date] = named(entries, "date")
    assert (date.start, date.end) == (utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59, 999_999))


def test_patient_entries_hold_nothing_that_identifies_a_person() -> None:
    patient = load("patient.json")
    entries = index_entries("Patient", patient)
    assert (
        IndexEntry("identifier", "9434765919", codes.NHS_NUMBER_SYSTEM) in entries
    )  # blind-indexed by the store
    assert IndexEntry("gender", "female") in entries
    assert {e.name for e in entries} == {"identifier", "gender"}  # no birth date, no name


def test_a_partial_month_date_covers_the_whole_month() -> None:
    procedure = {"resourceType": "Procedure", "status": "completed", "performedDateTime": "1948-02"}
    [date] = named(index_entries("Procedure", procedure), "date")
    assert (date.start, date.end) == (utc(1948, 2, 1), utc(1948, 2, 29, 23, 59, 59, 999_999))


def test_consent_entries() -> None:
    entries = index_entries("Consent", load("consent.json"))
    assert IndexEntry("status", "active") in entries
    assert IndexEntry("scope", "patient-privacy", codes.CONSENT_SCOPE_SYSTEM) in entries
    assert IndexEntry("category", "59284-0", "http://loinc.org") in entries
    assert IndexEntry("patient", PATIENT) in entries
    assert named(entries, "date")[0].start == utc(2024, 5, 1, 9, 15)


def test_condition_entries() -> None:
    condition = {
        "resourceType": "Condition",
        "subject": {"reference": PATIENT},
        "code": {"coding": [{"system": codes.SNOMED, "code": "422650009"}]},
        "category": [{"coding": [{"system": "http://x", "code": "problem-list-item"}]}],
    }
    entries = index_entries("Condition", condition)
    assert IndexEntry("code", "422650009", codes.SNOMED) in entries
    assert IndexEntry("subject", PATIENT) in entries
    assert IndexEntry("category", "problem-list-item", "http://x") in entries


def test_questionnaire_response_entries() -> None:
    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "questionnaire": "https://spis.example.org/fhir/Questionnaire/swemwbs|1.0",
        "subject": {"reference": PATIENT},
        "basedOn": [{"reference": "ServiceRequest/sr1"}],
        "authored": "2024-05-20T09:30:00+00:00",
    }
    entries = index_entries("QuestionnaireResponse", qr)
    questionnaire = {e.value for e in named(entries, "questionnaire")}
    assert questionnaire == {
        "https://spis.example.org/fhir/Questionnaire/swemwbs",
        "Questionnaire/swemwbs",
    }
    assert IndexEntry("based-on", "ServiceRequest/sr1") in entries
    assert IndexEntry("status", "completed") in entries
    assert named(entries, "authored")[0].start == utc(2024, 5, 20, 9, 30)


def test_unknown_type_has_no_entries() -> None:
    assert index_entries("Bundle", load("referral-bundle.json")) == []
    assert index_entries("Nope", {}) == []


# --- parse_search_date ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024", ("eq", utc(2024, 1, 1), utc(2024, 12, 31, 23, 59, 59, 999_999))),
        ("ge2024-02", ("ge", utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999_999))),
        ("lt2023-02-28", ("lt", utc(2023, 2, 28), utc(2023, 2, 28, 23, 59, 59, 999_999))),
        ("gt2024-05-03T10:00Z", ("gt", utc(2024, 5, 3, 10), utc(2024, 5, 3, 10, 0, 59, 999_999))),
        (
            "sa2024-05-03T10:00:00+01:00",
            ("sa", utc(2024, 5, 3, 9), utc(2024, 5, 3, 9, 0, 0, 999_999)),
        ),
        (
            "eb2024-05-03T10:00:00.5Z",
            ("eb", utc(2024, 5, 3, 10, 0, 0, 500_000), utc(2024, 5, 3, 10, 0, 0, 599_999)),
        ),
        ("ne2024-12", ("ne", utc(2024, 12, 1), utc(2024, 12, 31, 23, 59, 59, 999_999))),
        (
            "le2024-05-03T10:00:00 01:00",
            ("le", utc(2024, 5, 3, 9), utc(2024, 5, 3, 9, 0, 0, 999_999)),
        ),
        ("9999", ("eq", utc(9999, 1, 1), datetime.max.replace(tzinfo=UTC))),
    ],
)
def test_parse_search_date(value: str, expected: tuple[str, datetime, datetime]) -> None:
    assert parse_search_date(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ap2024",
        "xx2024",
        "24",
        "2024-13",
        "2024-02-30",
        "2024-05-03T24:00Z",
        "2024-05-03T10",
        "2024-05-03 10:00",
        "2024-05-03T10:00+15:00",
        "0000",
        "yesterday",
        "2024-5-3",
    ],
)
def test_invalid_search_dates_are_400(value: str) -> None:
    with pytest.raises(FhirError) as caught:
        parse_search_date(value)
    assert (caught.value.status, caught.value.code) == (400, "invalid")
    if value:
        assert value not in str(caught.value)  # may be a birth date


# --- parse_token ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "http://snomed.info/sct|871731000000106",
            ("http://snomed.info/sct", "871731000000106", True),
        ),
        ("|active", (None, "active", True)),
        ("active", (None, "active", False)),
        ("https://fhir.nhs.uk/Id/nhs-number|", ("https://fhir.nhs.uk/Id/nhs-number", None, True)),
        ("http://x|a|b", ("http://x", "a|b", True)),
        (r"a\|b", (None, "a|b", False)),
        (r"http://x|a\,b", ("http://x", "a,b", True)),
        ("", (None, None, False)),
    ],
)
def test_parse_token(value: str, expected: tuple[str | None, str | None, bool]) -> None:
    assert parse_token(value) == expected
