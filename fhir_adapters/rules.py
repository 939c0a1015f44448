"""Validation beyond fhir.resources: value sets, NHS number, UK Core and SDOH profile rules.

fhir.resources checks structure and cardinality only (standards.md §6.3), so the codes SPIS relies
on are checked here. Pure functions on already-parsed dicts. Every failure is a 422 FhirError whose
expression is a FHIRPath; when a resource breaks several rules they are all reported at once.
Issue codes: ``required`` for a missing element, ``code-invalid`` for a code outside its value set
or not the fixed code, ``value`` for a bad value, ``business-rule`` for profile cardinality rules.
Diagnostics name the element and the rule, never the value sent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any, NoReturn

from fhir_adapters import codes
from fhir_adapters.outcome import FhirError, Issue

JsonPath = tuple[str | int, ...]

_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
_NHS_NUMBER = re.compile(r"^[0-9]{10}$")

# Type/id, optionally behind a base URL and followed by /_history/vid (dropped).
_REFERENCE = re.compile(
    r"^(?:https?://[^?#\s]+/)?(?P<type>[A-Z][A-Za-z]{1,63})/(?P<id>[A-Za-z0-9.\-]{1,64})"
    r"(?:/_history/[A-Za-z0-9.\-]{1,64})?$"
)


# --- NHS number -----------------------------------------------------------------------------------


def nhs_number_problem(value: str) -> str | None:
    """What is wrong with an NHS number, in words that never quote it; None when it is valid."""
    if not _NHS_NUMBER.match(value):
        return "is not 10 digits"
    return None if nhs_number_is_valid(value) else "fails the Modulus 11 check"


def nhs_number_is_valid(value: str) -> bool:
    """10 digits whose last is the Modulus 11 check digit of the first nine (standards §2.4)."""
    if not _NHS_NUMBER.match(value):
        return False
    total = sum(int(digit) * weight for digit, weight in zip(value[:9], _NHS_WEIGHTS, strict=True))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(value[9])  # a computed 10 means no valid number


def nhs_number(patient: dict[str, Any]) -> str | None:
    """The value of the (first) NHS number identifier, or None."""
    for _, identifier in _nhs_identifiers(patient):
        value = identifier.get("value")
        if isinstance(value, str):
            return value
    return None


def _nhs_identifiers(patient: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, identifier in enumerate(_dicts(patient.get("identifier"))):
        if identifier.get("system") == codes.NHS_NUMBER_SYSTEM:
            yield i, identifier


# --- resource rules -------------------------------------------------------------------------------


def check_patient(patient: dict[str, Any]) -> None:
    """UK Core: exactly one NHS number identifier, and it passes Modulus 11."""
    found = list(_nhs_identifiers(patient))
    if not found:
        _fail(_missing("Patient.identifier", "an NHS number identifier is required"))
    if len(found) > 1:
        msg = "Patient.identifier: exactly one NHS number identifier is allowed"
        _fail(Issue("business-rule", msg, ("Patient.identifier",)))
    i, identifier = found[0]
    where = f"Patient.identifier[{i}].value"
    value = identifier.get("value")
    if not isinstance(value, str) or not value:
        _fail(_missing(where, "the NHS number identifier has no value"))
    if problem := nhs_number_problem(value):
        _fail(Issue("value", f"Patient.identifier: NHS number {problem}", (where,)))


def check_consent(consent: dict[str, Any]) -> None:
    """The referral Consent (DESIGN §6): status, patient-privacy scope, patient, provision.type."""
    provision = consent.get("provision")
    provision_type = provision.get("type") if isinstance(provision, dict) else None
    _raise_all(
        _in_value_set("Consent.status", consent.get("status"), codes.CONSENT_STATUSES),
        _has_coding(
            "Consent.scope",
            consent.get("scope"),
            codes.CONSENT_SCOPE_SYSTEM,
            codes.CONSENT_SCOPE_PATIENT_PRIVACY,
        ),
        _has_reference("Consent.patient", consent.get("patient")),
        _in_value_set("Consent.provision.type", provision_type, codes.CONSENT_PROVISION_TYPES),
    )


def check_service_request(sr: dict[str, Any]) -> None:
    """A referral ServiceRequest as a practice submits it (DESIGN §3 step 1)."""
    _raise_all(
        _in_value_set("ServiceRequest.status", sr.get("status"), codes.SERVICE_REQUEST_STATUSES),
        _fixed_code("ServiceRequest.intent", sr.get("intent"), "order"),
        _has_coding(
            "ServiceRequest.code",
            sr.get("code"),
            codes.SNOMED,
            codes.SOCIAL_PRESCRIBING_REFERRAL,
        ),
        _has_reference("ServiceRequest.subject", sr.get("subject")),
        _has_reference_or_identifier("ServiceRequest.requester", sr.get("requester")),
    )


def check_referral_task(task: dict[str, Any]) -> None:
    """SDOHCC-TaskForReferralManagement (standards §1.5)."""
    status = task.get("status")
    _raise_all(
        _in_value_set("Task.status", status, codes.REFERRAL_TASK_STATUSES),
        _fixed_code("Task.intent", task.get("intent"), "order"),
        _has_coding("Task.code", task.get("code"), codes.TASK_CODE_SYSTEM, codes.TASK_CODE_FULFILL),
        _has_reference("Task.focus", task.get("focus")),
        _has_reference("Task.for", task.get("for")),
        _has_reference("Task.requester", task.get("requester")),
        _present("Task.authoredOn", task.get("authoredOn")),
        _status_reason(task) if status in codes.STATUS_REASON_REQUIRED else None,
    )


def _status_reason(task: dict[str, Any]) -> Issue | None:
    reason = task.get("statusReason")
    text = reason.get("text") if isinstance(reason, dict) else None
    if isinstance(text, str) and text.strip():
        return None
    msg = "Task.statusReason.text: required for status rejected, cancelled, on-hold or failed"
    return Issue("required", msg, ("Task.statusReason.text",))


# --- small checks: each returns the Issue it finds, or None ---------------------------------------


def _present(where: str, value: object) -> Issue | None:
    return None if value not in (None, "", [], {}) else _missing(where, "required")


def _has_reference(where: str, value: object) -> Issue | None:
    return None if reference(value) else _missing(where, "a reference is required")


def _has_reference_or_identifier(where: str, value: object) -> Issue | None:
    """A literal reference, or a logical one (NHS APIs name organisations by ODS code)."""
    return None if reference(value) or logical_identifier(value) else _has_reference(where, value)


def logical_identifier(value: object) -> tuple[str, str] | None:
    """(system, value) of a Reference.identifier, or None."""
    identifier = value.get("identifier") if isinstance(value, dict) else None
    if not isinstance(identifier, dict):
        return None
    system, code = identifier.get("system"), identifier.get("value")
    return (system, code) if isinstance(system, str) and isinstance(code, str) else None


def _in_value_set(where: str, value: object, allowed: frozenset[str]) -> Issue | None:
    if value is None:
        return _missing(where, "required")
    if value in allowed:
        return None
    msg = f"{where}: not in the allowed codes ({', '.join(sorted(allowed))})"
    return Issue("code-invalid", msg, (where,))


def _fixed_code(where: str, value: object, fixed: str) -> Issue | None:
    if value is None:
        return _missing(where, "required")
    return None if value == fixed else Issue("code-invalid", f"{where}: must be {fixed}", (where,))


def _has_coding(where: str, concept: object, system: str, code: str) -> Issue | None:
    if not isinstance(concept, dict) or not concept.get("coding"):
        return _missing(where, f"a coding {system}#{code} is required")
    for coding in _dicts(concept.get("coding")):
        if coding.get("system") == system and coding.get("code") == code:
            return None
    msg = f"{where}: must contain the coding {system}#{code}"
    return Issue("code-invalid", msg, (f"{where}.coding",))


def _missing(where: str, what: str) -> Issue:
    return Issue("required", f"{where}: {what}", (where,))


def _raise_all(*found: Issue | None) -> None:
    issues = [issue for issue in found if issue is not None]
    if issues:
        raise FhirError.many(422, issues)


def _fail(issue: Issue) -> NoReturn:
    raise FhirError.many(422, [issue])


# --- references -----------------------------------------------------------------------------------


def reference(value: object) -> str | None:
    """The ``reference`` string of a Reference element, or None."""
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref:
            return ref
    return None


@functools.lru_cache(maxsize=4096)
def split_reference(ref: str) -> tuple[str, str] | None:
    """``Patient/1``, ``https://x/fhir/Patient/1`` or ``.../Patient/1/_history/2`` -> (type, id).

    None for what cannot name a resource on its own: ``urn:uuid:``/``urn:oid:`` (Bundle-local),
    conditional references (``Patient?identifier=...``), ``#contained`` and anything else.

    Remembered: a time bank's batch asks it about the same few references (its Patient, the
    referral's orders) again and again, in the index, the checks and the prefetch: its regular
    expression was 2.4% of a batch's CPU."""
    match = _REFERENCE.match(ref)
    return (match["type"], match["id"]) if match else None


