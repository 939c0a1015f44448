"""The practice's referral form -> the transaction Bundle a GP system sends (DESIGN §3 step 1).

The web page goes through the same intake as a FHIR client, so this builds exactly what a GP system
posts to ``/fhir``: Patient + Consent + ServiceRequest with ``urn:uuid`` fullUrls and
``ifNoneExist`` on the referral identifier. Pure: no database, no HTTP.

What the person typed is carried as typed (trimmed); a blank field is left out. Checking it is
intake's job (NHS number, dates, the Consent), so a page shows intake's own messages: run the
Bundle through ``parse.validate_resource`` and ``referrals.service.submit`` like ``POST /fhir``
does, and put each issue next to its input with ``form_field_of``. ``form_problems`` reports only
what intake does not check: the form's own required fields and its code lists.

A resend must be the same content (intake answers it from the first submission, else 409): keep
the referral identifier and ``now`` of the first attempt, e.g. in hidden fields.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import quote

from fhir_adapters import codes

UK_CORE_PATIENT: Final = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
# The fullUrls are derived from the referral, so the same form gives the same Bundle.
_URN_NAMESPACE: Final = uuid.UUID("5b0c8f8e-3c1e-4f43-9d59-2f1d7f0e6a11")
PATIENT_ENTRY, CONSENT_ENTRY, SERVICE_REQUEST_ENTRY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class ReferralForm:
    """What practice staff fill in. Strings as typed; optional ones blank or None when not given.

    ``needs`` are OFFER_CATEGORIES codes; ``reason_code`` a REFERRAL_REASONS code. The three
    consent choices are the person's answers to the three questions of DESIGN §6;
    ``national_opt_out`` records that they registered a national data opt-out.
    """

    practice_org_id: str
    referral_id: str
    nhs_number: str
    family_name: str
    given_name: str
    birth_date: str  # YYYY-MM-DD, as an HTML date input sends it
    postcode: str
    reason_text: str
    share_referral: bool
    share_back: bool
    secondary_use: bool
    national_opt_out: bool = False
    phone: str | None = None
    email: str | None = None
    reason_code: str | None = None
    needs: Sequence[str] = ()
    referral_id_system: str = codes.WEB_REFERRAL_ID_SYSTEM


# --- the form's own checks ------------------------------------------------------------------------

_REQUIRED: Final = {
    "referral_id": "A referral identifier is needed",
    "nhs_number": "Enter the person's NHS number",
    "family_name": "Enter the person's family name",
    "postcode": "Enter the person's home postcode: time banks are chosen by it",
    "reason_text": "Say why you are referring the person: the time bank reads this",
}


def form_problems(form: ReferralForm) -> dict[str, str]:
    """Field name -> message for what intake does not check; empty when the form may be sent."""
    problems = {name: msg for name, msg in _REQUIRED.items() if not _text(getattr(form, name))}
    if form.reason_code and form.reason_code not in codes.REFERRAL_REASONS:
        problems["reason_code"] = "Choose a reason from the list"
    if any(need not in codes.OFFER_CATEGORIES for need in form.needs):
        problems["needs"] = "Choose needs from the list"
    return problems


# --- the Bundle -----------------------------------------------------------------------------------


def referral_bundle(form: ReferralForm, now: datetime) -> dict[str, Any]:
    """The transaction Bundle for ``form``, authored at ``now`` (an aware datetime)."""
    urls = _full_urls(form)
    when = _instant(now)
    entries = [
        _entry(urls[0], patient(form), "Patient"),
        _entry(urls[1], consent(form, urls[0], when), "Consent"),
        _entry(urls[2], service_request(form, urls[0], urls[1], when), "ServiceRequest"),
    ]
    if referral_id := _text(form.referral_id):
        condition = if_none_exist(form.referral_id_system, referral_id)
        entries[SERVICE_REQUEST_ENTRY]["request"]["ifNoneExist"] = condition
    return {"resourceType": "Bundle", "type": "transaction", "timestamp": when, "entry": entries}


def if_none_exist(system: str, value: str) -> str:
    """``identifier=<system>|<value>`` as a conditional create's query: FHIR search escaping
    (``\\``, ``|``, ``,``, ``$``), then URL encoding, so any identifier round-trips."""
    return "identifier=" + "|".join(
        quote(_SEARCH_SPECIAL.sub(r"\\\g<0>", part), safe=":/") for part in (system, value)
    )


_SEARCH_SPECIAL: Final = re.compile(r"[\\|,$]")


def _full_urls(form: ReferralForm) -> list[str]:
    seed = f"{form.practice_org_id}|{form.referral_id_system}|{form.referral_id}"
    return [f"urn:uuid:{uuid.uuid5(_URN_NAMESPACE, f'{seed}|{rtype}')}" for rtype in _TYPES]


_TYPES: Final = ("Patient", "Consent", "ServiceRequest")


def _entry(full_url: str, resource: dict[str, Any], rtype: str) -> dict[str, Any]:
    return {"fullUrl": full_url, "resource": resource, "request": {"method": "POST", "url": rtype}}


def patient(form: ReferralForm) -> dict[str, Any]:
    """UK Core Patient: NHS number, name, contact, birth date, home postcode, and the opt-out."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": {"profile": [UK_CORE_PATIENT]},
        "identifier": [_drop_blank({"system": codes.NHS_NUMBER_SYSTEM, "value": form.nhs_number})],
    }
    if form.national_opt_out:
        opt_out = {"url": codes.NATIONAL_OPT_OUT_EXTENSION, "valueBoolean": True}
        resource["extension"] = [opt_out]
    name = _drop_blank({"use": "official", "family": form.family_name})
    if given := _text(form.given_name):
        name["given"] = [given]
    resource["name"] = [name]
    telecom = [
        _drop_blank({"system": system, "value": value, "use": "home"})
        for system, value in (("phone", form.phone), ("email", form.email))
        if _text(value)
    ]
    if telecom:
        resource["telecom"] = telecom
    if birth_date := _text(form.birth_date):
        resource["birthDate"] = birth_date
    resource["address"] = [_drop_blank({"use": "home", "postalCode": form.postcode})]
    return resource


