"""Submitting writes and auditing them: the one step `POST /fhir` (transaction or batch),
`PUT /fhir/<type>/<id>` and the web workspace's forms share, so a form goes through exactly what a FHIR client does.

The caller has validated the resource (`fhir_adapters.parse.validate_resource`), as /fhir does
before anything else. Scope checks come first, then intake (`referrals.service.submit`), then the
audit events of what was written. Refusals are raised (ServiceError, FhirError) with nothing
written; `audit.service.record_refusal` audits one when the caller answers it itself rather than
letting the error handlers do it.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters.outcome import FhirError
from referral_service.audit import service as audit
from referral_service.audit.models import Kind
from referral_service.auth.dependencies import require
from referral_service.context import Context
from referral_service.errors import ServiceError
from referral_service.fhir import bundles
from referral_service.referrals import service as referrals
from referral_service.referrals.service import Entry
from referral_service.referrals.service import Outcome as Written


def submit_transaction(ctx: Context, bundle: dict[str, Any]) -> list[Written]:
    """A validated transaction Bundle, all or nothing; audited as one transaction (with what SPIS
    wrote for it: the referral Task it adds)."""
    entries = bundles.entries_of(bundle)
    for entry in entries:
        require(ctx.principal, entry.rtype, "c" if entry.method == "POST" else "u")
    outcomes = referrals.submit(ctx, entries)
    written = [
        version
        for o, e in zip(outcomes, entries, strict=True)
        if o.created or e.method == "PUT"
        for version in o.written()
    ]
    audit.record_write(ctx, Kind.TRANSACTION, written)
    return outcomes


def submit_batch(
    ctx: Context, entries: list[Entry], base: str, with_resource: bool
) -> list[dict[str, Any]]:
    """A validated batch Bundle's entries, each succeeding or failing on its own
    (`referrals.submit_entry`); the batch-response entries. What the entries that succeeded wrote
    (with what SPIS wrote for them: a questionnaire's scores) is one write event, shown as one
    per patient (`audit.record_write`, `merge`): an event per entry cost a batch of 100
    questionnaires 100 events. A refused entry's failure is its own event, as before."""
    for entry in entries:
        require(ctx.principal, entry.rtype, "c" if entry.method == "POST" else "u")
    answered, written = [], []
    for entry, outcome in zip(entries, referrals.submit_each(ctx, entries), strict=True):
        if isinstance(outcome, ServiceError | FhirError):
            answered.append(bundles.error_entry(outcome))
            continue
        if outcome.created or entry.method == "PUT":
            written.extend(outcome.written())
        answered.append(bundles.response_entry(outcome, base, with_resource))
    audit.record_write(ctx, Kind.BATCH, written, merge=True)
    return answered


def submit_update(
    ctx: Context, rtype: str, rid: str, body: dict[str, Any], if_match: str | None
) -> Written:
    """A validated resource PUT at `rtype/rid`, version-checked by `if_match` when given."""
    require(ctx.principal, rtype, "u")
    entry = Entry("PUT", rtype, body, rid=rid, if_match=if_match)
    [outcome] = referrals.submit(ctx, [entry])
    audit.record_write(ctx, Kind.UPDATE, [outcome.version])
    return outcome
