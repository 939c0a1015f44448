"""The referral a GP system sends: Patient + Consent + ServiceRequest as a transaction Bundle.

Synthetic people only. NHS numbers in the 999 range are reserved for testing by NHS England.
"""

from __future__ import annotations

from typing import Any

NHS = "https://fhir.nhs.uk/Id/nhs-number"
SCT = "http://snomed.info/sct"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
REFERRAL_IDS = "https://fhir.example-practice.nhs.uk/referral-id"
SWEMWBS = "https://spis.example.org/fhir/Questionnaire/swemwbs"


def _permit(code: str, display: str) -> dict[str, Any]:
    return {"type": "permit", "purpose": [{"system": ACT_REASON, "code": code, "display": display}]}


def referral_bundle(
    practice_org_id: str, nhs_number: str, referral_id: str, authored: str
) -> dict[str, Any]:
    patient_url, consent_url, sr_url = (
        f"urn:uuid:00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3)
    )
    practice = {"reference": f"Organization/{practice_org_id}"}
    patient = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS, "value": nhs_number}],
        "name": [{"family": "Example", "given": ["Alex"]}],
        "birthDate": "1950-04-01",
        "address": [{"postalCode": "SE6 4RU"}],
    }
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/consentscope",
                    "code": "patient-privacy",
                }
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": patient_url},
        "dateTime": authored,
        "organization": [practice],
        "provision": {
            **_permit("TREAT", "treatment"),
            "provision": [_permit("COC", "coordination of care"), _permit("HOPERAT", "operations")],
        },
    }
    service_request = {
        "resourceType": "ServiceRequest",
        "identifier": [{"system": REFERRAL_IDS, "value": referral_id}],
        "status": "active",
        "intent": "order",
        "category": [
            {
                "coding": [
                    {"system": SCT, "code": "410606002", "display": "Social service procedure"}
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": SCT,
                    "code": "871731000000106",
                    "display": "Referral to social prescribing service",
                }
            ]
        },
        "subject": {"reference": patient_url},
        "authoredOn": authored,
        "requester": practice,
        "reasonCode": [
            {"coding": [{"system": SCT, "code": "422650009", "display": "Social isolation"}]}
        ],
        "supportingInfo": [{"reference": consent_url}],
    }
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": patient_url,
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": consent_url,
                "resource": consent,
                "request": {"method": "POST", "url": "Consent"},
            },
            {
                "fullUrl": sr_url,
                "resource": service_request,
                "request": {
                    "method": "POST",
                    "url": "ServiceRequest",
                    "ifNoneExist": f"identifier={REFERRAL_IDS}|{referral_id}",
                },
            },
        ],
    }


def swemwbs(patient_ref: str, based_on: str, answers: list[int], authored: str) -> dict[str, Any]:
    """A completed SWEMWBS: item numbers and answers only (the wording is licensed)."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": SWEMWBS,
        "status": "completed",
        "basedOn": [{"reference": based_on}],
        "subject": {"reference": patient_ref},
        "authored": authored,
        "item": [
            {"linkId": str(n), "answer": [{"valueInteger": a}]} for n, a in enumerate(answers, 1)
        ],
    }
