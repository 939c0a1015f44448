"""Request bytes -> JSON dict -> a validated FHIR R4 resource (kept as the dict).

Callers keep the dict and store it as received: the R4B model is used only to validate, once
(DESIGN §13: validation is the dominant CPU cost; serialising a model back costs as much again).
"""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import orjson
from pydantic import ValidationError

from fhir_adapters import _model_checks, _model_imports
from fhir_adapters._shape import resource_class, resource_name, walk_shape
from fhir_adapters.outcome import FhirError, Issue, from_validation_error

# Before any validation: each resource inside a Bundle finds its model class once, not per use;
# each model class's required elements and choice groups are read once, not per element.
_model_imports.install()
_model_checks.install()

SUPPORTED_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Consent",
        "ServiceRequest",
        "Task",
        "Condition",
        "QuestionnaireResponse",
        "Observation",
        "Procedure",
        "Organization",
        "Bundle",
    }
)
# Accepted only as the body of a route that names the type, never in a Bundle nor in the resource
# store: `POST /fhir/Measure/{id}/$evaluate-measure` takes a Parameters resource; a Subscription
# is kept in columns of its own (referral_service/deliveries).
OPERATION_TYPES: frozenset[str] = frozenset({"Parameters", "Subscription"})

# How many shape problems to spell out in the diagnostics text.
_MAX_REPORTED = 5


def load_json(body: bytes, *, max_depth: int = 32) -> dict[str, Any]:
    """Parse a request body that must be one JSON object nested at most ``max_depth`` deep."""
    data = _load_any(body, max_depth)
    if not isinstance(data, dict):
        raise FhirError(400, "structure", "Request body must be a JSON object (a FHIR resource)")
    return data


def load_json_patch(body: bytes, *, max_depth: int = 32) -> list[dict[str, Any]]:
    """A JSON Patch document (RFC 6902): a list of operation objects, each with `op` and `path`."""
    data = _load_any(body, max_depth)
    valid = isinstance(data, list) and all(
        isinstance(op, dict) and isinstance(op.get("op"), str) and isinstance(op.get("path"), str)
        for op in data
    )
    if not valid:
        raise FhirError(400, "structure", "A JSON Patch is a list of operations with op and path")
    return list(data)


def _load_any(body: bytes, max_depth: int) -> Any:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson refuses nesting beyond 1024 itself. Its message is not passed on: it can quote
        # the body.
        if exc.msg.startswith("depth limit"):
            raise _too_deep(max_depth) from None
        raise FhirError(400, "structure", "Request body is not valid JSON") from None
    strings = _strings_within({"": data}, max_depth + 1)
    if strings is None:
        raise _too_deep(max_depth)
    if strings - 1 != _string_tokens(body):  # the wrapper's "" key is not in the body
        _refuse_duplicate_keys(body)
    return data


def _too_deep(max_depth: int) -> FhirError:
    return FhirError(400, "too-costly", f"Request body is nested too deeply (limit {max_depth})")


def _strings_within(data: dict[str, Any], max_depth: int) -> int | None:
    """How many strings (object keys and string values) ``data`` holds, or None when objects and
    arrays nest deeper than ``max_depth``.

    Level by level rather than recursive, so pathological input cannot hit the recursion limit;
    several times faster than a (value, depth) stack on a referral Bundle. Counting strings on
    the same pass is what makes the duplicate-key check (below) nearly free.
    """
    level: list[Any] = [data]
    depth, strings = 1, 0
    while level:
        if depth > max_depth:
            return None
        deeper: list[Any] = []
        for container in level:
            # orjson builds exact dicts and lists, so `type() is` is safe and twice as fast.
            if type(container) is dict:
                strings += len(container)
                children = container.values()
            else:
                children = container
            for child in children:
                kind = type(child)
                if kind is str:
                    strings += 1
                elif kind is dict or kind is list:
                    deeper.append(child)
        level = deeper
        depth += 1
    return strings


# --- duplicate keys -------------------------------------------------------------------------------
# orjson, like most parsers, keeps the last of two equal keys. A body whose meaning depends on
# which parser reads it is refused instead (RFC 8259 §4: names SHOULD be unique). The check is a
# count: every string token in the body is either a key or a string value, and a duplicate key
# drops at least one of them (itself) from the parsed result. Only when the counts differ is the
# body parsed again, by the standard library with a hook that names the key (≈25 µs on a
# referral Bundle; the count costs ≈1 µs).

_ESCAPED_QUOTE = re.compile(rb'(\\+)"')
_SHOWN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


class DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__("duplicate key")
        self.key = key

    def describe(self, what: str) -> str:
        """Diagnostics that name the key when it looks like an element name, not client text."""
        name = f'"{self.key}"' if _SHOWN_KEY.match(self.key) else "a key"
        return f"{what} has a JSON object with {name} more than once"


