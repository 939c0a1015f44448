"""Reading the sources of the outcome rows, as SPIS: a patient's Tasks and score Observations,
and a Task's version history. FHIR is read here as stored JSON; `refresh.py` works on what this
returns. Which score Observations count, and for which referral, is said in refresh.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from fhir_adapters.search_params import first_instant
from referral_service.context import Context
from referral_service.kit.clock import as_utc
from referral_service.kit.refs import Ref
from referral_service.outcomes import cohort
from referral_service.outcomes.cohort import Scored, Version
from referral_service.store import repository as store
from referral_service.store.models import StoredResource
from referral_service.store.repository import TokenMatch

SCORE_STATUSES = frozenset({"final", "amended", "corrected"})
_MANY = 10_000  # far more Tasks or scores than one person has

Found = tuple[StoredResource, dict[str, Any]]


def patient(ctx: Context, patient_id: str) -> StoredResource | None:
    return store.get(ctx.session, ctx.principal, "Patient", patient_id)


def about(ctx: Context, rtype: str, patient_id: str, also: list[list[TokenMatch]]) -> list[Found]:
    query = [[TokenMatch("patient", f"Patient/{patient_id}")], *also]
    found = store.search(ctx.session, ctx.principal, rtype, query, limit=_MANY, offset=0)
    return [(row, orjson.loads(row.body)) for row in found]


def children(
    tasks: list[Found],
) -> dict[str, list[Found]]:
    """Time bank Tasks by the referral Task they are `partOf`."""
    kids: dict[str, list[Found]] = defaultdict(list)
    for row, task in tasks:
        parent = Ref.of((task.get("partOf") or [None])[0])
        if parent is not None and parent.rtype == "Task":
            kids[parent.id].append((row, task))
    return kids


def history(ctx: Context, task: StoredResource) -> list[Version]:
    """The versions of a Task row read here, oldest first: the row is the current one,
    `resource_version` keeps every one it replaced (no statement when there are none)."""
    versions = store.versions_of(ctx.session, task)
    return [
        Version(as_utc(v.last_updated), str(orjson.loads(v.body)["status"]))
        for v in reversed(versions)
    ]


@dataclass(frozen=True, slots=True)
class Score:
    scale: str
    based_on: frozenset[str]
    scored: Scored


def scores(ctx: Context, patient_id: str) -> list[Score]:
    codes = [
        TokenMatch("code", code, system, system_given=True) for system, code in cohort.SCALE_BY_CODE
    ]
    found = []
    for row, obs in about(ctx, "Observation", patient_id, [codes]):
        score = _score(row, obs)
        if score is not None:
            found.append(score)
    return found


def _score(row: StoredResource, obs: dict[str, Any]) -> Score | None:
    if obs.get("status") not in SCORE_STATUSES:
        return None
    scale = next(
        (
            cohort.SCALE_BY_CODE[key]
            for coding in (obs.get("code") or {}).get("coding") or []
            if (key := (coding.get("system"), coding.get("code"))) in cohort.SCALE_BY_CODE
        ),
        None,
    )
    value = (obs.get("valueQuantity") or {}).get("value")
    at = instant(obs.get("effectiveDateTime") or obs.get("effectiveInstant")) or instant(
        (obs.get("effectivePeriod") or {}).get("start")
    )
    if scale is None or not isinstance(value, int | float) or at is None:
        return None
    based_on = frozenset(
        str(ref) for item in obs.get("basedOn") or [] if (ref := Ref.of(item)) is not None
    )
    order = (as_utc(row.last_updated), row.id)
    return Score(scale, based_on, Scored(at, float(value), order))


def instant(value: object) -> datetime | None:
    return first_instant(value) if isinstance(value, str) else None
