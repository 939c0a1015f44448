"""task: what a broker's decision writes on its time bank Task; the state machine is not here."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_adapters import codes, rules, task
from fhir_adapters.parse import validate_resource
from referral_service.errors import BusinessRuleViolation
from referral_service.referrals.status import check_transition

CHILD = task.child_task(
    "Task/referral-1", "ServiceRequest/filler-1", "Patient/p-1", "Organization/tb-1", "2026-03-02"
)


def move_checked(before: dict[str, Any], after: dict[str, Any]) -> None:
    """What intake asks of a broker's PUT, as far as it is pure."""
    reason = (after.get("statusReason") or {}).get("text")
    check_transition(codes.TaskStatus(before["status"]), codes.TaskStatus(after["status"]), reason)
    rules.check_referral_task(after)
    validate_resource(after, expected_type="Task")


def test_declined_carries_the_code_and_words_the_gp_reads() -> None:
    before = copy.deepcopy(CHILD)
    done = task.declined(CHILD, "no-capacity", "  Full until the spring ")

    move_checked(CHILD, done)
    assert done["status"] == "rejected"
    assert done["statusReason"] == {
        "coding": [
            {
                "system": codes.DECLINE_REASON_SYSTEM,
                "code": "no-capacity",
                "display": codes.DECLINE_REASONS["no-capacity"],
            }
        ],
        "text": "The time bank has no room for new members at the moment: Full until the spring",
    }
    assert before == CHILD  # the Task passed in is left as it was


def test_declined_without_a_note_says_the_reason() -> None:
    done = task.declined(CHILD, "outside-catchment")
    assert task.status_reason(done) == codes.DECLINE_REASONS["outside-catchment"]


def test_other_needs_the_brokers_words() -> None:
    done = task.declined(CHILD, codes.DECLINE_OTHER, "The person moved to Leeds")
    assert task.status_reason(done) == "The person moved to Leeds"

    bare = task.declined(CHILD, codes.DECLINE_OTHER, "  ")
    assert bare["statusReason"]["coding"][0]["code"] == "other"
    assert "text" not in bare["statusReason"]
    with pytest.raises(BusinessRuleViolation) as refused:
        move_checked(CHILD, bare)
    assert refused.value.expression is not None
    assert task.decision_field_of(refused.value.expression[0]) == "reason"


def test_an_unknown_decline_code_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="decline reason"):
        task.declined(CHILD, "busy")


def test_answering_clears_the_reminder_mark() -> None:
    marked = task.reminder_due(CHILD, 5)
    assert "businessStatus" not in task.accepted(marked)
    assert "businessStatus" not in task.declined(marked, "no-capacity")
    routed = task.routed(CHILD, "Catford Time Bank")  # any other mark stays
    assert task.accepted(routed)["businessStatus"] == routed["businessStatus"]


def test_the_way_through_accept_start_hold_resume_complete() -> None:
    steps = [
        task.accepted,
        task.in_progress,
        lambda t: task.on_hold(t, "In hospital for a fortnight"),
        task.in_progress,
        task.completed,
    ]
    current = CHILD
    for step in steps:
        after = step(current)
        move_checked(current, after)
        current = after
    assert current["status"] == "completed"
    assert "statusReason" not in current  # the hold's reason went with the hold


@pytest.mark.parametrize("move", [task.on_hold, task.failed])
def test_hold_and_fail_without_a_reason_are_refused_on_the_reason(move: Any) -> None:
    started = task.in_progress(task.accepted(CHILD))
    after = move(started, " ")
    assert "statusReason" not in after
    with pytest.raises(BusinessRuleViolation) as refused:
        move_checked(started, after)
    assert refused.value.expression is not None
    assert task.decision_field_of(refused.value.expression[0]) == "reason"


def test_failed_keeps_its_reason() -> None:
    done = task.failed(task.accepted(CHILD), "Could not find a volunteer who drives")
    assert (done["status"], task.status_reason(done)) == (
        "failed",
        "Could not find a volunteer who drives",
    )


def test_a_move_the_state_machine_forbids_is_left_to_it() -> None:
    after = task.completed(CHILD)  # requested -> completed
    with pytest.raises(BusinessRuleViolation) as refused:
        move_checked(CHILD, after)
    assert refused.value.status == 409
    assert refused.value.expression is not None
    assert task.decision_field_of(refused.value.expression[0]) == "status"
    assert task.decision_field_of("Task.owner") is None
