"""task: the referral Task SPIS builds, and how a status change carries its reason."""

from __future__ import annotations

from typing import Any

from fhir_adapters import codes, rules, task

OWNER = {"reference": "Organization/spis", "display": "SPIS"}


def build() -> dict[str, Any]:
    return task.referral_task(
        focus="ServiceRequest/sr-1",
        patient={"reference": "Patient/p-1"},
        requester={"reference": "Organization/practice-1"},
        owner=OWNER,
        authored_on="2025-01-02T03:04:05Z",
    )


def test_referral_task_is_a_requested_sdoh_referral_task() -> None:
    built = build()

    rules.check_referral_task(built)
    assert built["status"] == "requested"
    assert built["intent"] == "order"
    assert built["meta"] == {"profile": [codes.SDOH_TASK_PROFILE]}
    assert built["code"] == {
        "coding": [{"system": codes.TASK_CODE_SYSTEM, "code": codes.TASK_CODE_FULFILL}]
    }
    assert built["focus"] == {"reference": "ServiceRequest/sr-1"}
    assert built["for"] == {"reference": "Patient/p-1"}
    assert built["requester"] == {"reference": "Organization/practice-1"}
    assert built["owner"] == OWNER
    assert built["authoredOn"] == "2025-01-02T03:04:05Z"


def test_referral_task_shares_no_element_with_the_caller() -> None:
    built = build()
    built["owner"]["reference"] = "Organization/other"

    assert OWNER["reference"] == "Organization/spis"


def test_set_status_replaces_the_reason_of_the_old_status() -> None:
    built = build()
    task.set_status(built, "cancelled", "The patient moved away")
    assert (built["status"], built["statusReason"]) == (
        "cancelled",
        {"text": "The patient moved away"},
    )

    task.set_status(built, "accepted")
    assert built["status"] == "accepted"
    assert "statusReason" not in built
