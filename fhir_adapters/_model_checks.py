"""fhir-core's checks around building each model, with what they read of the model's class worked
out once instead of for every element of every resource: the two it makes after building a model
(below), and the questions about each field its null check asks before (`_Remembered`).

After building a model, fhir-core (1.1.12) checks that each required primitive element has a value
or an extension saying why not (`_validate_required_primitive_elements`), and that at most one
type of each choice element is given, and one where the choice is required
(`_validate_one_of_many`). Each run asked the class anew for its required fields and choice groups
(lists the generated classes build on every call), its alias mapping, and each named field's
`FieldInfo` through `model_fields`, and checked that every choice group is declared on its first
field. The checks run for every element of a resource, and twice for every nested one: once when
its model is built, again when the parent's field validator passes the built model through the
model's schema. For a batch of 100 questionnaires, 7,500 models and 15,000 runs: most of their
cost was the reading of the class, which is the same every time.

What a class declares is read once (`_plan`), on first use, with the library's own methods and the
same consistency check; each run then makes the library's checks, unchanged, on the instance: the
same values tested the same way, the same errors raised with the same messages and locations.
`install` puts them in place of the library's methods (`validate_after_model_construction` looks
them up on the instance, so every model class uses them), and the remembered answers in place of
the functions the null check calls (looked up in the module's namespace at each call).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fhir_core.fhirabstractmodel
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from fhir_core.utils import is_list_type, is_primitive_type
from pydantic.fields import FieldInfo
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

_ORIGINAL_REQUIRED = FHIRAbstractModel._validate_required_primitive_elements
_ORIGINAL_ONE_OF_MANY = FHIRAbstractModel._validate_one_of_many

# (field name, its extension sibling or None, the field's alias) for each required primitive
Required = tuple[tuple[str, str | None, str | None], ...]
# (the fields of one choice element, whether one of them is required) for each choice element
Choices = tuple[tuple[list[str], bool], ...]

_PLANS: dict[type[Any], tuple[Required, Choices]] = {}  # filled once per class: no lock needed


def _plan(model: FHIRAbstractModel) -> tuple[Required, Choices]:
    """What `model`'s class declares, as the library's checks read it on every run."""
    cls = type(model)
    plan = _PLANS.get(cls)
    if plan is not None:
        return plan
    fields = cls.model_fields
    aliases = cls.get_alias_mapping()
    required: Required = tuple(
        (aliases[name], ext, fields[aliases[name]].alias)
        for name, ext in model.get_required_fields()
    )
    choices = []
    for prefix, group in model.get_one_of_many_fields().items():
        extra: Any = fields[group[0]].json_schema_extra
        assert extra["one_of_many"] == prefix  # as the library asserts on every run
        choices.append((group, extra["one_of_many_required"] is True))
    plan = _PLANS[cls] = (required, tuple(choices))
    return plan


def validate_required_primitive_elements(self: FHIRAbstractModel) -> None:
    """fhir-core's `_validate_required_primitive_elements`, reading the class once (`_plan`)."""
    required = _plan(self)[0]
    if not required:
        return
    _missing = object()
    errors: list[InitErrorDetails] = []
    for field_key, ext, alias in required:
        value = getattr(self, field_key, _missing)
        if value not in (_missing, None):
            continue
        ext_value: Any = getattr(self, ext, _missing) if ext is not None else None
        missing_ext = True
        if ext_value not in (_missing, None):
            if isinstance(ext_value, dict):
                missing_ext = len(ext_value.get("extension", [])) == 0
            # The library tests a FHIRPrimitiveExtension and any other value alike.
            elif ext_value.extension and len(ext_value.extension) > 0:
                missing_ext = False
        if missing_ext:
            error_type = PydanticCustomError(
                "model_field_validation.missing",
                "Value for the field '{field_name}' is required.",
                {"field_name": alias},
            )
            loc: Any = (alias,)  # the library's: the alias, always set on generated models
            errors.append({"type": error_type, "loc": loc, "input": value})
    if errors:
        raise ValidationError.from_exception_data(type(self).__name__, errors)


def validate_one_of_many(self: FHIRAbstractModel) -> None:
    """fhir-core's `_validate_one_of_many`, reading the class once (`_plan`)."""
    for fields, required in _plan(self)[1]:
        found = False
        for field in fields:
            if getattr(self, field, None) is not None:
                if found:
                    raise ValueError(
                        "Any of one field value is expected from "
                        f"this list {fields}, but got multiple!"
                    )
                found = True
        if required and not found:
            raise ValueError(f"Expect any of field value from this list {fields}.")


class _Remembered(dict[FieldInfo, bool]):
    """A fact about a field, worked out by the library's function the first time it is asked
    for and then looked up (`__getitem__`, a dict's own: no Python call)."""

    def __init__(self, function: Callable[[FieldInfo], bool]) -> None:
        super().__init__()
        self.function = function

    def __missing__(self, field: FieldInfo) -> bool:
        fact = self[field] = self.function(field)
        return fact


# Before its validators build a model, fhir-core refuses a null inside a list of complex elements
# (`reject_null_complex_elements`): for each of the class's fields, on every element, it asks
# whether the field is a list (`is_list_type`, remembered by the library in a cache of 1,024
# fields) and for lists whether of primitives (`is_primitive_type`, worked out anew each time),
# about 0.2 µs a question: 4 to 7 µs for each of the 7,500 elements of a batch of 100
# questionnaires. The answers depend on the field alone and never change: remembered here, the
# same checks ask the same questions and get the same answers, from a lookup.
_IS_LIST = _Remembered(is_list_type)
_IS_PRIMITIVE = _Remembered(is_primitive_type)


def install() -> None:
    """Every model class uses these checks and answers (idempotent)."""
    FHIRAbstractModel._validate_required_primitive_elements = (  # type: ignore[method-assign]
        validate_required_primitive_elements
    )
    FHIRAbstractModel._validate_one_of_many = validate_one_of_many  # type: ignore[method-assign]
    _answer_with(_IS_LIST.__getitem__, _IS_PRIMITIVE.__getitem__)


def uninstall() -> None:
    """The library's own checks again (for the tests that compare the two)."""
    FHIRAbstractModel._validate_required_primitive_elements = _ORIGINAL_REQUIRED  # type: ignore[method-assign]
    FHIRAbstractModel._validate_one_of_many = _ORIGINAL_ONE_OF_MANY  # type: ignore[method-assign]
    _answer_with(is_list_type, is_primitive_type)


def _answer_with(
    is_list: Callable[[FieldInfo], bool], is_primitive: Callable[[FieldInfo], bool]
) -> None:
    """The functions the model module's checks call (looked up in its namespace at each call)."""
    setattr(fhir_core.fhirabstractmodel, "is_list_type", is_list)  # noqa: B010
    setattr(fhir_core.fhirabstractmodel, "is_primitive_type", is_primitive)  # noqa: B010


def installed() -> bool:
    return (
        FHIRAbstractModel._validate_one_of_many is validate_one_of_many
        and getattr(fhir_core.fhirabstractmodel, "is_list_type", None) == _IS_LIST.__getitem__
    )
