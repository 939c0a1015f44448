"""The CapabilityStatement: built from the same tables the code uses, so it cannot drift."""

from __future__ import annotations

from typing import Any

from fhir_adapters.codes import (
    BACKPORT_STATUS_OPERATION,
    BACKPORT_SUBSCRIPTION_PROFILE,
    BACKPORT_TOPIC_CANONICAL,
)
from fhir_adapters.search_params import PARAMS
from referral_service.deliveries.topics import TOPICS
from referral_service.referrals.service import CREATABLE, STORED_TYPES, UPDATABLE

SEARCH_TYPES = {"token": "token", "reference": "reference", "date": "date"}
INCLUDABLE = {
    rtype: sorted(f"{rtype}:{name}" for name, kind in params.items() if kind == "reference")
    for rtype, params in PARAMS.items()
}


def capability_statement(base: str, token_url: str, software_version: str) -> dict[str, Any]:
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-25",
        "publisher": "SPIS",
        "kind": "instance",
        "software": {"name": "SPIS", "version": software_version},
        "implementation": {
            "description": "SPIS social prescribing integration service",
            "url": base,
        },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": _security(token_url),
                "resource": [_resource(t) for t in sorted(STORED_TYPES)]
                + [_organization(), _questionnaire(), _audit_event(), _measure()]
                + [_subscription(), _basic()],
                "interaction": [{"code": "transaction"}, {"code": "batch"}],
            }
        ],
    }


def _security(token_url: str) -> dict[str, Any]:
    return {
        "service": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                        "code": "SMART-on-FHIR",
                    }
                ]
            }
        ],
        "description": "SMART Backend Services (client_credentials, private_key_jwt, RS384/ES384); "
        "see /.well-known/smart-configuration",
        "extension": [
            {
                "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                "extension": [{"url": "token", "valueUri": token_url}],
            }
        ],
    }


def _resource(rtype: str) -> dict[str, Any]:
    interactions = ["read", "vread", "history-instance", "search-type"]
    if rtype in CREATABLE:
        interactions.append("create")
    if rtype in UPDATABLE:
        interactions += ["update", "patch"]
    params = [{"name": "_id", "type": "token"}, {"name": "_lastUpdated", "type": "date"}]
    params += [
        {"name": n, "type": SEARCH_TYPES[k]} for n, k in sorted(PARAMS.get(rtype, {}).items())
    ]
    resource: dict[str, Any] = {
        "type": rtype,
        "interaction": [{"code": code} for code in interactions],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": False,
        "conditionalCreate": rtype in CREATABLE,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": params,
    }
    if INCLUDABLE.get(rtype):
        resource["searchInclude"] = INCLUDABLE[rtype]
    return resource


def _organization() -> dict[str, Any]:
    return {
        "type": "Organization",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "_id", "type": "token"}, {"name": "identifier", "type": "token"}],
    }


def _audit_event() -> dict[str, Any]:
    return {
        "type": "AuditEvent",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "patient", "type": "reference"}],
    }


def _questionnaire() -> dict[str, Any]:
    return {"type": "Questionnaire", "interaction": [{"code": "read"}, {"code": "search-type"}]}


def _measure() -> dict[str, Any]:
    """The outcome measures; a MeasureReport exists only as `$evaluate-measure`'s answer."""
    return {
        "type": "Measure",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "_id", "type": "token"}, {"name": "url", "type": "uri"}],
        "operation": [
            {
                "name": "evaluate-measure",
                "definition": "http://hl7.org/fhir/OperationDefinition/Measure-evaluate-measure",
                "documentation": "GET or POST (Parameters) with periodStart, periodEnd and "
                "optionally subject (the board, or one of its practices or time banks); answers "
                "a summary MeasureReport (not stored), or CSV with _format=csv. Health boards "
                "only (system/Measure.r and system/MeasureReport.r).",
            }
        ],
    }


def _subscription() -> dict[str, Any]:
    """Topic-based subscriptions (the R5 backport on R4); the topics are listed as the backport
    lists them, and served as Basic (below)."""
    return {
        "type": "Subscription",
        "extension": [
            {"url": BACKPORT_TOPIC_CANONICAL, "valueCanonical": url} for url in sorted(TOPICS)
        ],
        "supportedProfile": [BACKPORT_SUBSCRIPTION_PROFILE],
        "interaction": [
            {"code": code} for code in ("create", "read", "update", "delete", "search-type")
        ],
        "versioning": "versioned-update",
        "readHistory": False,
        "updateCreate": False,
        "conditionalCreate": False,
        "conditionalUpdate": False,
        "conditionalDelete": "not-supported",
        "searchParam": [
            {"name": "_id", "type": "token"},
            {"name": "criteria", "type": "uri", "documentation": "The topic's canonical URL"},
            {"name": "status", "type": "token"},
        ],
        "operation": [
            {
                "name": "status",
                "definition": BACKPORT_STATUS_OPERATION,
                "documentation": "GET /Subscription/{id}/$status, or /Subscription/$status?id=... "
                "(all of yours without id): a searchset of the backport's status Parameters",
            }
        ],
    }


def _basic() -> dict[str, Any]:
    """The SubscriptionTopics, as the backport publishes them on R4: public, no token needed."""
    return {
        "type": "Basic",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "searchParam": [{"name": "_id", "type": "token"}, {"name": "code", "type": "token"}],
    }
