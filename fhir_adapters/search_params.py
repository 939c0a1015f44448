"""Search index extraction and search-value parsing for the FHIR search parameters SPIS supports.

Resources are stored as JSON; what a search can match is pulled out once, at write time, into
``IndexEntry`` rows (DESIGN §13: keep searchable fields in indexed columns). ``_id`` and
``_lastUpdated`` belong to the store, not to this table.

Dates follow FHIR's implicit ranges (see ``_dates``): "2024" covers the whole year, both ends
inclusive, in UTC, to the microsecond.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal, NamedTuple

from fhir_adapters._dates import period_of
from fhir_adapters.outcome import FhirError
from fhir_adapters.rules import reference, split_reference

Kind = Literal["token", "reference", "date"]


class IndexEntry(NamedTuple):
    """One searchable value: a token (system, value), a reference ("Type/id") or a date range.

    A named tuple rather than a frozen dataclass: made and hashed (to drop duplicates) some
    fifteen times for each questionnaire of a batch and its score, at a tenth of the cost."""

    name: str
    value: str | None = None
    system: str | None = None
    start: datetime | None = None  # None for an open Period start
    end: datetime | None = None  # None for an open (ongoing) Period end


# resource type -> parameter -> (kind, FHIR element paths; choice types listed one by one)
_SPECS: dict[str, dict[str, tuple[Kind, tuple[str, ...]]]] = {
    "Task": {
        "status": ("token", ("status",)),
        "business-status": ("token", ("businessStatus",)),
        "code": ("token", ("code",)),
        "intent": ("token", ("intent",)),
        "identifier": ("token", ("identifier",)),
        "owner": ("reference", ("owner",)),
        "requester": ("reference", ("requester",)),
        "focus": ("reference", ("focus",)),
        "patient": ("reference", ("for",)),
        "subject": ("reference", ("for",)),
        "part-of": ("reference", ("partOf",)),
        "based-on": ("reference", ("basedOn",)),
        "authored-on": ("date", ("authoredOn",)),
    },
    "ServiceRequest": {
        "status": ("token", ("status",)),
        "intent": ("token", ("intent",)),
        "category": ("token", ("category",)),
        "code": ("token", ("code",)),
        "identifier": ("token", ("identifier",)),
        "patient": ("reference", ("subject",)),
        "subject": ("reference", ("subject",)),
        "requester": ("reference", ("requester",)),
        "based-on": ("reference", ("basedOn",)),
        "supporting-info": ("reference", ("supportingInfo",)),
        "authored": ("date", ("authoredOn",)),
    },
    "Observation": {
        "status": ("token", ("status",)),
        "code": ("token", ("code",)),
        "category": ("token", ("category",)),
        "identifier": ("token", ("identifier",)),
        "patient": ("reference", ("subject",)),
        "subject": ("reference", ("subject",)),
        "based-on": ("reference", ("basedOn",)),
        "derived-from": ("reference", ("derivedFrom",)),
        "date": ("date", ("effectiveDateTime", "effectivePeriod", "effectiveInstant")),
    },
    "Procedure": {
        "status": ("token", ("status",)),
        "code": ("token", ("code",)),
        "category": ("token", ("category",)),
        "identifier": ("token", ("identifier",)),
        "patient": ("reference", ("subject",)),
        "subject": ("reference", ("subject",)),
        "based-on": ("reference", ("basedOn",)),
        "date": ("date", ("performedDateTime", "performedPeriod")),
    },
    # Deliberately no birthdate or name: the search index is not encrypted, so it holds nothing
    # that identifies a person (NHS numbers only as a blind index).
    "Patient": {
        "identifier": ("token", ("identifier",)),
        "gender": ("token", ("gender",)),
    },
    "Consent": {
        "status": ("token", ("status",)),
        "scope": ("token", ("scope",)),
        "category": ("token", ("category",)),
        "identifier": ("token", ("identifier",)),
        "patient": ("reference", ("patient",)),
        "date": ("date", ("dateTime",)),
    },
    "Condition": {
        "code": ("token", ("code",)),
        "category": ("token", ("category",)),
        "patient": ("reference", ("subject",)),
        "subject": ("reference", ("subject",)),
    },
    "QuestionnaireResponse": {
        "status": ("token", ("status",)),
        "patient": ("reference", ("subject",)),
        "subject": ("reference", ("subject",)),
        "based-on": ("reference", ("basedOn",)),
        # A canonical, indexed as written (version dropped) and as "Questionnaire/id" if it is one.
        "questionnaire": ("reference", ("questionnaire",)),
        "authored": ("date", ("authored",)),
    },
    "Organization": {
        "identifier": ("token", ("identifier",)),
    },
}

PARAMS: dict[str, dict[str, str]] = {
    resource_type: {name: kind for name, (kind, _) in specs.items()}
    for resource_type, specs in _SPECS.items()
}


def elements_of(resource_type: str, name: str) -> frozenset[str]:
    """The top-level elements a search parameter reads (`identifier` for Patient.identifier)."""
    _, paths = _SPECS[resource_type][name]
    return frozenset(path.split(".", 1)[0] for path in paths)


# `patient` parameters only index references whose target is a Patient (R4 search definitions).
_TARGET_TYPES = {"patient": "Patient"}

# A parameter stored as another's rows: where a type's `patient` reads the same element as its
# `subject`, its values are exactly the `subject` values that name a Patient, so it has no rows
# of its own (a batch of 100 questionnaires and their scores wrote 200 duplicate rows of 1,500).
# A search or an `_include` by `patient` reads `subject`'s rows, `Patient/` values only.
_STORED_AS: dict[tuple[str, str], str] = {
    (rtype, "patient"): "subject"
    for rtype, specs in _SPECS.items()
    if "patient" in specs and specs["patient"] == specs.get("subject")
}


def stored_name(resource_type: str, name: str) -> str:
    """The name of the rows a parameter's values are stored under (`_STORED_AS`): its own, or
    for `patient`, where it repeats `subject`, `subject` (whose `Patient/` values are its)."""
    return _STORED_AS.get((resource_type, name), name)


def index_entries(resource_type: str, data: dict[str, Any]) -> list[IndexEntry]:
    """Every IndexEntry for one resource, deduplicated, in parameter order; none for a parameter
    stored as another's rows (`stored_name`)."""
    entries: list[IndexEntry] = []
    for name, (kind, paths) in _SPECS.get(resource_type, {}).items():
        if (resource_type, name) in _STORED_AS:
            continue
        for path in paths:
            for value in _values(data, path):
                entries.extend(_EXTRACTORS[kind](name, value))
    return list(dict.fromkeys(entries))


