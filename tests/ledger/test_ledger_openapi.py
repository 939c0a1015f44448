"""The ledger's JSON API is documented in the app's OpenAPI: paths, bodies and error responses."""

from __future__ import annotations

from fastapi.testclient import TestClient

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
