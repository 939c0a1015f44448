"""Searchset Bundles with paging links, built around the stored JSON bytes (no re-serialising)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from referral_service.store.models import StoredResource
from referral_service.store.query import ParsedSearch
from referral_service.store.service import SearchPage


def searchset(
    base: str,
    rtype: str,
    parsed: ParsedSearch,
    page: SearchPage,
    present: Callable[[StoredResource], bytes],
) -> bytes:
    links = [{"relation": "self", "url": _page_url(base, rtype, parsed, parsed.offset)}]
    if page.has_next:
        links.append(
            {
                "relation": "next",
                "url": _page_url(base, rtype, parsed, parsed.offset + parsed.count),
            }
        )
    if parsed.offset > 0:
        previous = max(parsed.offset - parsed.count, 0)
        links.append({"relation": "previous", "url": _page_url(base, rtype, parsed, previous)})
    entries = [_entry(base, row, "match", present) for row in page.matches] + [
        _entry(base, row, "include", present) for row in page.included
    ]
    if page.unreadable:
        entries.append(_left_out(page.unreadable))
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": links,
        "entry": entries,
    }
    if not page.has_next and parsed.offset == 0 and not page.unreadable:
        bundle["total"] = len(page.matches)  # only when it costs nothing and cannot mislead
    return orjson.dumps(bundle)


def _left_out(rows: Sequence[StoredResource]) -> dict[str, Any]:
    """One OperationOutcome entry (search.mode `outcome`) naming, by id only, each row that
    matched but whose stored data did not open."""
    issues = [
        {
            "severity": "error",
            "code": "exception",
            "diagnostics": (
                f"{row.type}/{row.id} failed its integrity check and was left out of this page"
            ),
        }
        for row in rows
    ]
    return {
        "resource": {"resourceType": "OperationOutcome", "issue": issues},
        "search": {"mode": "outcome"},
    }


def small_searchset(found: Sequence[tuple[str, dict[str, Any]]]) -> bytes:
    """A complete, unpaged searchset of (fullUrl, resource) pairs: for small fixed directories."""
    entries = [
        {"fullUrl": url, "resource": resource, "search": {"mode": "match"}}
        for url, resource in found
    ]
    return orjson.dumps(
        {"resourceType": "Bundle", "type": "searchset", "total": len(entries), "entry": entries}
    )


def history_bundle(
    base: str, rtype: str, rid: str, versions: Sequence[tuple[int, str, bytes]]
) -> bytes:
    entries = [
        {
            "fullUrl": f"{base}/{rtype}/{rid}",
            "resource": orjson.Fragment(body),
            "request": {
                "method": "POST" if vid == 1 else "PUT",
                "url": rtype if vid == 1 else f"{rtype}/{rid}",
            },
            "response": {
                "status": "201 Created" if vid == 1 else "200 OK",
                "etag": f'W/"{vid}"',
                "lastModified": when,
            },
        }
        for vid, when, body in versions
    ]
    bundle = {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    return orjson.dumps(bundle)


def _entry(
    base: str, row: StoredResource, mode: str, present: Callable[[StoredResource], bytes]
) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{row.type}/{row.id}",
        "resource": orjson.Fragment(present(row)),
        "search": {"mode": mode},
    }


def _page_url(base: str, rtype: str, parsed: ParsedSearch, offset: int) -> str:
    params = [(k, v) for k, v in parsed.used if k not in ("_count", "_offset")]
    params += [("_count", str(parsed.count)), ("_offset", str(offset))]
    return f"{base}/{rtype}?{urlencode(params)}"
