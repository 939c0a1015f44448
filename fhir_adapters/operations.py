"""The arguments of a FHIR operation called by POST: a Parameters resource → (name, text) pairs.

The caller validates the body first (`parse.validate_resource(body, expected_type="Parameters")`);
this reads the simple values an operation such as `$evaluate-measure` takes, so that a GET's query
string and a POST's body go through the same checks afterwards. Errors name the parameter by its
index, never echo its value.
"""

from __future__ import annotations

from typing import Any, Final

from fhir_adapters.outcome import FhirError

# value[x] types read as text (a Reference by its `reference`).
TEXT_VALUES: Final = ("valueDate", "valueString", "valueCode", "valueUri", "valueCanonical")


def arguments(parameters: dict[str, Any]) -> list[tuple[str, str]]:
    """Each `parameter` as (name, value text), in order. A parameter with parts, a resource or a
    value of another type is refused (400), as nothing SPIS offers takes one."""
    found = []
    for i, parameter in enumerate(parameters.get("parameter", [])):
        where = f"Parameters.parameter[{i}]"
        value = _text(parameter)
        if value is None:
            allowed = ", ".join(TEXT_VALUES)
            raise FhirError(
                400,
                "invalid",
                f"{where}: give a {allowed} or valueReference, not parts or a resource",
                [where],
            )
        found.append((str(parameter["name"]), value))
    return found


def _text(parameter: dict[str, Any]) -> str | None:
    if "part" in parameter or "resource" in parameter:
        return None
    for key in TEXT_VALUES:
        if isinstance(parameter.get(key), str):
            return str(parameter[key])
    reference = parameter.get("valueReference")
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        return str(reference["reference"])
    return None
