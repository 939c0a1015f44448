"""JSON Patch (RFC 6902, `test` op included) on a stored resource's current version, with the
`jsonpatch` library. What comes out is written by the caller with the same rules as a PUT."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jsonpatch

from fhir_adapters.parse import validate_resource
from referral_service.context import Context
from referral_service.errors import Invalid, ServiceError
from referral_service.store import service
from referral_service.store.models import StoredResource
from referral_service.store.service import Version


class PatchFailed(ServiceError):
    status = 422
    issue_code = "processing"


@dataclass(frozen=True, slots=True)
class Patched:
    """`changed` is None when the patch changes nothing (`[]`, or only `test`s): no new version.
    `if_match` is the version the write must still find: the client's, else the one patched."""

    current: StoredResource
    changed: dict[str, Any] | None
    if_match: str


def patch(
    ctx: Context, rtype: str, rid: str, operations: list[dict[str, Any]], if_match: str | None
) -> Patched:
    current = service.load(ctx, rtype, rid)
    service.check_version(current, if_match)  # stale: 412 before anything
    if_match = if_match or Version.of(current).etag
    original = service.as_dict(current)
    changed = apply_patch(original, operations)
    if changed == original:
        return Patched(current, None, if_match)
    validate_resource(changed, expected_type=rtype)
    if changed.get("id") != rid:
        raise Invalid(
            "A patch may not change the resource id", status=422, expression=[f"{rtype}.id"]
        )
    return Patched(current, changed, if_match)


def apply_patch(document: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        patched = jsonpatch.apply_patch(document, operations, in_place=False)
    except jsonpatch.JsonPatchTestFailed:
        raise PatchFailed(
            "A test operation of the patch did not hold; nothing was changed"
        ) from None
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        # The library's message can quote the document; say what kind of failure it was.
        raise PatchFailed(
            "The patch does not apply to the current version of the resource"
        ) from None
    if not isinstance(patched, dict):
        raise PatchFailed("The patch must leave a resource (a JSON object)")
    return patched
