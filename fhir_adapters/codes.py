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
# Subscriptions (R5 backport on R4): the topics SPIS publishes, as canonical URLs. The Task topic is
# the SDOH Clinical Care IG's own; the others are SPIS's.
SDOH_TASK_TOPIC: Final = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
SPIS_TOPIC_BASE: Final = "https://spis.example.org/fhir/SubscriptionTopic"
SHARED_BACK_TOPIC: Final = f"{SPIS_TOPIC_BASE}/shared-back"
ROUTED_TOPIC: Final = f"{SPIS_TOPIC_BASE}/routed"
SLA_REMINDER_TOPIC: Final = f"{SPIS_TOPIC_BASE}/sla-reminder"
BACKPORT_BASE: Final = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"
# The backport IG's profile and extensions a Subscription uses, and its $status operation.
BACKPORT_SUBSCRIPTION_PROFILE: Final = f"{BACKPORT_BASE}/backport-subscription"
BACKPORT_FILTER_CRITERIA: Final = f"{BACKPORT_BASE}/backport-filter-criteria"
BACKPORT_PAYLOAD_CONTENT: Final = f"{BACKPORT_BASE}/backport-payload-content"
BACKPORT_HEARTBEAT_PERIOD: Final = f"{BACKPORT_BASE}/backport-heartbeat-period"
BACKPORT_TIMEOUT: Final = f"{BACKPORT_BASE}/backport-timeout"
BACKPORT_TOPIC_CANONICAL: Final = f"{BACKPORT_BASE}/capabilitystatement-subscriptiontopic-canonical"
BACKPORT_STATUS_PROFILE: Final = f"{BACKPORT_BASE}/backport-subscription-status-r4"
BACKPORT_STATUS_OPERATION: Final = (
    "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/backport-subscription-status"
)
# An R5 SubscriptionTopic on an R4 Basic: the cross-version extensions, one per R5 element.
R5_TOPIC_EXTENSION: Final = (
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"
)
FHIR_TYPES_SYSTEM: Final = "http://hl7.org/fhir/fhir-types"
JOSE: Final = "application/jose"
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

# --- what the web workspace's forms write (issue 9) ----------------------------------------------

# The referral Consent's other elements, as GP systems send them (tests/data/referral-bundle.json).
LOINC: Final = "http://loinc.org"
CONSENT_CATEGORY_PATIENT_CONSENT: Final = "59284-0"  # LOINC: Patient Consent
ACT_CODE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
POLICY_OPT_IN: Final = "OPTIN"  # R4 ppc-1: a Consent names a policy or a policyRule
CONSENT_ACTION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/consentaction"
CONSENT_ACTION_DISCLOSE: Final = "disclose"
PARTICIPATION_TYPE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
PARTICIPATION_INFORMATION_RECIPIENT: Final = "IRCP"
# The national data opt-out, recorded on the Patient as a boolean extension (consent/rules.py
# reads it: an opted-out person is left out of every aggregate, whatever the Consent says).
NATIONAL_OPT_OUT_EXTENSION: Final = (
    f"{SPIS_CODESYSTEM_BASE.removesuffix('/CodeSystem')}/StructureDefinition/national-data-opt-out"
)
# ServiceRequest.identifier system of referrals made on SPIS's own web pages: idempotent intake is
# keyed by system and value, so the page's identifiers never collide with a GP system's.
WEB_REFERRAL_ID_SYSTEM: Final = (
    f"{SPIS_CODESYSTEM_BASE.removesuffix('/CodeSystem')}/Id/web-referral"
)

# Why a GP refers (ServiceRequest.reasonCode): a short list for the referral form. 422650009 is in
# standards.md §2.1 (the SDOH IG's social-connection example); the other two are SNOMED CT findings
# used as such in public FHIR IGs, not on an NHS social prescribing refset (none is published yet).
REASON_SOCIAL_ISOLATION: Final = "422650009"
REASON_FEELING_LONELY: Final = "267076002"
REASON_LOW_MOOD: Final = "366979004"
REFERRAL_REASONS: Final[dict[str, str]] = {
    REASON_FEELING_LONELY: "Feeling lonely",
    REASON_LOW_MOOD: "Depressed mood",  # the finding GP systems show as "Low mood"
    REASON_SOCIAL_ISOLATION: "Social isolation",
}

# Why SPIS itself rejected a referral Task (no time bank could be given it), coded on its
# statusReason beside the text the GP reads; system and displays: measures.REJECTED_REASON_SYSTEM,
# measures.REJECTED_REASONS. A rejected referral stored before the code existed counts as
# NO_TIME_BANK in reports.
REJECTED_NO_ADDRESS: Final = "no-address"
REJECTED_NO_TIME_BANK: Final = "no-time-bank"
REJECTED_CONSENT_DENIES: Final = "consent-denies"

# Why a time bank declines a referral (Task.statusReason of a `rejected` time bank Task). The
# displays are written for the GP, who reads them on the referral Task.
DECLINE_REASON_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/decline-reason"
DECLINE_OTHER: Final = "other"  # needs the broker's own words
DECLINE_REASONS: Final[dict[str, str]] = {
    "no-capacity": "The time bank has no room for new members at the moment",
    "outside-catchment": "The person lives outside the area the time bank serves",
    "needs-not-offered": "The time bank does not offer the support the person needs",
    "cannot-contact": "The time bank could not reach the person",
    "person-declined": "The person decided not to join the time bank",
    DECLINE_OTHER: "Another reason (see the time bank's note)",
}
