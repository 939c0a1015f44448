"""referral: the Task changes routing and the broker SLA make, as pure functions on dicts."""

from __future__ import annotations

import copy
from typing import Any

from fhir_adapters import codes
from fhir_adapters import task as fhir_task


def child() -> dict[str, Any]:
    return fhir_task.child_task(
        "Task/ref-1",
        "ServiceRequest/fo-1",
        "Patient/p-1",
        "Organization/tb-1",
        "2026-01-05T09:00:00Z",
    )


def coding(task: dict[str, Any]) -> dict[str, Any]:
    [only] = task["businessStatus"]["coding"]
    return dict(only)


def test_routed_names_the_time_bank_in_the_business_status() -> None:
    task = {"resourceType": "Task", "status": "requested"}

    routed = fhir_task.routed(task, "Catford Time Bank")

    assert coding(routed) == {
        "system": codes.BUSINESS_STATUS_SYSTEM,
        "code": "routed",
        "display": "Routed to Catford Time Bank",
    }
    assert routed["status"] == "requested"
    assert "businessStatus" not in task  # the Task passed in is left as it was


def test_reminder_due_says_a_reminder_is_due_not_that_one_was_sent() -> None:
    task = child()

    marked = fhir_task.reminder_due(task, 5)

    assert coding(marked) == {
        "system": codes.BUSINESS_STATUS_SYSTEM,
        "code": "reminder-due",
        "display": "No answer within 5 working days: a reminder is due",
    }
    assert marked["status"] == "requested"
    assert {k: v for k, v in marked.items() if k != "businessStatus"} == task


def test_cancelled_keeps_the_business_status_as_the_last_news() -> None:
    marked = fhir_task.reminder_due(child(), 5)
    before = copy.deepcopy(marked)

    ended = fhir_task.cancelled(marked, "No answer within the time allowed")

    assert ended["status"] == "cancelled"
    assert ended["statusReason"] == {"text": "No answer within the time allowed"}
    assert ended["businessStatus"] == before["businessStatus"]
    assert marked == before


def test_rejected_drops_the_routing_business_status() -> None:
    task = fhir_task.routed({"resourceType": "Task", "status": "requested"}, "Catford")
    before = copy.deepcopy(task)

    ended = fhir_task.rejected(task, "No time bank serving SE6 could take this referral")

    assert ended == {
        "resourceType": "Task",
        "status": "rejected",
        "statusReason": {"text": "No time bank serving SE6 could take this referral"},
    }
    assert task == before


def test_business_status_codes_reads_every_coding_and_tolerates_none() -> None:
    task = {
        "businessStatus": {
            "coding": [{"code": "reminder-sent"}, {"system": "x"}, {"code": "routed"}]
        }
    }

    assert fhir_task.business_status_codes(task) == {"reminder-sent", "routed"}
    assert fhir_task.business_status_codes(child()) == frozenset()
    assert fhir_task.business_status_codes({"businessStatus": {"text": "x"}}) == frozenset()


def test_status_reason_is_the_text_or_none() -> None:
    assert fhir_task.status_reason({"statusReason": {"text": "Full"}}) == "Full"
    assert fhir_task.status_reason({"statusReason": {"text": ""}}) is None
    assert fhir_task.status_reason({"statusReason": {"coding": []}}) is None
    assert fhir_task.status_reason(child()) is None


def test_child_task_is_a_time_banks_order_part_of_the_referral() -> None:
    task = child()

    assert (task["status"], task["intent"]) == ("requested", "order")
    assert task["partOf"] == [{"reference": "Task/ref-1"}]
    assert task["owner"] == {"reference": "Organization/tb-1"}
    assert task["focus"] == {"reference": "ServiceRequest/fo-1"}
    assert task["for"] == {"reference": "Patient/p-1"}
    assert task["authoredOn"] == "2026-01-05T09:00:00Z"
