"""A cost in fhir-core that checks nothing: finding a resource's model class by importing it anew.

When a model holds a whole resource (each `Bundle.entry.resource`, each contained resource),
fhir-core (1.1.12) finds that resource's model class with pydantic's `import_string` of a dotted
path from `FHIR_TYPES_MAPS`, such as `fhir.resources.R4B.questionnaireresponse.QuestionnaireResponse`.
pydantic first tries the whole path as a module name, which is not one: every time, the import
system searches for it, fails, and raises and catches an ImportError before the module is imported
and the class taken from it (~20 µs; a third of validating a batch of 100 questionnaires).

The paths are fixed and each names the same class for the life of the process, so each is looked
up once (`install`). The validation that follows is the library's own, unchanged; a path that does
not import still fails every time, as before (a failure is not remembered).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import fhir_core.types
from pydantic._internal._validators import import_string as _import_string


@lru_cache(maxsize=1024)  # the paths of FHIR_TYPES_MAPS: some 700
def _imported(path: str) -> Any:
    return _import_string(path)


def import_string(value: Any) -> Any:
    """pydantic's `import_string`, remembering what a path imported."""
    return _imported(value) if isinstance(value, str) else _import_string(value)


def install() -> None:
    """fhir-core's validators use the remembering `import_string` (idempotent)."""
    fhir_core.types.import_string = import_string  # type: ignore[attr-defined]


def installed() -> bool:
    return fhir_core.types.import_string is import_string  # type: ignore[attr-defined]