def references(data: dict[str, Any]) -> list[tuple[JsonPath, str]]:
    """Every Reference.reference string in a resource, with the JSON path to that string.

    The path ends with the ``"reference"`` key, e.g. ``(("subject", "reference"), "urn:uuid:..")``.
    Walks contained resources too, in document order.
    """
    return [((*_unlink(link), "reference"), holder["reference"]) for link, holder in _holders(data)]


def reference_strings(data: dict[str, Any]) -> list[str]:
    """The strings of `references`, in the same (document) order, without their paths: for the
    callers that need only those (each entry of a batch is walked for them twice). Half the cost
    of `references`: no generator, no path links, each container pushed as it is."""
    found: list[str] = []
    stack: list[Any] = [data]
    pop, push = stack.pop, stack.append
    while stack:
        value = pop()
        if isinstance(value, dict):
            ref = value.get("reference")
            if isinstance(ref, str):
                found.append(ref)
            children: Any = value.values()
        else:
            children = value
        # Pushed in reverse so that they come out in document order.
        for child in reversed(children):
            if isinstance(child, _CONTAINERS):
                push(child)
    return found


_CONTAINERS = (dict, list)


def rewrite_references(data: dict[str, Any], mapping: dict[str, str]) -> None:
    """Replace, in place, every Reference.reference equal to a key of ``mapping``.

    Used for transactions: ``urn:uuid:...`` fullUrls become the ``Type/id`` the server assigned.
    """
    for _, holder in _holders(data):
        replacement = mapping.get(holder["reference"])
        if replacement is not None:
            holder["reference"] = replacement


