"""Stored FHIR JSON -> what a web page shows (issue 9). Pure: no database, no HTTP.

Each summary is a small frozen dataclass of plain values, read tolerantly: a missing or malformed
optional element is None or empty, never an error, because pages show what others sent.
References are kept as "Type/id" strings (``id_of`` gives the id). Dates and instants are the
FHIR strings as stored; a page formats them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from fhir_adapters import codes
from fhir_adapters.ledger import (
    ENTERED_IN_ERROR,
    LEDGER_CODE_SYSTEM,
    TIME_CREDIT_DIRECTION,
    TIME_CREDIT_HOURS,
    Direction,
)
from fhir_adapters.rules import split_reference
from fhir_adapters.views import SUBSETTED
from fhir_adapters.wellbeing import SWEMWBS_SCORE, WELLBEING_SYSTEM, WEMWBS_SCORE

Json = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Coded:
    """One coding: system, code and its display (None when the sender gave none)."""

    system: str | None
    code: str
    display: str | None


@dataclass(frozen=True, slots=True)
class TaskOutput:
    kind: str | None  # resulting-activity (a Procedure) or additional-content (an Observation)
    reference: str


@dataclass(frozen=True, slots=True)
class TaskSummary:
    id: str | None
    version_id: str | None  # for If-Match when the page changes the Task
    status: str | None
    business_status: tuple[Coded, ...]
    authored_on: str | None
    last_modified: str | None
    owner: str | None
    requester: str | None
    focus: str | None
    patient: str | None  # Task.for
    part_of: tuple[str, ...]
    status_reason: str | None  # the text a person reads
    status_reason_code: Coded | None  # e.g. a decline reason
    outputs: tuple[TaskOutput, ...]


@dataclass(frozen=True, slots=True)
class RequestSummary:
    id: str | None
    identifier: str | None  # the referral's identifier value (the first one)
    status: str | None
    intent: str | None
    authored_on: str | None
    requester: str | None
    patient: str | None
    based_on: tuple[str, ...]  # a filler order's original referral
    reasons: tuple[Coded, ...]
    reason_texts: tuple[str, ...]
    needs: tuple[Coded, ...]  # offer categories, with SPIS's displays


@dataclass(frozen=True, slots=True)
class PersonSummary:
    id: str | None
    name: str | None  # "Given Family", as a broker addresses the person
    family_name: str | None
    given_names: tuple[str, ...]
    birth_date: str | None
    age: int | None  # on the day given, when the birth date is a full date
    postcode: str | None
    postcode_district: str | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    subsetted: bool  # a time bank's view: elements were left out


@dataclass(frozen=True, slots=True)
class ScoreSummary:
    id: str | None
    instrument: str | None  # swemwbs, wemwbs, ons4 or ucla3; None for another code
    label: str | None  # what the score is (the code's display)
    value: float | int | None
    raw_value: float | int | None  # SWEMWBS: the raw sum beside the metric score
    date: str | None
    response: str | None  # the QuestionnaireResponse it was derived from


@dataclass(frozen=True, slots=True)
class ActivitySummary:
    id: str | None
    activity: str | None  # offer category code
    activity_label: str | None
    date: str | None
    minutes: int | None  # from the hours Observation, when given
    direction: str | None  # "given" or "received", from the person's side


# --- Task -----------------------------------------------------------------------------------------


def task_summary(task: Json) -> TaskSummary:
    meta = _dict(task.get("meta"))
    reason = _dict(task.get("statusReason"))
    return TaskSummary(
        id=_str(task.get("id")),
        version_id=_str(meta.get("versionId")),
        status=_str(task.get("status")),
        business_status=_codings(task.get("businessStatus")),
        authored_on=_str(task.get("authoredOn")),
        last_modified=_str(task.get("lastModified")) or _str(meta.get("lastUpdated")),
        owner=_ref(task.get("owner")),
        requester=_ref(task.get("requester")),
        focus=_ref(task.get("focus")),
        patient=_ref(task.get("for")),
        part_of=_refs(task.get("partOf")),
        status_reason=_str(reason.get("text")),
        status_reason_code=next(iter(_codings(reason)), None),
        outputs=tuple(o for o in map(_output, _dicts(task.get("output"))) if o is not None),
    )


def _output(output: Json) -> TaskOutput | None:
    reference = _ref(output.get("valueReference"))
    if reference is None:
        return None
    kinds = _codings(output.get("type"))
    return TaskOutput(kinds[0].code if kinds else None, reference)


# --- ServiceRequest -------------------------------------------------------------------------------


def request_summary(service_request: Json) -> RequestSummary:
    reasons = _dicts(service_request.get("reasonCode"))
    return RequestSummary(
        id=_str(service_request.get("id")),
        identifier=next(
            (v for i in _dicts(service_request.get("identifier")) if (v := _str(i.get("value")))),
            None,
        ),
        status=_str(service_request.get("status")),
        intent=_str(service_request.get("intent")),
        authored_on=_str(service_request.get("authoredOn")),
        requester=_ref(service_request.get("requester")),
        patient=_ref(service_request.get("subject")),
        based_on=_refs(service_request.get("basedOn")),
        reasons=tuple(c for r in reasons for c in _codings(r)),
        reason_texts=tuple(t for r in reasons if (t := _str(r.get("text")))),
        needs=_needs(service_request),
    )


def _needs(service_request: Json) -> tuple[Coded, ...]:
    return tuple(
        Coded(c.system, c.code, codes.OFFER_CATEGORIES.get(c.code, c.display))
        for detail in _dicts(service_request.get("orderDetail"))
        for c in _codings(detail)
        if c.system == codes.OFFER_SYSTEM
    )


# --- Patient --------------------------------------------------------------------------------------


def person_summary(patient: Json, today: date) -> PersonSummary:
    """What a page shows of a Patient, typically a time bank's view of it (views.broker_view)."""
    name = _official_name(patient)
    family = _str(name.get("family"))
    given = tuple(g for g in (_str(x) for x in _list(name.get("given"))) if g)
    postcode = _home_postcode(patient)
    birth_date = _str(patient.get("birthDate"))
    tags = _dicts(_dict(patient.get("meta")).get("tag"))
    return PersonSummary(
        id=_str(patient.get("id")),
        name=" ".join([*given, family] if family else given) or _str(name.get("text")),
        family_name=family,
        given_names=given,
        birth_date=birth_date,
        age=age_on(birth_date, today) if birth_date else None,
        postcode=postcode,
        postcode_district=postcode_district(postcode) if postcode else None,
        phones=_telecom(patient, "phone"),
        emails=_telecom(patient, "email"),
        subsetted=any(t.get("code") == SUBSETTED["code"] for t in tags),
    )


