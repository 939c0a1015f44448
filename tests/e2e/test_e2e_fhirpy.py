"""End to end with an independent FHIR client: fhirpy's SyncFHIRClient against `spis serve`.

The server runs as its own process on the test database (`live_server`); the practice and its
ES384 client are registered straight into that database and get their token over HTTP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import AuthorizationError, OperationOutcome, ResourceNotFound
from sqlalchemy.orm import Session, sessionmaker

from referral_service.organisations.models import OrgKind
from tests.fixtures.fhir import referral_bundle
from tests.fixtures.server import (
    access_token,
    fhir_base,
    live_server,  # noqa: F401 - the fixture
    referral_bundles,
)
from tests.fixtures.systems import TestSystem, register_system

pytestmark = pytest.mark.slow


@pytest.fixture
def practice(session_factory: sessionmaker[Session]) -> TestSystem:
    return register_system(
        session_factory, OrgKind.PRACTICE, name="Rushey Green Group Practice", ods="F84001"
    )


@pytest.fixture
def fhir(live_server: str, practice: TestSystem) -> SyncFHIRClient:  # noqa: F811
    token = access_token(live_server, practice)
    return SyncFHIRClient(fhir_base(live_server), authorization=f"Bearer {token}")


def submit(fhir: SyncFHIRClient, bundle: dict[str, Any]) -> Any:
    """POST a transaction Bundle the fhirpy way: saving a Bundle without an id posts it to the
    base URL."""
    response = fhir.resource("Bundle", **bundle).save()
    assert response["resourceType"] == "Bundle"
    assert response["type"] == "transaction-response"
    return response


def located(response: Any) -> list[tuple[str, str, str]]:
    """(type, id, version) of each transaction-response entry, from its location."""
    parts = [entry["response"]["location"].split("/") for entry in response["entry"]]
    return [(p[0], p[1], p[3]) for p in parts]  # Type/id/_history/vid


def test_referral_round_trip_read_search_update(
    live_server: str,  # noqa: F811
    fhir: SyncFHIRClient,
    practice: TestSystem,
) -> None:
    response = submit(fhir, referral_bundle(practice.org_id, referral_id="REF-E2E-1"))

    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created"] * 3
    (pt_type, patient_id, _), (c_type, consent_id, _), (sr_type, sr_id, sr_vid) = located(response)
    assert (pt_type, c_type, sr_type, sr_vid) == ("Patient", "Consent", "ServiceRequest", "1")
    assert response["entry"][2]["fullUrl"] == f"{fhir_base(live_server)}/ServiceRequest/{sr_id}"

    # read: the references the practice sent as urn:uuid now point at the stored resources
    sr = fhir.reference("ServiceRequest", sr_id).to_resource()
    assert sr.id == sr_id
    assert sr["meta"]["versionId"] == "1"
    assert sr["identifier"][0]["value"] == "REF-E2E-1"
    assert sr["subject"]["reference"] == f"Patient/{patient_id}"
    assert sr["supportingInfo"][0]["reference"] == f"Consent/{consent_id}"
    patient = sr["subject"].to_resource()  # fhirpy turns a local reference into a resource
    assert patient.id == patient_id
    assert patient["identifier"][0]["value"] == "9434765919"

    # search: SPIS made exactly one referral Task for the ServiceRequest
    tasks = fhir.resources("Task").search(focus=f"ServiceRequest/{sr_id}").fetch()
    assert len(tasks) == 1
    task = tasks[0]
    task_id = task.id
    assert task["status"] == "requested"
    assert task["intent"] == "order"
    assert task["focus"]["reference"] == f"ServiceRequest/{sr_id}"
    assert task["for"]["reference"] == f"Patient/{patient_id}"
    assert task["requester"]["reference"] == f"Organization/{practice.org_id}"
    assert task["meta"]["versionId"] == "1"

    # update (PUT through fhirpy's save): version 2, and the change is stored
    task["priority"] = "urgent"
    task.save()
    assert task.id == task_id
    assert task["meta"]["versionId"] == "2"
    reread = fhir.reference("Task", task_id).to_resource()
    assert reread["meta"]["versionId"] == "2"
    assert reread["priority"] == "urgent"
    assert reread["status"] == "requested"

    # cancel with a reason: version 3; the search index follows the new status
    reread["status"] = "cancelled"
    reread["statusReason"] = {"text": "Patient moved away"}
    reread.save()
    final = fhir.reference("Task", task_id).to_resource()
    assert final["meta"]["versionId"] == "3"
    assert final["status"] == "cancelled"
    assert final["statusReason"]["text"] == "Patient moved away"
    assert final["priority"] == "urgent"
    cancelled = fhir.resources("Task").search(status="cancelled").fetch()
    assert [t.id for t in cancelled] == [task_id]
    assert fhir.resources("Task").search(status="requested").fetch() == []

    history = fhir.execute(f"Task/{task_id}/_history", method="get")
    assert history["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in history["entry"]] == ["3", "2", "1"]
    assert history["entry"][-1]["resource"]["status"] == "requested"


def test_resubmitting_the_same_bundle_creates_nothing(
    fhir: SyncFHIRClient, practice: TestSystem
) -> None:
    first = submit(fhir, referral_bundle(practice.org_id, referral_id="REF-E2E-2"))
    again = submit(fhir, referral_bundle(practice.org_id, referral_id="REF-E2E-2"))

    assert [e["response"]["status"] for e in again["entry"]] == ["200 OK"] * 3
    assert located(again) == located(first)
    assert len(fhir.resources("Task").fetch_all()) == 1


def test_paging_with_fetch_all_follows_next_links(
    live_server: str,  # noqa: F811
    fhir: SyncFHIRClient,
    practice: TestSystem,
) -> None:
    created = set()
    for bundle in referral_bundles(practice.org_id, 7, prefix="REF-PAGE"):
        created.add(located(submit(fhir, bundle))[2][1])

    first_page = fhir.resources("ServiceRequest").limit(3).fetch_raw()
    assert len(first_page["entry"]) == 3
    assert "total" not in first_page  # only given when it is free (one page)
    next_url = next(link["url"] for link in first_page["link"] if link["relation"] == "next")
    assert next_url.startswith(f"{fhir_base(live_server)}/ServiceRequest?")

    everything = fhir.resources("ServiceRequest").limit(3).fetch_all()  # 3 + 3 + 1
    ids = [sr.id for sr in everything]
    assert len(ids) == 7
    assert set(ids) == created  # nothing repeated, nothing skipped across pages

    oldest_first = fhir.resources("ServiceRequest").sort("_lastUpdated").limit(2).fetch_all()
    assert [sr.id for sr in oldest_first] == list(reversed(ids))

    tasks = fhir.resources("Task").search(status="requested").limit(2).fetch_all()
    assert {t["focus"]["reference"] for t in tasks} == {f"ServiceRequest/{i}" for i in created}


def test_errors_surface_as_fhirpy_exceptions_carrying_the_operation_outcome(
    live_server: str,  # noqa: F811
    fhir: SyncFHIRClient,
    practice: TestSystem,
) -> None:
    # 404: fhirpy raises ResourceNotFound with the server's OperationOutcome as its text
    with pytest.raises(ResourceNotFound) as missing:
        fhir.reference("Task", "no-such-task").to_resource()
    outcome = json.loads(str(missing.value))
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "not-found"

    # 422 (a broken rule): fhirpy raises OperationOutcome holding the parsed resource
    response = submit(fhir, referral_bundle(practice.org_id, referral_id="REF-E2E-3"))
    sr_id = located(response)[2][1]
    [task] = fhir.resources("Task").search(focus=f"ServiceRequest/{sr_id}").fetch()
    task["status"] = "cancelled"  # without statusReason.text
    with pytest.raises(OperationOutcome) as refused:
        task.save()
    issue = refused.value.resource["issue"][0]
    assert issue["severity"] == "error"
    assert issue["expression"] == ["Task.statusReason.text"]
    assert fhir.reference("Task", task.id).to_resource()["status"] == "requested"

    # 400 (invalid resource): the same exception type, with the element named
    with pytest.raises(OperationOutcome) as invalid:
        fhir.resource("Task", status="requested").save()  # no intent
    assert "Task.intent" in invalid.value.resource["issue"][0]["expression"]

    # 401: a token we did not issue
    stranger = SyncFHIRClient(fhir_base(live_server), authorization="Bearer not-a-token")
    with pytest.raises(AuthorizationError):
        stranger.resources("Task").fetch()
