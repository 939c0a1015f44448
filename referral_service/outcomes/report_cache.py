"""A board's reports, computed once and served again until something they rest on changes.

A report is a function of:

- the board's outcome rows: their version (`models.BoardVersion`), which every change moves on
  in its own transaction (a refresh, an exclusion, a rebuild: `repository.rows_changed`);
- the board's area: which practices and time banks are in it, their names and ODS codes;
- the settings its figures use (meaningful-change thresholds, the value of an hour, the WELLBY),
  the disclosure thresholds, the Measure's figures, and the report code (`ENGINE`);
- for social value, the programme cost entered for exactly the period.

The version is read from its row; everything else is hashed into a fingerprint on each request.
A cached report whose version and fingerprint both match is what computing it again would give,
so it is served as it is; any other is computed and cached in its place. A version is read
before the figures it stamps: figures computed while a change commits are stamped with the older
version and are never served once the change can be seen.

Only published cells are kept (aggregates after disclosure control, what the board reads in the
MeasureReport): nothing about a person. A time bank outside the board's area that takes its
referrals is labelled with the name it had when the report was computed (no code path renames an
organisation today).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Final

import orjson

from fhir_adapters.measures import (
    MIN_COUNT,
    MIN_N,
    ROUND_TO,
    SOCIAL_VALUE,
    Assumption,
    Cell,
    MeasureDefinition,
    Stratifier,
    Suppression,
)
from referral_service.config import Settings
from referral_service.kit.clock import as_utc, utcnow
from referral_service.outcomes import report_repository as repository
from referral_service.outcomes.figures import Scope

# Moved on whenever a change to the report code would change a published figure or label.
ENGINE: Final = 1
# A report's `pulled_at` is moved on at most this often (a pull served from the cache writes
# nothing else).
PULLED_RESOLUTION: Final = timedelta(hours=1)
# The settings a report's figures and assumptions read.
SETTINGS_PREFIXES: Final = ("outcome_meaningful_change", "social_value_", "wellby_")

Computed = tuple[tuple[Cell, ...], tuple[Assumption, ...]]
CacheKey = repository.CacheKey


def report(
    scope: Scope,
    measure: MeasureDefinition,
    focus: str | None,
    compute: Callable[[], Computed],
    *,
    pull: bool = True,
) -> Computed:
    """The report's cells and assumptions: cached when nothing they rest on has changed since,
    else `compute()`d and cached. `pull`: the board is pulling it (not the workers keeping it
    computed), which keeps it among the reports the workers keep computed (warm.py)."""
    session, now = scope.session, utcnow()
    key = (scope.board_id, measure.id, scope.start, scope.end, focus or "")
    version = repository.data_version(session, scope.board_id)
    stamp = fingerprint(scope, measure)
    found = repository.cached(session, key)
    if found is not None and found[0] == version and found[1] == stamp:
        if pull and as_utc(found[3]) < now - PULLED_RESOLUTION:
            repository.pulled(session, key, now)
        return decode(found[2])
    computed = compute()
    pulled_at = now if pull or found is None else as_utc(found[3])
    repository.put_cached(session, key, version, stamp, encode(computed), pulled_at)
    return computed


def fingerprint(scope: Scope, measure: MeasureDefinition) -> str:
    session = scope.session
    cost = None
    if measure is SOCIAL_VALUE:
        cost = repository.programme_cost(session, scope.board_id, scope.start, scope.end)
    parts = {
        "engine": ENGINE,
        "area": [
            [org_id, str(kind), name, ods]
            for org_id, kind, name, ods in repository.area(session, scope.board_id)
        ],
        "settings": _settings(scope.settings),
        "disclosure": [MIN_COUNT, MIN_N, ROUND_TO],
        "figures": [[f.code, f.kind, f.base, f.numerator, f.stratifiers] for f in measure.figures],
        "cost": cost,
    }
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _settings(settings: Settings) -> dict[str, Any]:
    return {
        name: value
        for name, value in settings.model_dump(mode="json").items()
        if name.startswith(SETTINGS_PREFIXES)
    }


def encode(computed: Computed) -> bytes:
    cells, assumptions = computed
    return orjson.dumps(
        {
            "cells": [
                [c.figure, c.stratifier, c.key, c.label, c.value, c.low, c.high, c.n, c.suppressed]
                for c in cells
            ],
            "assumptions": [[a.code, a.label, a.value] for a in assumptions],
        }
    )


_STRATIFIERS: Final = {s.value: s for s in Stratifier}
_SUPPRESSIONS: Final = {s.value: s for s in Suppression}


def decode(data: bytes) -> Computed:
    found = orjson.loads(data)
    stratifiers, suppressions = _STRATIFIERS, _SUPPRESSIONS
    cells = tuple(
        Cell(
            figure,
            stratifiers[stratifier],
            key,
            label,
            value,
            low,
            high,
            n,
            None if suppressed is None else suppressions[suppressed],
        )
        for figure, stratifier, key, label, value, low, high, n, suppressed in found["cells"]
    )
    return cells, tuple(Assumption(*item) for item in found["assumptions"])