def _official_name(patient: Json) -> Json:
    names = _dicts(patient.get("name"))
    live = [n for n in names if n.get("use") not in ("old", "maiden")] or names
    return next((n for n in live if n.get("use") == "official"), live[0] if live else {})


def _home_postcode(patient: Json) -> str | None:
    addresses = _dicts(patient.get("address"))
    home = [a for a in addresses if a.get("use") in (None, "home")] or addresses
    return next((p for a in home if (p := _str(a.get("postalCode")))), None)


def _telecom(patient: Json, system: str) -> tuple[str, ...]:
    return tuple(
        value
        for t in _dicts(patient.get("telecom"))
        if t.get("system") == system and (value := _str(t.get("value")))
    )


_FULL_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
# The outward code of a UK postcode: SE6, SE13, W1A, EC1V...
DISTRICT = re.compile(r"^[A-Z]{1,2}[0-9][0-9A-Z]?$")


def age_on(birth_date: str, today: date) -> int | None:
    """Whole years on ``today``; None unless ``birth_date`` is a full, real date."""
    match = _FULL_DATE.match(birth_date)
    if match is None:
        return None
    try:
        born = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def postcode_district(postcode: str) -> str | None:
    """``SE6 4RU`` -> ``SE6`` (the outward code time banks' catchments use); None if unreadable.
    Routing reads the patient's district with this too."""
    compact = postcode.upper().replace(" ", "")
    outward = compact[:-3] if len(compact) >= 5 else compact
    return outward if DISTRICT.match(outward) else None


# --- Observation (scores) -------------------------------------------------------------------------

_INSTRUMENT_BY_CODE: Final = {
    (codes.SNOMED, SWEMWBS_SCORE): "swemwbs",
    (codes.SNOMED, WEMWBS_SCORE): "wemwbs",
}
_INSTRUMENT_BY_PREFIX: Final = (("ons4-", "ons4"), ("ucla3-", "ucla3"), ("swemwbs-", "swemwbs"))


