"""The ledger's JSON API is documented in the app's OpenAPI: paths, bodies and error responses."""

from __future__ import annotations

from fastapi.testclient import TestClient

from referral_service.ledger.rules import MAX_DESCRIPTION

BASE = "/api/timebanks/{timebank_id}"


def test_openapi_documents_the_ledger(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]

    expected = {
        "/members": {"get", "post"},
        "/members/{member_id}": {"get"},
        "/members/{member_id}/offers": {"post"},
        "/members/{member_id}/requests": {"post"},
        "/offers": {"get"},
        "/requests": {"get"},
        "/exchanges": {"get", "post"},
        "/enrolments": {"post"},
        "/exchanges/{exchange_id}/reversal": {"post"},
        "/members/{member_id}/end": {"post"},
        "/exchanges.csv": {"get"},
        "/members.csv": {"get"},
    }
    for path, methods in expected.items():
        assert set(paths[BASE + path]) >= methods, path
        for method in methods:
            operation = paths[BASE + path][method]
            assert operation["tags"] == ["Time credit ledger"]
            assert {"401", "403", "404"} <= set(operation["responses"])
    exchange = paths[BASE + "/exchanges"]["post"]
    assert "201" in exchange["responses"]
    assert "422" in exchange["responses"]
    assert "409" in paths[BASE + "/enrolments"]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    assert {"ExchangeIn", "ExchangeOut", "MemberStatement", "EnrolmentIn", "ErrorOutcome"} <= set(
        schemas
    )
    assert schemas["ExchangeIn"]["properties"]["minutes"]["type"] == "integer"


def test_openapi_documents_reversals_endings_and_downloads(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths, schemas = spec["paths"], spec["components"]["schemas"]

    reversal = paths[BASE + "/exchanges/{exchange_id}/reversal"]["post"]
    assert {"201", "404", "409", "422"} <= set(reversal["responses"])
    assert "exchange" in reversal["responses"]["404"]["description"]
    assert {"200", "409", "422"} <= set(
        paths[BASE + "/members/{member_id}/end"]["post"]["responses"]
    )
    assert "409" in paths[BASE + "/exchanges"]["post"]["responses"]  # an ended member
    for download in ("/exchanges.csv", "/members.csv"):
        answer = paths[BASE + download]["get"]["responses"]["200"]
        assert set(answer["content"]) == {"text/csv"}
    reason = schemas["ReversalIn"]["properties"]["reason"]
    assert (reason["minLength"], reason["maxLength"]) == (1, MAX_DESCRIPTION)
    assert schemas["ExchangeIn"]["properties"]["description"]["maxLength"] == MAX_DESCRIPTION
    assert "description" not in schemas["ExchangeIn"].get("required", [])
    assert {"reverses", "reversed_by", "reason", "description"} <= set(
        schemas["ExchangeOut"]["properties"]
    )
    summary = schemas["MemberSummary"]["properties"]
    assert {"given_minutes", "received_minutes", "partners", "reciprocity", "ended"} <= set(summary)
    assert "lines" in schemas["MemberStatement"]["properties"]
