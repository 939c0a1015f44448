"""What a referral said when it was first accepted, as a keyed digest, so that a resend with the
same ServiceRequest identifier can be told apart from a different referral reusing it.

The digest is over canonical JSON (sorted keys, no whitespace) of each entry's method, target and
resource, with what the server assigns removed (`id` of a create, `meta.versionId`,
`meta.lastUpdated`) and `urn:uuid:` fullUrls replaced by the entry's position: a client that
builds its Bundle afresh, with new uuids, is still resending the same referral. Keyed (HMAC) rather
than a plain hash because the content is patient data: a plain hash of a guessable body could be
confirmed by anyone who reads the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from cryptography.hazmat.primitives import hashes, hmac

from fhir_adapters import rules as fhir_rules

PURPOSE = b"referral-content\x00"
SERVER_META = ("versionId", "lastUpdated")


class _Entry(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def resource(self) -> dict[str, Any]: ...
    @property
    def full_url(self) -> str | None: ...
    @property
    def rid(self) -> str | None: ...


def content_digest(key: bytes, entries: Sequence[_Entry]) -> str:
    positions = {e.full_url: f"urn:spis:entry:{i}" for i, e in enumerate(entries) if e.full_url}
    canonical = [
        [entry.method, entry.rid, _without_server_parts(entry.resource, positions)]
        for entry in entries
    ]
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(PURPOSE + orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS))
    return mac.finalize().hex()


def _without_server_parts(resource: dict[str, Any], positions: dict[str, str]) -> dict[str, Any]:
    copy: dict[str, Any] = orjson.loads(orjson.dumps(resource))  # never change what is stored
    copy.pop("id", None)
    meta = copy.get("meta")
    if isinstance(meta, dict):
        for name in SERVER_META:
            meta.pop(name, None)
        if not meta:
            del copy["meta"]
    fhir_rules.rewrite_references(copy, positions)
    return copy