def score_summary(observation: Json) -> ScoreSummary:
    """A score Observation SPIS derived from a QuestionnaireResponse (wellbeing.py)."""
    coding = next(iter(_codings(observation.get("code"))), None)
    raw = next(
        (
            _quantity(c)
            for c in _dicts(observation.get("component"))
            if any(x.code == "swemwbs-raw" for x in _codings(c.get("code")))
        ),
        None,
    )
    derived = _refs(observation.get("derivedFrom"))
    return ScoreSummary(
        id=_str(observation.get("id")),
        instrument=_instrument(coding),
        label=(coding.display if coding else None)
        or _str(_dict(observation.get("code")).get("text")),
        value=_quantity(observation),
        raw_value=raw,
        date=_str(observation.get("effectiveDateTime")),
        response=next((r for r in derived if r.startswith("QuestionnaireResponse/")), None),
    )


def _instrument(coding: Coded | None) -> str | None:
    if coding is None:
        return None
    if found := _INSTRUMENT_BY_CODE.get((coding.system or "", coding.code)):
        return found
    if coding.system == WELLBEING_SYSTEM:
        return next((i for p, i in _INSTRUMENT_BY_PREFIX if coding.code.startswith(p)), None)
    return None


def _quantity(holder: Json) -> float | int | None:
    value = _dict(holder.get("valueQuantity")).get("value")
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- Procedure (activities) -----------------------------------------------------------------------

_DIRECTIONS: Final = frozenset(d.value for d in Direction)
_DIRECTION_NOTES: Final = {
    "gave this time": Direction.GIVEN.value,
    "received this time": Direction.RECEIVED.value,
}


def activity_summary(procedure: Json, hours: Json | None = None) -> ActivitySummary:
    """An exchange the referred person took part in (ledger.exchange_procedure), with the minutes
    and direction from its hours Observation (ledger.hours_observation) when that is given."""
    coding = next(
        (c for c in _codings(procedure.get("code")) if c.system == codes.OFFER_SYSTEM), None
    )
    period = _dict(procedure.get("performedPeriod"))
    when = _str(procedure.get("performedDateTime")) or _str(period.get("start"))
    minutes = _quantity(hours) if hours is not None else None
    return ActivitySummary(
        id=_str(procedure.get("id")),
        activity=coding.code if coding else None,
        activity_label=codes.OFFER_CATEGORIES.get(coding.code, coding.display) if coding else None,
        date=when,
        minutes=minutes if isinstance(minutes, int) else None,
        direction=(_hours_direction(hours) if hours is not None else None)
        or _note_direction(procedure),
    )


def _hours_direction(hours: Json) -> str | None:
    for component in _dicts(hours.get("component")):
        if any(c.code == TIME_CREDIT_DIRECTION for c in _codings(component.get("code"))):
            value = _codings(component.get("valueCodeableConcept"))
            found = [c.code for c in value if c.system == LEDGER_CODE_SYSTEM]
            return found[0] if found and found[0] in _DIRECTIONS else None
    return None


def hours_part_of(observation: Json) -> str | None:
    """The ``Procedure/<id>`` an exchange's hours Observation (ledger.hours_observation) belongs
    to; None for any other Observation (a score, an enrolment)."""
    coded = _codings(observation.get("code"))
    if not any(c.system == LEDGER_CODE_SYSTEM and c.code == TIME_CREDIT_HOURS for c in coded):
        return None
    return next((r for r in _refs(observation.get("partOf")) if r.startswith("Procedure/")), None)


def in_error(resource: Json) -> bool:
    """Recorded in error (e.g. a reversed exchange's Procedure and hours): no longer counts."""
    return resource.get("status") == ENTERED_IN_ERROR


def _note_direction(procedure: Json) -> str | None:
    """The Procedure says which way the time went only in its fixed note (ledger.py)."""
    for note in _dicts(procedure.get("note")):
        text = _str(note.get("text")) or ""
        for words, direction in _DIRECTION_NOTES.items():
            if words in text:
                return direction
    return None


# --- reading helpers ------------------------------------------------------------------------------


def id_of(reference: str | None) -> str | None:
    """``Patient/abc`` (or an absolute or versioned form of it) -> ``abc``; else None."""
    parts = split_reference(reference) if reference else None
    return parts[1] if parts else None


def _codings(concept: object) -> tuple[Coded, ...]:
    return tuple(
        Coded(_str(c.get("system")), code, _str(c.get("display")))
        for c in _dicts(_dict(concept).get("coding"))
        if (code := _str(c.get("code")))
    )


def _ref(value: object) -> str | None:
    return _str(_dict(value).get("reference"))


def _refs(value: object) -> tuple[str, ...]:
    return tuple(r for item in _list(value) if (r := _ref(item)))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _dict(value: object) -> Json:
    return value if isinstance(value, Mapping) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: object) -> list[Json]:
    return [item for item in _list(value) if isinstance(item, Mapping)]