def _values(data: dict[str, Any], path: str) -> list[Any]:
    """The values at a dotted element path, with arrays flattened at every step."""
    if "." not in path:  # every path indexed today: one element, read without the walk below
        value = data.get(path)
        if isinstance(value, list):
            return [v for v in value if v is not None]
        return [] if value is None else [value]
    current: list[Any] = [data]
    for step in path.split("."):
        found: list[Any] = []
        for node in current:
            value = node.get(step) if isinstance(node, dict) else None
            found.extend(value if isinstance(value, list) else [value])
        current = [v for v in found if v is not None]
    return current


def _token_entries(name: str, value: object) -> list[IndexEntry]:
    if isinstance(value, str):
        return [IndexEntry(name, value)]  # a plain code such as status
    if not isinstance(value, dict):
        return []
    if "coding" in value:  # CodeableConcept
        return [e for coding in _as_list(value["coding"]) for e in _token_entries(name, coding)]
    key = "code" if "code" in value else "value"  # Coding, or Identifier
    code, system = value.get(key), value.get("system")
    if not isinstance(code, str):
        return []
    return [IndexEntry(name, code, system if isinstance(system, str) else None)]


def _reference_entries(name: str, value: object) -> list[IndexEntry]:
    if isinstance(value, str):  # a canonical (QuestionnaireResponse.questionnaire)
        canonical = value.split("|", 1)[0]
        found = [IndexEntry(name, canonical)]
        parts = split_reference(canonical)
        return found + ([IndexEntry(name, f"{parts[0]}/{parts[1]}")] if parts else [])
    ref = reference(value)
    parts = split_reference(ref) if ref else None
    if parts is None:
        return []
    target = _TARGET_TYPES.get(name)
    return [] if target and parts[0] != target else [IndexEntry(name, f"{parts[0]}/{parts[1]}")]


def _date_entries(name: str, value: object) -> list[IndexEntry]:
    if isinstance(value, str):
        period = period_of(value)
        return [IndexEntry(name, start=period[0], end=period[1])] if period else []
    if not isinstance(value, dict):
        return []
    start, end = value.get("start"), value.get("end")  # a Period: either end may be open
    start_period = period_of(start) if isinstance(start, str) else None
    end_period = period_of(end) if isinstance(end, str) else None
    if start_period is None and end_period is None:
        return []
    low = start_period[0] if start_period else None
    high = end_period[1] if end_period else None
    return [IndexEntry(name, start=low, end=high)]


_EXTRACTORS = {"token": _token_entries, "reference": _reference_entries, "date": _date_entries}


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- dates ----------------------------------------------------------------------------------------

DATE_PREFIXES = frozenset({"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb"})


def first_instant(value: str) -> datetime | None:
    """The first UTC instant a FHIR date/dateTime/instant stands for; None if it is not one."""
    period = period_of(value)
    return period[0] if period else None


def parse_search_date(value: str) -> tuple[str, datetime, datetime]:
    """``ge2024-05`` -> ("ge", 2024-05-01T00:00Z, 2024-05-31T23:59:59.999999Z)."""
    prefix = value[:2] if value[:2] in DATE_PREFIXES else "eq"
    text = value[2:] if value[:2] in DATE_PREFIXES else value
    # An unencoded "+" in a query string arrives as a space: "...T10:00:00 01:00".
    text = re.sub(r" (\d{2}:\d{2})$", r"+\1", text)
    period = period_of(text)
    if period is None:
        raise FhirError(
            400,
            "invalid",
            "Invalid date search value: expected [eq|ne|gt|lt|ge|le|sa|eb]"
            "YYYY[-MM[-DD[Thh:mm[:ss[.sss]][Z|+hh:mm|-hh:mm]]]]",
        )
    return prefix, period[0], period[1]


# --- tokens ---------------------------------------------------------------------------------------

_UNESCAPE = re.compile(r"\\([\\|,$])")


def parse_token(value: str) -> tuple[str | None, str | None, bool]:
    """FHIR token syntax -> (system, code, system_given).

    ``system|code`` -> (system, code, True); ``|code`` -> (None, code, True): explicitly no system;
    ``code`` -> (None, code, False): any system; ``system|`` -> (system, None, True).
    ``\\|`` is a literal bar. The caller splits on unescaped commas (OR) before calling this.
    """
    bar = _first_unescaped_bar(value)
    if bar is None:
        return None, _unescape(value) or None, False
    system, code = _unescape(value[:bar]), _unescape(value[bar + 1 :])
    return system or None, code or None, True


def _first_unescaped_bar(value: str) -> int | None:
    escaped = False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "|":
            return i
    return None


def _unescape(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text)
