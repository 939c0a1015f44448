"""Scopes: the ceiling per kind of organisation, registration inside it, and granting the
intersection of what is asked and what is registered (security.md §8 item 7)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth import scopes
from referral_service.auth.oauth import OAuthError
from referral_service.errors import Invalid
from referral_service.organisations.models import OrgKind
from tests.fixtures.systems import TestSystem, register_system, token_response

PRACTICE_CEILING = scopes.CEILINGS[OrgKind.PRACTICE]


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        ("system/Patient.rs", "system/Patient.rs"),
        ("system/Patient.read", "system/Patient.rs"),  # v1
        ("system/Patient.write", "system/Patient.cud"),  # v1
        ("system/Patient.*", "system/Patient.cruds"),  # v1 wildcard interaction
        ("system/Patient.sr system/Patient.c", "system/Patient.crs"),  # merged, canonical order
        ("system/Observation.cruds", "system/Observation.rs"),  # narrowed to the ceiling
        ("system/MeasureReport.rs system/Task.r", "system/Task.r"),  # beyond: dropped
        ("patient/Patient.rs system/Task.s openid", "system/Task.s"),  # not system/: ignored
        ("system/Observation.rs?category=survey system/Task.s", "system/Task.s"),  # granular
    ],
)
def test_grant_for_a_practice(requested: str, granted: str) -> None:
    assert scopes.grant(requested, PRACTICE_CEILING) == granted


def test_wildcard_type_expands_over_registered_types_only() -> None:
    registered = "system/Task.rus system/Patient.rs system/Organization.rs"
    assert scopes.grant("system/*.rs", registered) == (
        "system/Task.rs system/Patient.rs system/Organization.rs"
    )
    assert scopes.grant("system/*.*", registered) == registered
    assert scopes.grant("system/*.write", registered) == "system/Task.u"


@pytest.mark.parametrize(
    "requested", ["", "system/MeasureReport.rs", "patient/*.read", "system/Task.x"]
)
def test_nothing_grantable_is_invalid_scope(requested: str) -> None:
    with pytest.raises(OAuthError) as caught:
        scopes.grant(requested, PRACTICE_CEILING)
    assert caught.value.error == "invalid_scope"
    assert caught.value.status == 400


def test_registration_defaults_to_the_ceiling() -> None:
    registrable_kinds = [kind for kind in OrgKind if kind is not OrgKind.PLATFORM]
    assert sorted(scopes.CEILINGS) == sorted(registrable_kinds)  # SPIS itself gets no scopes
    for kind in registrable_kinds:
        assert scopes.registrable(kind, None) == scopes.CEILINGS[kind]


def test_registration_beyond_the_ceiling_refused() -> None:
    with pytest.raises(Invalid, match=r"beyond what a timebank may hold: system/Patient\.cud$"):
        scopes.registrable(OrgKind.TIMEBANK, "system/Patient.cruds system/Task.r")
    with pytest.raises(Invalid, match=r"system/Patient\.rs"):
        scopes.registrable(OrgKind.HEALTHBOARD, "system/Patient.rs")


def test_registration_narrower_and_wildcards_stay_inside() -> None:
    assert scopes.registrable(OrgKind.TIMEBANK, "system/Task.read") == "system/Task.rs"
    assert (
        scopes.registrable(OrgKind.HEALTHBOARD, "system/*.*")
        == scopes.CEILINGS[OrgKind.HEALTHBOARD]
    )


@pytest.mark.parametrize(
    "bad", ["system/Task", "user/Task.rs", "system/Task.rr", "", "system/task.rs"]
)
def test_registration_of_unreadable_scopes_refused(bad: str) -> None:
    with pytest.raises(Invalid):
        scopes.registrable(OrgKind.PRACTICE, bad)


def test_supported_scopes_is_the_union_of_ceilings() -> None:
    supported = scopes.supported_scopes()
    assert "system/MeasureReport.rs" in supported
    assert "system/Observation.crus" in supported  # practice rs + timebank crus
    assert len(supported) == len(set(supported))


# -- over HTTP ----------------------------------------------------------------------------------


def test_token_scope_narrower_than_requested(client: TestClient, timebank: TestSystem) -> None:
    response = token_response(
        client, timebank, "system/Task.cruds system/Patient.cruds system/Foo.rs"
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "system/Task.rus system/Patient.rs"


def test_token_scope_never_beyond_registered(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    system = register_system(
        session_factory, OrgKind.PRACTICE, ods="F84001", scopes="system/ServiceRequest.rs"
    )
    response = token_response(client, system, "system/*.cruds")
    assert response.json()["scope"] == "system/ServiceRequest.rs"


def test_token_without_grantable_scope(client: TestClient, healthboard: TestSystem) -> None:
    response = token_response(client, healthboard, "system/Patient.rs")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_scope",
        "error_description": "None of the requested scopes can be granted to this client",
    }
    assert response.headers["cache-control"] == "no-store"


def test_default_scope_is_everything_registered(client: TestClient, practice: TestSystem) -> None:
    response = token_response(client, practice)
    assert response.json()["scope"] == PRACTICE_CEILING
