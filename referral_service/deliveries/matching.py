"""Whether an event's focus passes a subscription's filters (the backport filter criteria). Pure.

A filter means what the same parameter means in a search (`store/query.py`): the focus version is
indexed as the store indexes it (`fhir_adapters.search_params.index_entries`) and the filter's
value compared with the indexed values of that parameter:
- a token (`status`, `code`, `category`): `code` matches any system, `system|code` both, `|code`
  only a code without a system;
- a reference (`owner`, `requester`, `based-on`): `Organization/x`, or an absolute URL ending in
  `Organization/x` (ours, `<fhir_base_url>/Organization/x`, as a search reads it); a bare id names
  nothing;
- `_id`: the focus's id;
- commas separate alternatives, any of which may match (`\\,` is a literal comma).

Filters apply to their own resource type: on a topic with two (Procedure and Observation) a
`Procedure?code=...` filter narrows the Procedures and leaves the Observations alone, and every
filter on the focus's type must match. A parameter that is not a token or a reference matches
nothing (the Subscription API accepts none: `topics.Topic.can_filter_by`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from fhir_adapters.rules import split_reference
from fhir_adapters.search_params import PARAMS, IndexEntry, index_entries, parse_token
from referral_service.deliveries.topics import Filter
from referral_service.store.query import split_values


def matches(filters: Iterable[Filter], rtype: str, rid: str, body: dict[str, Any]) -> bool:
    own = [f for f in filters if f.resource_type in ("", rtype)]
    if not own:
        return True
    entries = index_entries(rtype, body)
    return all(_matches_one(f, rtype, rid, entries) for f in own)


def _matches_one(item: Filter, rtype: str, rid: str, entries: Sequence[IndexEntry]) -> bool:
    alternatives = split_values(item.value)
    if item.name == "_id":
        return rid in alternatives
    indexed = [e for e in entries if e.name == item.name]
    kind = PARAMS.get(rtype, {}).get(item.name)
    if kind == "token":
        return any(_token(value, indexed) for value in alternatives)
    if kind == "reference":
        return any(_reference(value, indexed) for value in alternatives)
    return False


def _token(value: str, indexed: Sequence[IndexEntry]) -> bool:
    system, code, system_given = parse_token(value)
    return any(
        (code is None or entry.value == code) and (not system_given or entry.system == system)
        for entry in indexed
    )


def _reference(value: str, indexed: Sequence[IndexEntry]) -> bool:
    parts = split_reference(value)
    if parts is None:
        return False
    target = f"{parts[0]}/{parts[1]}"
    return any(entry.value == target for entry in indexed)
