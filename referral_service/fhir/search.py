"""Searchset Bundles with paging links, built around the stored JSON bytes (no re-serialising)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_adapters.outcome import operation_outcome_issue, outcome_of
from referral_service.kit.clock import fhir_instant
from referral_service.store.models import StoredResource
from referral_service.store.query import ParsedSearch
from referral_service.store.service import SearchPage, Version


@dataclass(frozen=True, slots=True)
class Paging:
    """Where one page of a searchset sits: every paged search (resources, AuditEvents) links the
    same way and states `total` under the same rule."""

    count: int
    offset: int
    has_next: bool

    def links(self, url: Callable[[int], str]) -> list[dict[str, str]]:
        """`self`, then `next` and `previous` where they exist; `url` gives a page's address
        from its offset."""
        links = [{"relation": "self", "url": url(self.offset)}]
        if self.has_next:
            links.append({"relation": "next", "url": url(self.offset + self.count)})
        if self.offset > 0:
            links.append({"relation": "previous", "url": url(max(self.offset - self.count, 0))})
        return links

    @property
    def complete(self) -> bool:
        """The page holds every match: `total` costs nothing and cannot mislead."""
        return not self.has_next and self.offset == 0


def paged_searchset(
    paging: Paging,
    url: Callable[[int], str],
    entries: list[dict[str, Any]],
    total: int | None,
) -> bytes:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": paging.links(url),
        "entry": entries,
    }
    if total is not None:
        bundle["total"] = total
    return orjson.dumps(bundle)


def searchset(
    base: str,
    rtype: str,
    parsed: ParsedSearch,
    page: SearchPage,
    present: Callable[[StoredResource], bytes],
) -> bytes:
    paging = Paging(parsed.count, parsed.offset, page.has_next)
    entries = [_entry(base, row, "match", present) for row in page.matches] + [
        _entry(base, row, "include", present) for row in page.included
    ]
    if page.unreadable:
        entries.append(_left_out(page.unreadable))
    total = len(page.matches) if paging.complete and not page.unreadable else None
    return paged_searchset(
        paging, lambda offset: _page_url(base, rtype, parsed, offset), entries, total
    )


def count_only(total: int) -> bytes:
    """The answer to `_count=0`: how many match, and no page."""
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": total})


def _left_out(rows: Sequence[StoredResource]) -> dict[str, Any]:
    """One OperationOutcome entry (search.mode `outcome`) naming, by id only, each row that
    matched but whose stored data did not open."""
    issues = [
        operation_outcome_issue(
            "exception",
            f"{row.type}/{row.id} failed its integrity check and was left out of this page",
        )
        for row in rows
    ]
    return {
        "resource": outcome_of(issues),
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


def history_bundle(base: str, versions: Sequence[Version]) -> bytes:
    entries = [
        {
            "fullUrl": f"{base}/{v.type}/{v.id}",
            "resource": orjson.Fragment(v.body),
            "request": {
                "method": "POST" if v.version_id == 1 else "PUT",
                "url": v.type if v.version_id == 1 else f"{v.type}/{v.id}",
            },
            "response": {
                "status": "201 Created" if v.version_id == 1 else "200 OK",
                "etag": v.etag,
                "lastModified": fhir_instant(v.last_updated),
            },
        }
        for v in versions
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