def consent(form: ReferralForm, patient_url: str, when: str) -> dict[str, Any]:
    """The person's three choices (DESIGN §6) as one Consent.

    The root provision is the referral itself: a permit for TREAT when the person agreed, else a
    deny (so that a FHIR reader does not take a bare root permit as "everything"). Share-back and
    secondary use are nested permits, present only when chosen: deny is the default.
    """
    practice = {"reference": f"Organization/{form.practice_org_id}"}
    nested = []
    if form.share_back:
        nested.append(_share_back(practice))
    if form.secondary_use:
        nested.append(_flow("permit", codes.CONSENT_FLOW_SECONDARY_USE, codes.PURPOSE_HOPERAT))
    root = _flow(
        "permit" if form.share_referral else "deny",
        codes.CONSENT_FLOW_REFERRAL,
        codes.PURPOSE_TREAT,
    )
    root["period"] = {"start": when[:10]}
    if nested:
        root["provision"] = nested
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": _concept(
            codes.CONSENT_SCOPE_SYSTEM, codes.CONSENT_SCOPE_PATIENT_PRIVACY, "Privacy Consent"
        ),
        "category": [
            _concept(codes.LOINC, codes.CONSENT_CATEGORY_PATIENT_CONSENT, "Patient Consent")
        ],
        "patient": {"reference": patient_url},
        "dateTime": when,
        "organization": [practice],
        "policyRule": _concept(codes.ACT_CODE_SYSTEM, codes.POLICY_OPT_IN, "opt-in"),
        "provision": root,
    }


_FLOW_DISPLAY: Final = {
    codes.CONSENT_FLOW_REFERRAL: "Referral details shared with the time bank",
    codes.CONSENT_FLOW_SHARE_BACK: "Activities and scores shared back with the GP",
    codes.CONSENT_FLOW_SECONDARY_USE: "Use in health board aggregates",
}
_PURPOSE_DISPLAY: Final = {
    codes.PURPOSE_TREAT: "treatment",
    codes.PURPOSE_COC: "coordination of care",
    codes.PURPOSE_HOPERAT: "healthcare operations",
}


def _flow(kind: str, flow: str, purpose: str) -> dict[str, Any]:
    """A provision naming one flow twice over: SPIS's flow code and the v3 purpose of use."""
    return {
        "type": kind,
        "code": [_concept(codes.CONSENT_FLOW_SYSTEM, flow, _FLOW_DISPLAY[flow])],
        "purpose": [_coding(codes.PURPOSE_OF_USE_SYSTEM, purpose, _PURPOSE_DISPLAY[purpose])],
    }


def _share_back(practice: dict[str, str]) -> dict[str, Any]:
    """Share-back is disclosure to the referring practice, so it names the practice as recipient."""
    provision = _flow("permit", codes.CONSENT_FLOW_SHARE_BACK, codes.PURPOSE_COC)
    provision["action"] = [
        {"coding": [{"system": codes.CONSENT_ACTION_SYSTEM, "code": codes.CONSENT_ACTION_DISCLOSE}]}
    ]
    role = _concept(
        codes.PARTICIPATION_TYPE_SYSTEM,
        codes.PARTICIPATION_INFORMATION_RECIPIENT,
        "information recipient",
    )
    provision["actor"] = [{"role": role, "reference": dict(practice)}]
    return provision


