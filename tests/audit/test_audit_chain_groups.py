"""The hashed form of an event: unchanged for every event without groups (so chains and anchors
from before still verify), and covering the groups of a merged read; part ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from referral_service.audit import chain

EVENT = chain.Event(
    "0b6f1c9e-2f4a-4c1e-9d1a-3a5b7c9d1e2f",
    datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC),
    "E",
    "search",
    "client-a",
    "org-a",
    "org-a",
    "p1",
    ("Task/t1", "Patient/p1"),
    "TREAT",
    0,
    None,
)
# Computed by the code before merged reads existed (main at cc74708).
HASH_BEFORE = "7ac5f792421136f65db5d7f8fad918c66b6d8d6a8c89fd073d348e3fb6593199"


def test_an_event_without_groups_hashes_as_before() -> None:
    assert b"entity_groups" not in chain.canonical(7, EVENT)
    assert chain.link_hash(chain.GENESIS, 7, EVENT) == HASH_BEFORE


def merged() -> chain.Event:
    groups = [chain.Group("org-a", "p1", 2), chain.Group("org-b", "p2", 1)]
    return replace(
        EVENT,
        tenant_org_id=None,
        patient_id=None,
        entities=("Task/t1", "Patient/p1", "Task/t2"),
        entity_groups=chain.groups_column(groups),
    )


def test_the_groups_are_hashed_and_split_the_entities() -> None:
    event = merged()
    moved = replace(event, entity_groups='[["org-a","p1",1],["org-b","p2",2]]')
    assert chain.link_hash(chain.GENESIS, 7, event) != chain.link_hash(chain.GENESIS, 7, moved)
    first, second = chain.parts(event)
    assert (first.id, first.tenant_org_id, first.patient_id, first.entities) == (
        f"{EVENT.id}-0", "org-a", "p1", ("Task/t1", "Patient/p1"))  # fmt: skip
    assert (second.id, second.tenant_org_id, second.patient_id, second.entities) == (
        f"{EVENT.id}-1", "org-b", "p2", ("Task/t2",))  # fmt: skip
    assert first.entity_groups is None
    assert chain.parts(EVENT) == [EVENT]


@pytest.mark.parametrize(
    ("shown", "split"),
    [
        (f"{EVENT.id}-0", (EVENT.id, 0)),
        (f"{EVENT.id}-12", (EVENT.id, 12)),
        (EVENT.id, (EVENT.id, None)),
        (f"{EVENT.id}-012", (f"{EVENT.id}-012", None)),  # one spelling per part
        (f"{EVENT.id}-", (f"{EVENT.id}-", None)),
        (f"{EVENT.id}-1.5", (f"{EVENT.id}-1.5", None)),
        (f"{EVENT.id}-" + "9" * 5000, (f"{EVENT.id}-" + "9" * 5000, None)),
    ],
)
def test_a_part_id_names_its_event_and_group(shown: str, split: tuple[str, int | None]) -> None:
    assert chain.split_part_id(shown) == split


@pytest.mark.parametrize("column", ["{}", '[["org-a", "p1"]]', '[["org-a", "p1", -1]]', "["])
def test_unreadable_groups_are_refused(column: str) -> None:
    with pytest.raises(ValueError, match=r"entity|list|char"):
        chain.groups_of(column)
