"""Schemathesis fuzzes the published OpenAPI against a live `spis serve` (issue 7 #27).

Each system that uses SPIS runs it with its own bearer token: a practice over /fhir, a time bank
over its ledger and /fhir, a health board over /fhir, and no token at all over the public routes.
Real ids (a referral, a ledger member) are pinned as path parameters so that reads, histories and
updates reach stored data, not only 404s.

Checks: no 5xx (`not_a_server_error`), the status code and the content type are among those the
OpenAPI declares, and every error body is well-formed (`schemathesis_hooks.py`: an
OperationOutcome under /fhir and /api, OAuth JSON from the token endpoint). Deterministic (fixed
seed) and bounded (examples per operation), so the whole test takes well under two minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import FUNNEL
from referral_service.organisations.models import OrgKind
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.server import REPO_ROOT, access_token, live_server
from tests.fixtures.systems import TestSystem, register_system

__all__ = ["live_server"]  # the session-wide server fixture, used by name

pytestmark = pytest.mark.slow

HOOKS = "tests.contract.schemathesis_hooks"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
SEED = 20261128


@dataclass(frozen=True)
class Run:
    """One `st run`: whose token, which operations, what ids to use, how many examples."""

    name: str
    token: str | None
    include_path_regex: str
    parameters: dict[str, str]
    operations: list[dict[str, object]]
    max_examples: int


def _st(base_url: str, run: Run, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / f"{run.name}.toml"
    config.write_text(_toml(run))
    st = Path(sys.executable).parent / "st"
    command = [
        str(st), "--config-file", str(config), "run", f"{base_url}/openapi.json",
        "--checks", f"{CHECKS},error_bodies_are_well_formed",
        "--include-path-regex", run.include_path_regex,
        "--phases", "coverage,fuzzing", "--max-examples", str(run.max_examples),
        "--seed", str(SEED), "--generation-database", "none",
        # One worker: hypothesis describes its filters with ast.parse, which CPython 3.11 does not
        # make thread-safe ("AST constructor recursion depth mismatch").
        "--workers", "1", "--no-color", "--request-timeout", "10",
    ]  # fmt: skip
    if run.token:
        command += ["--header", f"Authorization: Bearer {run.token}"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def _toml(run: Run) -> str:
    lines = [f'hooks = "{HOOKS}"', "", "[parameters]"]
    lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in run.parameters.items()]
    for operation in run.operations:
        lines += ["", "[[operations]]"]
        lines += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in operation.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value.items()) + " }"
        )
    return json.dumps(value)


def _referral(base_url: str, token: str, practice: TestSystem) -> dict[str, str]:
    """Make one referral over HTTP; the id of each resource it stored, by type."""
    response = httpx.post(
        f"{base_url}/fhir",
        json=referral_bundle(practice.org_id),
        headers={"Authorization": f"Bearer {token}", **FHIR_JSON},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    ids = {}
    for entry in response.json()["entry"]:
        rtype, rid = entry["response"]["location"].split("/")[:2]
        ids[rtype] = rid
    return ids


def _member(base_url: str, token: str, timebank: TestSystem) -> str:
    response = httpx.post(
        f"{base_url}/api/timebanks/{timebank.org_id}/members",
        json={"alias": "Sam"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    member_id: str = response.json()["id"]
    return member_id


def _pin_ids(ids: dict[str, str]) -> list[dict[str, object]]:
    """Each type's operations use the stored resource of that type as `{id}`."""
    return [
        {"include-path-regex": f"^/fhir/{rtype}/", "parameters": {"path.id": rid}}
        for rtype, rid in ids.items()
    ]


def _assert_clean(result: subprocess.CompletedProcess[str], run: Run) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"schemathesis ({run.name}) found problems:\n{output[-25000:]}"
    assert " passed" in output, output[-4000:]


def test_schemathesis_finds_no_server_error_and_only_well_formed_errors(
    live_server: str, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    practice = register_system(session_factory, OrgKind.PRACTICE, name="P", ods="F84001")
    timebank = register_system(session_factory, OrgKind.TIMEBANK, name="T")
    board = register_system(session_factory, OrgKind.HEALTHBOARD, name="B", ods="QKK")
    practice_token = access_token(live_server, practice)
    timebank_token = access_token(live_server, timebank)
    ids = _referral(live_server, practice_token, practice)
    member_id = _member(live_server, timebank_token, timebank)
    runs = [
        Run("practice", practice_token, "^/fhir", {}, _pin_ids(ids), 8),
        Run(
            "timebank",
            timebank_token,
            "^/(api|fhir/Task|fhir/Patient)",
            {"path.timebank_id": timebank.org_id, "path.member_id": member_id},
            [],
            8,
        ),
        Run(
            "board",
            access_token(live_server, board),
            "^/fhir/(Task|Organization|Measure)",
            {},
            [{"include-path-regex": "^/fhir/Measure/", "parameters": {"path.id": FUNNEL.id}}],
            3,
        ),
        Run(
            "anyone", None, "^/(auth|\\.well-known|fhir/(metadata|Questionnaire|Task$))", {}, [], 8
        ),
    ]
    for run in runs:
        _assert_clean(_st(live_server, run, tmp_path), run)