def _string_tokens(body: bytes) -> int:
    """String tokens in valid JSON: its double quotes, less escaped ones, halved. (UTF-8 never
    puts the bytes of `"` or `\\` inside a multi-byte character.)"""
    quotes = body.count(b'"')
    if b"\\" in body:
        quotes -= sum(len(m[1]) % 2 for m in _ESCAPED_QUOTE.finditer(body))
    return quotes // 2


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return obj


def loads_unique(body: bytes | str) -> Any:
    """``json.loads`` that raises DuplicateKeyError for an object with a repeated key (and
    ValueError for anything that is not JSON). For small bodies outside /fhir."""
    return json.loads(body, object_pairs_hook=_unique_pairs)


def _refuse_duplicate_keys(body: bytes) -> None:
    try:
        loads_unique(body)
    except DuplicateKeyError as exc:
        raise FhirError(400, "structure", exc.describe("Request body")) from None


def validate_resource(data: dict[str, Any], *, expected_type: str | None = None) -> str:
    """Validate one resource (a Bundle with its entries) and return its resourceType.

    Order of checks: resourceType present and expected -> supported -> Bundle entry types ->
    strict FHIR-JSON shape (``_shape``) -> the R4B model (cardinality, formats, choice types) ->
    no modifierExtension anywhere. Raises FhirError (400, or 422 for a modifier extension);
    never returns a model.
    """
    resource_type = _resource_type(data, expected_type)
    if resource_type == "Bundle":
        _check_entry_types(data)
    model = resource_class(resource_type)
    if model is None:  # SUPPORTED_TYPES holds only real R4B resources; keep mypy and us honest
        raise FhirError(400, "not-supported", f"Resource type not supported: {resource_type}")
    shape = walk_shape(data, model, resource_type)
    if shape.problems:
        raise _shape_error(resource_type, shape.problems)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, resource_type) from None
    if shape.modifiers:
        raise _modifier_error(shape.modifiers)
    return resource_type


def _modifier_error(paths: list[str]) -> FhirError:
    """R4 (extensibility.html#modifierExtension): a modifier extension changes the meaning of the element
    that holds it, so a server that does not know it must refuse the resource rather than store
    a meaning it would then ignore. SPIS knows none."""
    issues = [
        Issue(
            "extension",
            f"{path}: this server does not understand any modifier extension; "
            "the resource is refused rather than read with its meaning changed",
            (path,),
        )
        for path in paths[:_MAX_REPORTED]
    ]
    return FhirError.many(422, issues)


def _resource_type(data: dict[str, Any], expected_type: str | None) -> str:
    if "resourceType" not in data:
        raise FhirError(400, "structure", "Resource has no resourceType", ["resourceType"])
    raw = data["resourceType"]
    if not isinstance(raw, str):
        raise FhirError(400, "structure", "resourceType must be a string", ["resourceType"])
    if expected_type is not None and raw != expected_type:
        shown = _type_label(raw)
        raise FhirError(
            400, "invalid", f"Expected a {expected_type}, got {shown}", ["resourceType"]
        )
    if raw not in SUPPORTED_TYPES and not (raw == expected_type and raw in OPERATION_TYPES):
        raise FhirError(400, "not-supported", f"Resource type not supported: {_type_label(raw)}")
    return raw


def _type_label(raw: str) -> str:
    """Echo a resourceType only when it is a real FHIR type name: anything else is client text."""
    name = resource_name(raw)
    return name if name and resource_class(name) else "an unknown resource type"


def _check_entry_types(bundle: dict[str, Any]) -> None:
    """Entries may only carry resource types SPIS supports (shape and models check the rest)."""
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        raw = resource.get("resourceType") if isinstance(resource, dict) else None
        if isinstance(raw, str) and raw not in SUPPORTED_TYPES:
            where = f"Bundle.entry[{i}].resource"
            msg = f"{where}: resource type not supported: {_type_label(raw)}"
            raise FhirError(400, "not-supported", msg, [where])


def _shape_error(resource_type: str, problems: list[tuple[str, str]]) -> FhirError:
    shown = "; ".join(f"{path}: {problem}" for path, problem in problems[:_MAX_REPORTED])
    if len(problems) > _MAX_REPORTED:
        shown += f" (and {len(problems) - _MAX_REPORTED} more)"
    diagnostics = f"Invalid {resource_type}: {shown}"
    return FhirError(400, "structure", diagnostics, [path for path, _ in problems])


def warm_up() -> None:
    """Build the models we validate with before the first request needs them (≈0.5 s once).

    Each type is validated inside a Bundle, which is how most of them arrive.
    """
    entries = [
        {"resource": {"resourceType": name}} for name in sorted(SUPPORTED_TYPES - {"Bundle"})
    ]
    for entry in entries:
        # Minimal resources miss required elements: building the model was the point.
        with contextlib.suppress(FhirError):
            validate_resource({"resourceType": "Bundle", "type": "batch", "entry": [entry]})
