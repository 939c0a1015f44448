"""Key status and re-encryption learn the sealed columns from the domains that seal them
(keys/sealed.py). A column they missed would count as nothing left under an older key, and that key
would be retired while values still need it: a process that imports only the keys service (the
worker's job, `spis keys status`) must still see every sealed column."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.fixtures.server import REPO_ROOT

EVERY_SEALED_COLUMN = [
    ["resource", "body"],
    ["resource_version", "body"],
    ["ledger_member", "alias"],
    ["ledger_offer", "description"],
    ["ledger_request", "description"],
    ["person", "totp_secret"],
    ["person", "totp_pending_secret"],
]

ONLY_THE_KEYS_SERVICE = """
import json
from referral_service.keys import sealed, service
print(json.dumps([[model.__tablename__, attribute] for model, attribute in sealed.columns()]))
"""


def test_a_process_that_imports_only_the_keys_service_sees_every_sealed_column() -> None:
    out = subprocess.run(
        [sys.executable, "-c", ONLY_THE_KEYS_SERVICE],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert json.loads(out) == EVERY_SEALED_COLUMN
