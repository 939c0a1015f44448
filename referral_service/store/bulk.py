"""Bulk writes to the resource store, for synthetic and bulk loads only (`spis synth`, the
outcomes benchmark): never on a request path.

It writes the same rows as `service.create` followed by `service.update` for each later version:
the current row with its id, `meta.versionId` and `meta.lastUpdated` stamped by
`service.stamp`; one `resource_version` row per superseded version (every version but the last,
as `service.update` leaves them); the current version's `search_index`
rows from `service.index_values` (NHS numbers blind-indexed per tenant, as always); the grants;
and every body sealed with the associated data `sealing.py` binds it to. Only the way the rows
reach the database differs: built in memory and inserted with Core executemany in batches
(`repository.insert_many`) instead of through the ORM's unit of work.

Nothing here validates, applies consent, audits, enqueues jobs or records changes
(`kit.changes`): a synthetic history notifies no subscriber, as it reaches no audit trail. The
caller builds resources with the same `fhir_adapters` builders the services use and decides what
story they tell. Each
version carries its own time, so a resource's history says when each change happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from referral_service.context import Context
from referral_service.keys import ring
from referral_service.kit.clock import as_utc
from referral_service.store import repository, sealing
from referral_service.store.service import index_values, stamp


@dataclass(frozen=True, slots=True)
class BulkResource:
    """One resource and its history. `versions` are (when, content) from version 1 on, oldest
    first; the content dicts are stamped in place, as `service.create` does. `grants` are the
    organisations that may read it besides its tenant, as they stand after the last version."""

    rtype: str
    rid: str
    tenant: str
    versions: Sequence[tuple[datetime, dict[str, Any]]]
    grants: Sequence[str] = ()


class BulkWriter:
    """Collects resources and inserts them `batch` resources at a time (with their versions,
    index rows and grants). Call `flush` before the transaction ends; it never commits."""

    def __init__(self, ctx: Context, batch: int = 2000) -> None:
        self.ctx, self.batch = ctx, batch
        self.resources: list[dict[str, object]] = []
        self.versions: list[dict[str, object]] = []
        self.index: list[dict[str, object]] = []
        self.grants: list[dict[str, object]] = []
        self.rows_written = 0
        self.resources_written = 0

    def add(self, resource: BulkResource) -> None:
        if not resource.versions:
            raise ValueError("a resource needs at least one version")
        connection = self.ctx.session.connection()
        rtype, rid, tenant = resource.rtype, resource.rid, resource.tenant
        last = len(resource.versions)
        body = b""
        for number, (when, data) in enumerate(resource.versions, start=1):
            body = stamp(data, rid, number, as_utc(when))
            if number == last:
                break  # the current version: the resource row below
            aad = sealing.version_aad(rid, number, tenant)
            self.versions.append(
                {
                    "resource_id": rid,
                    "version_id": number,
                    "last_updated": as_utc(when),
                    "org_id": tenant,
                    "body": ring.seal(connection, aad, body),
                }
            )
        last_at, current = resource.versions[-1]
        sealed = ring.seal(connection, sealing.resource_aad(rid, rtype, last, tenant), body)
        self.resources.append(
            {
                "id": rid,
                "type": rtype,
                "version_id": last,
                "last_updated": as_utc(last_at),
                "org_id": tenant,
                "body": sealed,
            }
        )
        for n, values in enumerate(index_values(self.ctx, rtype, current, tenant)):
            self.index.append({"resource_id": rid, "position": n, "resource_type": rtype, **values})
        for org in dict.fromkeys(resource.grants):
            if org != tenant:
                self.grants.append({"resource_id": rid, "org_id": org})
        if len(self.resources) >= self.batch:
            self.flush()

    def flush(self) -> None:
        if not self.resources:
            return
        repository.insert_many(
            self.ctx.session, self.resources, self.versions, self.index, self.grants
        )
        self.resources_written += len(self.resources)
        self.rows_written += sum(
            len(rows) for rows in (self.resources, self.versions, self.index, self.grants)
        )
        self.resources, self.versions, self.index, self.grants = [], [], [], []
