"""Request bytes -> JSON dict -> a validated FHIR R4 resource (kept as the dict).

Callers keep the dict and store it as received: the R4B model is used only to validate, once
(DESIGN §13: validation is the dominant CPU cost; serialising a model back costs as much again).
"""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
from pydantic import ValidationError

from fhir_adapters._shape import check_shape, resource_class, resource_name
from fhir_adapters.outcome import FhirError, from_validation_error

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
    if isinstance(data, dict | list) and _depth_exceeds({"": data}, max_depth + 1):
        raise _too_deep(max_depth)
    return data


def _too_deep(max_depth: int) -> FhirError:
    return FhirError(400, "too-costly", f"Request body is nested too deeply (limit {max_depth})")


def _depth_exceeds(data: dict[str, Any], max_depth: int) -> bool:
    """True when objects/arrays nest deeper than max_depth.

    Level by level rather than recursive, so pathological input cannot hit the recursion limit;
    several times faster than a (value, depth) stack on a referral Bundle.
    """
    level: list[Any] = [data]
    depth = 1
    while level:
        if depth > max_depth:
            return True
        deeper: list[Any] = []
        for container in level:
            # orjson builds exact dicts and lists, so `type() is` is safe and twice as fast.
            for child in container.values() if type(container) is dict else container:
                if type(child) is dict or type(child) is list:
                    deeper.append(child)
        level = deeper
        depth += 1
    return False


def validate_resource(data: dict[str, Any], *, expected_type: str | None = None) -> str:
    """Validate one resource (a Bundle with its entries) and return its resourceType.

    Order of checks: resourceType present and expected -> supported -> Bundle entry types ->
    strict FHIR-JSON shape (``_shape``) -> the R4B model (cardinality, formats, choice types).
    Raises FhirError (400) for every failure; never returns a model.
    """
    resource_type = _resource_type(data, expected_type)
    if resource_type == "Bundle":
        _check_entry_types(data)
    model = resource_class(resource_type)
    if model is None:  # SUPPORTED_TYPES holds only real R4B resources; keep mypy and us honest
        raise FhirError(400, "not-supported", f"Resource type not supported: {resource_type}")
    problems = check_shape(data, model, resource_type)
    if problems:
        raise _shape_error(resource_type, problems)
    try:
        model.model_validate(data)
    except ValidationError as exc:
        raise from_validation_error(exc, resource_type) from None
    return resource_type


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
    if raw not in SUPPORTED_TYPES:
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
