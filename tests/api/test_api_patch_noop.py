"""A JSON Patch that changes nothing (`[]`, or only `test` operations) writes no new version: the
answer is the current version, and history stays as it was."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.fixtures.referrals import Referral

PATCH_JSON = "application/json-patch+json"


@pytest.mark.parametrize(
    "operations",
    [[], [{"op": "test", "path": "/status", "value": "active"}]],
)
def test_a_patch_that_changes_nothing_makes_no_version(
    client: TestClient,
    practice_headers: dict[str, str],
    referral: Referral,
    operations: list[dict[str, str]],
) -> None:
    url = f"/fhir/{referral.service_request}"
    before = client.get(url, headers=practice_headers)

    answer = client.patch(
        url, json=operations, headers={**practice_headers, "Content-Type": PATCH_JSON}
    )

    assert answer.status_code == 200, answer.text
    assert answer.headers["ETag"] == 'W/"1"'
    assert answer.json() == before.json()
    history = client.get(f"{url}/_history", headers=practice_headers).json()
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["1"]


def test_a_patch_that_changes_something_still_makes_a_version(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    answer = client.patch(
        f"/fhir/{referral.service_request}",
        json=[{"op": "replace", "path": "/priority", "value": "urgent"}],
        headers={**practice_headers, "Content-Type": PATCH_JSON},
    )
    assert answer.status_code == 200, answer.text
    assert (answer.headers["ETag"], answer.json()["priority"]) == ('W/"2"', "urgent")
