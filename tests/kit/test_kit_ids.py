"""Server-assigned ids (kit/ids.py): time-ordered UUIDs of version 7, except a person's, which are
random (version 4); and through the API, a Patient's id random, the rest of a referral time-ordered."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from referral_service.kit.ids import new_id, new_person_id, resource_id
from tests.fixtures.referrals import Referral


def millis(value: str) -> int:
    return uuid.UUID(value).int >> 80


def test_a_new_id_is_a_version_7_uuid_of_now() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(made)
    assert str(parsed) == made
    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)
    assert before <= millis(made) <= after


def test_ids_made_later_sort_later_and_all_differ() -> None:
    first = [new_id() for _ in range(2_000)]
    time.sleep(0.002)
    second = [new_id() for _ in range(2_000)]
    assert max(first) < min(second)
    assert len(set(first + second)) == 4_000


def test_ids_of_the_same_millisecond_share_only_the_time_and_the_marks() -> None:
    """74 random bits after the time: nothing in them counts how many were made."""
    made = [uuid.UUID(new_id()).int for _ in range(2_000)]
    random_bits = ((1 << 80) - 1) & ~((0xF << 76) | (0b11 << 62))
    seen = [value & random_bits for value in made]
    assert len(set(seen)) == len(seen)
    # every random bit takes both values across 2,000 ids (a counter's high bits would not)
    for bit in range(80):
        if random_bits >> bit & 1:
            ones = sum(value >> bit & 1 for value in seen)
            assert 0 < ones < len(seen), bit


def test_a_persons_id_is_random() -> None:
    made = [uuid.UUID(new_person_id()) for _ in range(100)]
    assert {m.version for m in made} == {4}
    assert sorted(made) != made  # not made in order (1 chance in 100! that it would be)
    assert uuid.UUID(resource_id("Patient")).version == 4
    assert {uuid.UUID(resource_id(t)).version for t in ("Task", "Consent", "Observation")} == {7}


def test_a_referrals_patient_has_a_random_id_and_the_rest_time_ordered_ones(
    referral: Referral,
) -> None:
    now = datetime.now(UTC).timestamp() * 1000
    assert uuid.UUID(referral.patient.split("/")[1]).version == 4
    for ref in (referral.consent, referral.service_request, referral.task):
        rid = uuid.UUID(ref.split("/")[1])
        assert rid.version == 7, ref
        assert now - 60_000 < millis(str(rid)) <= now + 1, ref
