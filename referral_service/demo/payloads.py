"""The referral a GP system sends: Patient + Consent + ServiceRequest as a transaction Bundle.

Synthetic people only. NHS numbers in the 999 range are reserved for testing by NHS England.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fhir_adapters import codes
from fhir_adapters.questionnaire_form import questionnaire_response
from fhir_adapters.referral_form import ReferralForm
from fhir_adapters.referral_form import referral_bundle as form_bundle

# The demo plays a GP system, so its referrals carry the practice system's own identifiers.
REFERRAL_IDS = "https://fhir.example-practice.nhs.uk/referral-id"


def referral_bundle(
    practice_org_id: str, nhs_number: str, referral_id: str, authored: str
) -> dict[str, Any]:
    """Alex, referred for social isolation with every flow consented: the Bundle the practice
    web form would make (one shape, in fhir_adapters.referral_form)."""
    form = ReferralForm(
        practice_org_id=practice_org_id,
        referral_id=referral_id,
        referral_id_system=REFERRAL_IDS,
        nhs_number=nhs_number,
        family_name="Example",
        given_name="Alex",
        birth_date="1950-04-01",
        postcode="SE6 4RU",
        reason_code=codes.REASON_SOCIAL_ISOLATION,
        reason_text="Alone since retiring and moving to Catford; would like to meet people nearby",
        share_referral=True,
        share_back=True,
        secondary_use=True,
    )
    return form_bundle(form, datetime.fromisoformat(authored))


def swemwbs(patient_ref: str, based_on: str, answers: list[int], authored: str) -> dict[str, Any]:
    """A completed SWEMWBS, as the broker's questionnaire form makes it: item numbers and
    answers only (the wording is licensed)."""
    typed = {str(n): str(answer) for n, answer in enumerate(answers, 1)}
    return questionnaire_response(
        "swemwbs", typed, patient_ref=patient_ref, based_on_ref=based_on, authored=authored
    )
