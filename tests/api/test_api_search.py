"""Search over HTTP: parameters, paging links, _include, _lastUpdated, NHS number lookups."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem

NHS = "https://fhir.nhs.uk/Id/nhs-number"
REF = "https://fhir.example-practice.nhs.uk/referral-id"
SCT = "http://snomed.info/sct"


def ids(bundle: dict) -> list[str]:  # type: ignore[type-arg]
    return [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


def test_paging_follows_next_links_until_done(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    made = [
        make_referral(client, practice_headers, practice.org_id, referral_id=f"REF-{i}")
        for i in range(5)
    ]
    seen: list[str] = []
    url: str | None = "/fhir/ServiceRequest?status=active&_count=2"
    pages = 0
    while url:
        page = client.get(url, headers=practice_headers).json()
        assert len(page["entry"]) <= 2
        seen += ids(page)
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "status=active" in links["self"]
        url = links.get("next")
        if url:
            assert parse_qs(urlsplit(url).query)["_count"] == ["2"]
            url = url.removeprefix("http://testserver")
        pages += 1
    assert pages == 3
    assert sorted(seen) == sorted(r.service_request.split("/")[1] for r in made)


def test_include_task_focus(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    bundle = client.get(
        f"/fhir/Task?_id={referral.task_id}&_include=Task:focus", headers=practice_headers
    ).json()
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]}
    assert modes == {("Task", "match"), ("ServiceRequest", "include")}


def test_search_parameters(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    patient_id = referral.patient.split("/")[1]
    checks = {
        f"/fhir/Task?patient={referral.patient}": [referral.task_id],
        f"/fhir/Task?patient={patient_id}": [referral.task_id],
        "/fhir/Task?owner=Organization/spis&status=requested": [referral.task_id],
        "/fhir/Task?status=completed": [],
        f"/fhir/ServiceRequest?patient={referral.patient}&code={SCT}|871731000000106": [
            referral.service_request.split("/")[1]
        ],
        "/fhir/ServiceRequest?category=http://snomed.info/sct|410606002": [
            referral.service_request.split("/")[1]
        ],
        f"/fhir/ServiceRequest?identifier={REF}|REF-0001": [referral.service_request.split("/")[1]],
        f"/fhir/ServiceRequest?identifier={REF}|REF-9": [],
        f"/fhir/Consent?patient={referral.patient}": [referral.consent.split("/")[1]],
        f"/fhir/Patient?identifier={NHS}|9434765919": [patient_id],
        f"/fhir/Patient?identifier={NHS}|9434765870": [],
        "/fhir/Task?_lastUpdated=gt2020-01-01": [referral.task_id],
        "/fhir/Task?_lastUpdated=lt2020-01-01": [],
        "/fhir/Observation?based-on=" + referral.service_request: [],
        "/fhir/Procedure?based-on=" + referral.service_request: [],
    }
    for url, expected in checks.items():
        response = client.get(url, headers=practice_headers)
        assert response.status_code == 200, (url, response.text)
        assert ids(response.json()) == expected, url


def test_post_search_is_the_same_as_get(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    response = client.post(
        "/fhir/Task/_search", data={"status": "requested"}, headers=practice_headers
    )
    assert ids(response.json()) == [referral.task_id]


def test_bad_search_values_are_400(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    for url in (
        "/fhir/Task?_lastUpdated=gtyesterday",
        "/fhir/Task?_count=lots",
        "/fhir/Task?_include=Task:nothing",
        "/fhir/Task?_sort=status",
        "/fhir/Task?status:text=x",
    ):
        response = client.get(url, headers=practice_headers)
        assert response.status_code == 400, url
        assert response.json()["resourceType"] == "OperationOutcome"


def test_unknown_parameters_are_ignored_unless_strict(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    lenient = client.get("/fhir/Task?colour=blue", headers=practice_headers).json()
    assert ids(lenient) == [referral.task_id]
    assert "colour" not in lenient["link"][0]["url"]
    strict = client.get(
        "/fhir/Task?colour=blue", headers={**practice_headers, "Prefer": "handling=strict"}
    )
    assert strict.status_code == 400


def test_nhs_number_is_indexed_blind(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    with session_factory() as session:
        values = (
            session.execute(text("SELECT value FROM search_index WHERE name = 'identifier'"))
            .scalars()
            .all()
        )
    assert values
    assert not any("9434765919" in (v or "") for v in values)


def test_count_zero_gives_the_total_without_a_page(
    client: TestClient, practice: TestSystem, practice_headers: dict[str, str]
) -> None:
    for i in range(3):
        make_referral(client, practice_headers, practice.org_id, referral_id=f"C-{i}")
    bundle = client.get("/fhir/Task?status=requested&_count=0", headers=practice_headers).json()
    assert bundle == {"resourceType": "Bundle", "type": "searchset", "total": 3}


def test_if_none_match_accepts_the_forms_clients_send(
    client: TestClient, practice_headers: dict[str, str], referral: Referral
) -> None:
    for etag in ('W/"1"', '"1"', "1"):
        response = client.get(
            f"/fhir/{referral.task}", headers={**practice_headers, "If-None-Match": etag}
        )
        assert response.status_code == 304, etag
    assert (
        client.get(
            f"/fhir/{referral.task}", headers={**practice_headers, "If-None-Match": "2"}
        ).status_code
        == 200
    )
