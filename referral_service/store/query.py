"""FHIR search parameters (already split into name/value pairs) → a store Query.

Shared by search, conditional create (`If-None-Exist`) and conditional references.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_adapters.codes import NHS_NUMBER_SYSTEM
from fhir_adapters.rules import nhs_number_problem, split_reference
from fhir_adapters.search_params import PARAMS, parse_search_date, parse_token
from referral_service.context import Caller, Context
from referral_service.errors import Invalid, ServiceError
from referral_service.kit.numbers import MAX_SQL_INT, whole_number
from referral_service.store import service
from referral_service.store.repository import DateMatch, IdMatch, Match, TokenMatch

RESULT_PARAMS = frozenset({"_count", "_offset", "_include", "_sort", "_format", "_total"})
SORTS = {"_lastUpdated": False, "-_lastUpdated": True}


class BadSearch(ServiceError):
    status = 400
    issue_code = "invalid"


@dataclass(slots=True)
class ParsedSearch:
    query: list[list[Match]] = field(default_factory=list)
    used: list[tuple[str, str]] = field(default_factory=list)  # echoed in the self link
    ignored: list[str] = field(default_factory=list)
    count: int = 50
    offset: int = 0
    newest_first: bool = True
    includes: list[tuple[str, str]] = field(default_factory=list)  # (source type, param)


def parse(
    ctx: Caller, rtype: str, params: Sequence[tuple[str, str]], *, strict: bool = False
) -> ParsedSearch:
    result = ParsedSearch(count=ctx.settings.default_page_size)
    for raw_name, value in params:
        name, _, modifier = raw_name.partition(":")
        if name in RESULT_PARAMS:
            _result_param(ctx, rtype, result, name, value)
            result.used.append((raw_name, value))
        elif name in ("_id", "_lastUpdated") or name in PARAMS.get(rtype, {}):
            if modifier and not (modifier == rtype_of_reference(rtype, name)):
                raise BadSearch(f"The search modifier :{modifier} is not supported")
            result.query.append([_match(ctx, rtype, name, v) for v in split_values(value)])
            result.used.append((raw_name, value))
        elif strict:
            raise BadSearch(f"Unknown search parameter {raw_name} for {rtype}")
        else:
            result.ignored.append(raw_name)
    return result


def parse_string(ctx: Context, rtype: str, query_string: str) -> list[list[Match]]:
    """A conditional URL's query (`identifier=sys|val&...`): every parameter must be understood."""
    from urllib.parse import parse_qsl

    pairs = parse_qsl(query_string, keep_blank_values=True)
    if not pairs:
        raise BadSearch("A conditional request needs at least one search parameter")
    parsed = parse(ctx, rtype, pairs, strict=True)
    return parsed.query


def rtype_of_reference(rtype: str, name: str) -> str | None:
    """`patient:Patient=...` style type modifiers are accepted on reference parameters."""
    kind = PARAMS.get(rtype, {}).get(name)
    return "Patient" if kind == "reference" and name in ("patient", "subject") else None


def split_values(value: str) -> list[str]:
    """`a,b` → [a, b]; `a\\,b` → [`a,b`]: FHIR escapes a comma inside a value as `\\,`. Subscription
    filters split theirs the same way (deliveries/matching.py)."""
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return parts


def _match(ctx: Caller, rtype: str, name: str, value: str) -> Match:
    if name == "_id":
        return IdMatch(value)
    kind = "date" if name == "_lastUpdated" else PARAMS[rtype][name]
    if kind == "date":
        try:
            prefix, start, end = parse_search_date(value)
        except Exception as exc:  # FhirError from the adapters, re-raised with our status
            raise BadSearch(f"{name}: {exc}") from None
        return DateMatch(name, prefix, start, end)
    own_only = None if service.searchable_in_others(ctx, rtype, name) else ctx.principal.org_id
    if kind == "reference":
        parts = split_reference(value)
        target = f"{parts[0]}/{parts[1]}" if parts else _bare_reference(rtype, name, value)
        if name == "patient" and not target.startswith("Patient/"):
            # Only a Patient can be one (R4's search definitions): `patient=Group/1` would
            # otherwise find Tasks `for` that Group through `subject`'s rows (`stored_name`).
            raise BadSearch("patient needs a reference to a Patient: Patient/id, or the bare id")
        return TokenMatch(name, target, own_only=own_only)
    system, code, system_given = parse_token(value)
    if name == "identifier" and system == NHS_NUMBER_SYSTEM and code is not None:
        _check_nhs_number(code)
    if code is not None and system is not None:
        code = service.token_value(ctx, rtype, name, system, code)
    return TokenMatch(name, code, system, system_given, own_only)


def _check_nhs_number(value: str) -> None:
    """As intake: a number that is not one can match nobody, so say why (never echo it)."""
    if problem := nhs_number_problem(value):
        raise Invalid(
            f"identifier: the NHS number {problem}",
            issue_code="value",
            expression=["identifier"],
        )


def _bare_reference(rtype: str, name: str, value: str) -> str:
    """`patient=123` means `Patient/123`; other bare ids are ambiguous."""
    target = {
        "patient": "Patient",
        "focus": "ServiceRequest",
        "part-of": "Task",
        "subject": "Patient",
    }.get(name)
    if target is None or not value or "/" in value:
        raise BadSearch(f"{name} needs a reference of the form Type/id")
    return f"{target}/{value}"


def _result_param(ctx: Caller, rtype: str, result: ParsedSearch, name: str, value: str) -> None:
    if name in ("_count", "_offset"):
        number = whole_number(value)
        if number is None:
            raise BadSearch(f"{name} must be a whole number from 0 to {MAX_SQL_INT}")
        if name == "_count":
            result.count = min(number, ctx.settings.max_page_size)
        else:
            result.offset = number
    elif name == "_sort":
        if value not in SORTS:
            raise BadSearch("Only _sort=_lastUpdated or _sort=-_lastUpdated is supported")
        result.newest_first = SORTS[value]
    elif name == "_include":
        source, _, param = value.partition(":")
        param = param.split(":")[0]
        if source != rtype or PARAMS.get(rtype, {}).get(param) != "reference":
            raise BadSearch(f"_include={value} is not supported on {rtype}")
        result.includes.append((source, param))