def service_request(
    form: ReferralForm, patient_url: str, consent_url: str, when: str
) -> dict[str, Any]:
    """The referral: SNOMED 871731000000106, requested by the practice, with the needs as
    orderDetail (what routing matches against time banks' offers) and the Consent as support."""
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "identifier": [_drop_blank({"system": form.referral_id_system, "value": form.referral_id})],
        "status": "active",
        "intent": "order",
        "category": [
            _concept(codes.SNOMED, codes.SOCIAL_SERVICE_PROCEDURE, "Social service procedure")
        ],
        "priority": "routine",
        "code": _concept(
            codes.SNOMED,
            codes.SOCIAL_PRESCRIBING_REFERRAL,
            "Referral to social prescribing service",
        ),
    }
    if form.needs:
        resource["orderDetail"] = [_need(need) for need in form.needs]
    resource |= {
        "subject": {"reference": patient_url},
        "authoredOn": when,
        "requester": {"reference": f"Organization/{form.practice_org_id}"},
    }
    if reason := _reason(form):
        resource["reasonCode"] = [reason]
    resource["supportingInfo"] = [{"reference": consent_url}]
    return resource


def _need(code: str) -> dict[str, Any]:
    # An unknown code is sent without a display: form_problems reports it before this is sent.
    display = codes.OFFER_CATEGORIES.get(code)
    coding = _drop_blank({"system": codes.OFFER_SYSTEM, "code": code, "display": display})
    return {"coding": [coding]}


def _reason(form: ReferralForm) -> dict[str, Any] | None:
    reason: dict[str, Any] = {}
    if form.reason_code:
        display = codes.REFERRAL_REASONS.get(form.reason_code)
        coding = _drop_blank({"system": codes.SNOMED, "code": form.reason_code, "display": display})
        reason["coding"] = [coding]
    if text := _text(form.reason_text):
        reason["text"] = text
    return reason or None


# --- mapping intake's issues back to the form -----------------------------------------------------

# Where each resource sits: intake names elements by resource type, validation by entry.
_ENTRY_TYPES: Final = {
    PATIENT_ENTRY: "Patient",
    CONSENT_ENTRY: "Consent",
    SERVICE_REQUEST_ENTRY: "ServiceRequest",
}
_ENTRY_PATH = re.compile(r"^Bundle\.entry\[(?P<index>\d+)\](?:\.(?P<part>resource|request))?")
# First match wins, on the path with indexes removed.
_FIELDS: Final = (
    ("Patient.identifier", "nhs_number"),
    ("Patient.name.given", "given_name"),
    ("Patient.name", "family_name"),
    ("Patient.birthDate", "birth_date"),
    ("Patient.address", "postcode"),
    ("Patient.extension", "national_opt_out"),
    ("Consent.provision", "share_referral"),
    ("ServiceRequest.identifier", "referral_id"),
    ("ServiceRequest.request.ifNoneExist", "referral_id"),
    ("ServiceRequest.supportingInfo", "share_referral"),  # intake's "Consent does not permit"
    ("ServiceRequest.reasonCode.coding", "reason_code"),
    ("ServiceRequest.reasonCode", "reason_text"),
    ("ServiceRequest.orderDetail", "needs"),
)


def form_field_of(expression: str) -> str | None:
    """The ReferralForm field an OperationOutcome issue expression is about, or None when it is
    about none of them (show such a message above the form).

    Takes both intake's resource paths (``Patient.identifier[0].value``) and validation's Bundle
    paths (``Bundle.entry[0].resource.birthDate``) for a Bundle built by ``referral_bundle``.
    """
    path = _resource_path(expression)
    if path is None:
        return None
    plain = re.sub(r"\[\d+\]", "", path)
    for prefix, field in _FIELDS:
        if plain == prefix or plain.startswith((f"{prefix}.", f"{prefix}[")):
            return field
    return None


def _resource_path(expression: str) -> str | None:
    match = _ENTRY_PATH.match(expression)
    if match is None:
        return expression
    rtype = _ENTRY_TYPES.get(int(match["index"]))
    if rtype is None:
        return None
    rest = expression[match.end() :]
    return f"{rtype}.request{rest}" if match["part"] == "request" else f"{rtype}{rest}"


# --- small helpers --------------------------------------------------------------------------------


def _text(value: str | None) -> str:
    return value.strip() if value else ""


def _drop_blank(element: dict[str, str | None]) -> dict[str, Any]:
    """The element without its blank values: FHIR allows no empty strings."""
    return {key: value.strip() for key, value in element.items() if _text(value) and value}


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