# A path as nested (parent, key) pairs: cheap to extend, turned into a tuple only when reported.
_Link = tuple[Any, str | int] | None


def _holders(data: dict[str, Any]) -> Iterator[tuple[_Link, dict[str, Any]]]:
    """Every object holding a string ``reference``; iterative so odd input cannot blow the stack.

    Called for every entry of a batch more than once: written for speed (a tuple, not a union,
    for `isinstance`; lists by index), a third faster than pairing keys with values by `zip`."""
    stack: list[tuple[_Link, Any]] = [(None, data)]
    pop, push = stack.pop, stack.append
    while stack:
        link, value = pop()
        # Pushed in reverse so that the results come out in document order.
        if isinstance(value, dict):
            if isinstance(value.get("reference"), str):
                yield link, value
            for key, child in reversed(value.items()):
                if isinstance(child, (dict, list)):
                    push(((link, key), child))
        else:
            for index in range(len(value) - 1, -1, -1):
                child = value[index]
                if isinstance(child, (dict, list)):
                    push(((link, index), child))


def _unlink(link: _Link) -> JsonPath:
    parts: list[str | int] = []
    while link is not None:
        link, part = link
        parts.append(part)
    return tuple(reversed(parts))


def _dicts(value: object) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return [value] if isinstance(value, dict) else []
