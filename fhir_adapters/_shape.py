"""Strict FHIR-JSON shape check, run before the fhir.resources models see the data.

We store resources as the JSON that was received, so that JSON itself must be FHIR JSON. The R4B
models are lenient in ways that would let non-FHIR JSON through (measured with fhir.resources
8.3.0 / fhir-core 1.1.12):

- any complex element may be a *string holding JSON* (``"subject": "{\\"reference\\": ...}"``);
- booleans accept ``"true"`` and ``1``, integers ``"2"`` and ``2.0``, decimals ``"1.5"``;
- pydantic field names are accepted beside the FHIR names (``for_fhir``, ``status__ext``,
  ``fhir_comments``);
- ``null`` is accepted for any optional element;
- an unknown or non-string ``resourceType`` in ``contained`` or ``Bundle.entry.resource`` raises a
  bare ``KeyError``/``TypeError`` instead of a ValidationError.

This walk knows each element's JSON type from the model's field annotations and rejects all of
that with FHIRPath locations. Cardinality, formats and value rules are left to the models.

The same walk notes where a ``modifierExtension`` appears (any depth, contained resources and
Bundle entries included): R4 says a server must refuse a modifier it does not understand, and the
walk already visits every object, so finding them costs nothing extra.
"""

from __future__ import annotations

import datetime
import decimal
import re
import types
import typing
import uuid
from collections import deque
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any, Literal

from fhir.resources.R4B import get_fhir_model_class
from fhir_core.fhirabstractmodel import FHIRAbstractModel

Kind = Literal["object", "resource", "string", "boolean", "integer", "decimal"]
Model = type[FHIRAbstractModel]

_MAX_PROBLEMS = 10
_RESOURCE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ELEMENT_NAME = re.compile(r"^_?[A-Za-z][A-Za-z0-9_]{0,63}$")
_ABSTRACT = frozenset({"Resource", "DomainResource"})
_STRING_TYPES: tuple[type, ...] = (
    str, bytes, datetime.date, datetime.datetime, datetime.time, uuid.UUID,
)  # fmt: skip
_PLAIN_KINDS: dict[type, Kind] = {bool: "boolean", int: "integer", decimal.Decimal: "decimal"}


@dataclass(frozen=True, slots=True)
class Field:
    kind: Kind
    many: bool = False
    nullable_items: bool = False  # primitive arrays may hold null, paired with their `_x` sibling
    model: Model | None = None


def resource_name(value: object) -> str | None:
    """The value if it looks like a resource type name; safe to echo in diagnostics."""
    return value if isinstance(value, str) and _RESOURCE_NAME.match(value) else None


@lru_cache(maxsize=512)  # bounded: names come from clients
def resource_class(name: str) -> Model | None:
    """The R4B model class of a concrete resource type, or None for anything else."""
    if not _RESOURCE_NAME.match(name) or name in _ABSTRACT:
        return None
    try:
        model = get_fhir_model_class(name)
    except ValueError:
        return None
    return model if model.has_resource_base() else None


# A path is built lazily as nested (parent, part) pairs and rendered only for a problem: most
# resources have none, and formatting a string per element doubled the cost of the walk.
Path = tuple[Any, str | int] | str


@dataclass(frozen=True, slots=True)
class Shape:
    problems: list[tuple[str, str]]  # (FHIRPath, problem) for JSON that is not FHIR JSON
    modifiers: list[str]  # FHIRPaths of every modifierExtension element (checked when no problems)


def check_shape(data: dict[str, Any], model: Model, path: str) -> list[tuple[str, str]]:
    """(FHIRPath, problem) pairs for every element whose JSON shape is not FHIR JSON."""
    return walk_shape(data, model, path).problems


def walk_shape(data: dict[str, Any], model: Model, path: str) -> Shape:
    walk = _Walk()
    walk.queue.append((data, model, path, True))
    while walk.queue and len(walk.problems) < _MAX_PROBLEMS:
        walk.visit(*walk.queue.popleft())
    problems = [(_render(where), problem) for where, problem in walk.problems[:_MAX_PROBLEMS]]
    return Shape(problems, [_render(where) for where in walk.modifiers])


