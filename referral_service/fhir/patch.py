"""JSON Patch for FHIR updates, with the `jsonpatch` library (RFC 6902, `test` op included)."""

from __future__ import annotations

from typing import Any

import jsonpatch

from referral_service.errors import ServiceError


class PatchFailed(ServiceError):
    status = 422
    issue_code = "processing"


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
