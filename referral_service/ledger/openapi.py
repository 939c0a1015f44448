"""The ledger's limits as the OpenAPI document shows them, read from the rules that enforce them.

The rules answer 422 naming the field (for every caller, not only this API), so the pydantic
models do not enforce the limits themselves; they are declared on the published schemas here
instead, from the same constants, so that a client generator or a fuzzer knows them.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters.codes import OFFER_CATEGORIES
from referral_service.ledger.models import MAX_EXCHANGE_MINUTES
from referral_service.ledger.rules import MAX_ALIAS, MAX_DESCRIPTION

Json = dict[str, Any]

# Not blank: the rules collapse whitespace, and nothing left is refused.
_NOT_BLANK = r"\S"
_CATEGORY = {"enum": sorted(OFFER_CATEGORIES)}
_LIMITS: dict[str, dict[str, Json]] = {
    "MemberIn": {"alias": {"minLength": 1, "maxLength": MAX_ALIAS, "pattern": _NOT_BLANK}},
    "EnrolmentIn": {"alias": {"minLength": 1, "maxLength": MAX_ALIAS, "pattern": _NOT_BLANK}},
    "ListingIn": {
        "category": _CATEGORY,
        "description": {"minLength": 1, "maxLength": MAX_DESCRIPTION, "pattern": _NOT_BLANK},
    },
    "ExchangeIn": {
        "category": _CATEGORY,
        "minutes": {"minimum": 1, "maximum": MAX_EXCHANGE_MINUTES},
        # Optional: blank is the same as none, so only the length is a limit.
        "description": {"maxLength": MAX_DESCRIPTION},
    },
    "ReversalIn": {"reason": {"minLength": 1, "maxLength": MAX_DESCRIPTION, "pattern": _NOT_BLANK}},
    "MembershipEndIn": {"reason": {"maxLength": MAX_DESCRIPTION}},
}


def declare_limits(spec: Json) -> None:
    """Add the rules' limits to the request schemas and to the `category` query parameters."""
    schemas = spec["components"]["schemas"]
    for model, fields in _LIMITS.items():
        for name, limits in fields.items():
            schemas[model]["properties"][name].update(limits)
    for path, item in spec["paths"].items():
        if not path.startswith("/api/timebanks/"):
            continue
        for operation in item.values():
            for param in operation.get("parameters", []):
                if param["name"] == "category" and param["in"] == "query":
                    param["schema"] = {"type": "string", **_CATEGORY}