class _Walk:
    """Breadth-first over nested elements; each object is checked against its model's fields."""

    def __init__(self) -> None:
        self.problems: list[tuple[Path, str]] = []
        self.modifiers: list[Path] = []
        self.queue: deque[tuple[dict[str, Any], Model, Path, bool]] = deque()

    def visit(self, obj: dict[str, Any], model: Model, path: Path, is_resource: bool) -> None:
        fields = _fields(model)
        for key, value in obj.items():
            field = fields.get(key)
            if field is None:
                if not (is_resource and key == "resourceType"):
                    self.problems.append(((path, key), "unknown element"))
            elif not field.many:
                self.item(field, value, (path, key))
            else:
                if key == "modifierExtension" and value:
                    self.modifiers.append((path, key))
                self.items(field, value, (path, key))

    def items(self, field: Field, value: object, where: Path) -> None:
        if not isinstance(value, list):
            self.problems.append((where, "expected a JSON array"))
            return
        for i, item in enumerate(value):
            if item is not None or not field.nullable_items:
                self.item(field, item, (where, i))

    def item(self, field: Field, value: object, where: Path) -> None:
        kind = field.kind
        if value is None:
            self.problems.append((where, "null is not allowed here"))
        elif kind == "object":
            if isinstance(value, dict) and field.model is not None:
                self.queue.append((value, field.model, where, False))
            else:
                self.problems.append((where, "expected a JSON object"))
        elif kind == "resource":
            self.resource(value, where)
        elif not _primitive_ok(kind, value):
            self.problems.append((where, f"expected a JSON {_JSON_NAMES[kind]}"))

    def resource(self, value: object, where: Path) -> None:
        if not isinstance(value, dict):
            self.problems.append((where, "expected a resource (a JSON object)"))
            return
        name = resource_name(value.get("resourceType"))
        model = resource_class(name) if name else None
        if "resourceType" not in value:
            self.problems.append((where, "resourceType is missing"))
        elif model is None:
            self.problems.append(((where, "resourceType"), "not a known FHIR R4 resource type"))
        else:
            self.queue.append((value, model, where, True))


def _render(path: Path) -> str:
    parts: list[str] = []
    while isinstance(path, tuple):
        path, part = path
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append("." + (part if _ELEMENT_NAME.match(part) else "<bad name>"))
    return path + "".join(reversed(parts))


_JSON_NAMES: dict[Kind, str] = {
    "string": "string",
    "boolean": "boolean",
    "integer": "integer",
    "decimal": "number",
    "object": "object",
    "resource": "object",
}


def _primitive_ok(kind: Kind, value: object) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


# --- reading the model classes ------------------------------------------------------------------


@cache  # one entry per model class: a few hundred at most
def _fields(model: Model) -> dict[str, Field]:
    """FHIR JSON name -> Field for one model class (pydantic-only names are left out)."""
    table: dict[str, Field] = {}
    for name, info in model.model_fields.items():
        alias = info.alias or name
        if alias == "fhir_comments":
            continue  # not part of FHIR JSON since STU3
        table[alias] = _field(info.annotation)
    return table


def _field(annotation: Any) -> Field:
    many, nullable_items = False, False
    inner = _strip_none(annotation)
    if typing.get_origin(inner) is list:
        many = True
        item = typing.get_args(inner)[0]
        stripped = _strip_none(item)
        nullable_items = stripped is not item
        inner = stripped
    kind, model = _leaf(inner)
    return Field(kind, many, nullable_items, model)


def _strip_none(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _leaf(annotation: Any) -> tuple[Kind, Model | None]:
    if hasattr(annotation, "get_model_klass"):
        model: Model = annotation.get_model_klass()
        return ("resource", None) if model.__name__ == "Resource" else ("object", model)
    base = (
        typing.get_args(annotation)[0]
        if typing.get_origin(annotation) is typing.Annotated
        else annotation
    )
    if base in _PLAIN_KINDS:
        return _PLAIN_KINDS[base], None
    # Everything else in the R4B models (str, dates, times, base64 bytes, uuid, url unions)
    # is a JSON string; an unexpected annotation would surface here in the tests.
    if base in _STRING_TYPES or typing.get_origin(base) in (typing.Union, types.UnionType):
        return "string", None
    raise TypeError(f"unhandled annotation in R4B model: {annotation!r}")
