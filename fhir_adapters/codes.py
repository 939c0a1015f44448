"""Every FHIR system URL, code and value set SPIS relies on, named once.

Value sets are the FHIR R4 (4.0.1) expansions, or the SDOH Clinical Care IG subsets where the IG
narrows them. fhir.resources does not check bindings, so ``rules.py`` checks against these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

# Identifier systems (UK Core).
NHS_NUMBER_SYSTEM: Final = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM: Final = "https://fhir.nhs.uk/Id/ods-organization-code"

# SNOMED CT and the codes for a social prescribing referral (standards.md §2.1).
SNOMED: Final = "http://snomed.info/sct"
SOCIAL_PRESCRIBING_REFERRAL: Final = "871731000000106"  # Referral to social prescribing service
SOCIAL_SERVICE_PROCEDURE: Final = "410606002"  # Social service procedure (SR/Procedure category)

# Task.code for the SDOH referral Task.
TASK_CODE_SYSTEM: Final = "http://hl7.org/fhir/CodeSystem/task-code"
TASK_CODE_FULFILL: Final = "fulfill"

# Consent (DESIGN §6).
CONSENT_SCOPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_SCOPE_PATIENT_PRIVACY: Final = "patient-privacy"
PURPOSE_OF_USE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
PURPOSE_TREAT: Final = "TREAT"  # treatment: the referral itself
PURPOSE_HOPERAT: Final = "HOPERAT"  # healthcare operations: health board aggregates
PURPOSE_PUBHLTH: Final = "PUBHLTH"  # public health: also counts as secondary use
PURPOSE_COC: Final = "COC"  # coordination of care: activities and scores shared back to the GP
CONSENT_PROVISION_TYPES: Final = frozenset({"deny", "permit"})

# Profiles and SPIS's own code systems.
SDOH_TASK_PROFILE: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
)
SPIS_CODESYSTEM_BASE: Final = "https://spis.example.org/fhir/CodeSystem"
# Consent.provision.code naming which of the three DESIGN §6 flows a provision covers, so that a
# consent check does not have to infer the flow from purpose and actor alone.
CONSENT_FLOW_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/consent-flow"
CONSENT_FLOW_REFERRAL: Final = "referral"
CONSENT_FLOW_SHARE_BACK: Final = "share-back"
CONSENT_FLOW_SECONDARY_USE: Final = "secondary-use"


# SDOHCC-ValueSetReferralTaskStatus: R4 task-status minus `ready` and `received` (standards §1.5).
class TaskStatus(StrEnum):
    DRAFT = "draft"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    COMPLETED = "completed"
    FAILED = "failed"
    ENTERED_IN_ERROR = "entered-in-error"


REFERRAL_TASK_STATUSES: Final = frozenset(TaskStatus)
# A Task in one of these is still open: someone may yet act on it. The one list SPIS uses.
OPEN_TASK_STATUSES: Final = (
    TaskStatus.REQUESTED,
    TaskStatus.ACCEPTED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.ON_HOLD,
)
# A time bank Task in one of these never got, or no longer has, the person: the time bank's part
# in the referral is over, and so is its access to the Patient and the filler order.
ENDED_TASK_STATUSES: Final = (
    TaskStatus.REJECTED,
    TaskStatus.CANCELLED,
    TaskStatus.ENTERED_IN_ERROR,
)
# The IG asks for statusReason.text whenever the referral stops or pauses.
STATUS_REASON_REQUIRED: Final = frozenset(
    {TaskStatus.REJECTED, TaskStatus.CANCELLED, TaskStatus.ON_HOLD, TaskStatus.FAILED}
)

# R4 request-status.
SERVICE_REQUEST_STATUSES: Final = frozenset(
    {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
)
# R4 request-intent.
SERVICE_REQUEST_INTENTS: Final = frozenset(
    {
        "proposal",
        "plan",
        "directive",
        "order",
        "original-order",
        "reflex-order",
        "filler-order",
        "instance-order",
        "option",
    }
)
# R4 consent-state-codes.
CONSENT_STATUSES: Final = frozenset(
    {"draft", "proposed", "active", "rejected", "inactive", "entered-in-error"}
)
# R4 observation-status.
OBSERVATION_STATUSES: Final = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        "entered-in-error",
        "unknown",
    }
)
# R4 event-status (Procedure.status).
PROCEDURE_STATUSES: Final = frozenset(
    {
        "preparation",
        "in-progress",
        "not-done",
        "on-hold",
        "stopped",
        "completed",
        "entered-in-error",
        "unknown",
    }
)

# What a referral asks for and a time bank offers (DESIGN §4), carried in ServiceRequest.orderDetail.
OFFER_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/timebank-offer"
# Finer broker sub-states in Task.businessStatus (DESIGN §3).
BUSINESS_STATUS_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/referral-business-status"
TASK_OUTPUT_TYPE_SYSTEM: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)

# The media type of FHIR JSON (R4 http.html#mime-type): what /fhir answers, and what a JWE carries
# unless its `cty` says otherwise.
FHIR_JSON: Final = "application/fhir+json"

# The offer categories (OFFER_SYSTEM) with their displays: what a time bank's directory profile
# offers, what a referral asks for, and how a ledger listing or exchange is coded (DESIGN §4).
OFFER_CATEGORIES: Final[dict[str, str]] = {
    "befriending": "Befriending",
    "shopping-companion": "Shopping companion",
    "gardening": "Gardening",
    "music": "Music",
    "walking-group": "Walking group",
    "digital-skills": "Digital skills",
    "cooking": "Cooking",
    "transport": "Transport",
}
