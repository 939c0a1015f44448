"""Intake: a practice's writes — a transaction Bundle, or one resource — applied all-or-nothing.

Steps (DESIGN §3 step 1), one module each: find each entry's target (new id, conditional-create
match, or the resource a PUT names) and resolve conditional and urn:uuid references (`targets`) →
check every rule and every reference (`checks`) → write, adding the referral Task where the
practice sent none (`writes`). A resend under a used ServiceRequest identifier is answered from
`submissions`. Nothing is written until every check has passed, and the caller's transaction
makes it atomic.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from fhir_adapters.outcome import FhirError
from referral_service.context import Context
from referral_service.errors import ServiceError
from referral_service.referrals import submissions
from referral_service.referrals.checks import check
from referral_service.referrals.intake import (
    CREATABLE,
    STORED_TYPES,
    UPDATABLE,
    Entry,
    Intake,
    Outcome,
    Shared,
)
from referral_service.referrals.targets import prefetch, resolve_references, target
from referral_service.referrals.writes import write

# Callers (the /fhir edge) import the intake's vocabulary from here.
__all__ = [
    "CREATABLE",
    "STORED_TYPES",
    "UPDATABLE",
    "Entry",
    "Outcome",
    "Shared",
    "submit",
    "submit_each",
    "submit_entry",
]


def submit(ctx: Context, entries: list[Entry], shared: Shared | None = None) -> list[Outcome]:
    """Apply a practice's entries as one unit; on the first broken rule, raise and write nothing."""
    intake, key, digest, replayed = _checked(ctx, entries, shared)
    if replayed is not None:
        return replayed
    outcomes = write(intake)
    if key is not None:
        submissions.record(ctx, key, digest, outcomes)
    return outcomes


def _checked(
    ctx: Context, entries: list[Entry], shared: Shared | None
) -> tuple[Intake, str | None, str | None, list[Outcome] | None]:
    """Every phase before the writes: reads only, nothing written, nothing recorded."""
    key = submissions.key(ctx, entries)
    # Before anything below rewrites references or fills in server parts.
    digest = submissions.digest(ctx, entries) if key is not None else None
    intake = Intake.sharing(ctx, shared)
    if key is not None and (previous := submissions.find(ctx, key)):
        return intake, key, digest, submissions.replay(ctx, previous, entries, digest)
    for index, entry in enumerate(entries):
        intake.targets.append(target(intake, index, entry))
    for found in intake.targets:
        if found.write:
            resolve_references(intake, found)
    for found in intake.targets:
        if found.write:
            check(intake, found)
    return intake, key, digest, None


def submit_each(ctx: Context, entries: list[Entry]) -> Iterator[Outcome | ServiceError | FhirError]:
    """A batch's entries in order, each submitted on its own (`submit_entry`): its outcome, or
    why it was refused. Before each run of consecutive questionnaire entries, what their
    references name is read in one statement (`targets.prefetch`) rather than entry by entry."""
    shared = Shared()
    for index, entry in enumerate(entries):
        if _without_savepoint(entry) and (index == 0 or not _without_savepoint(entries[index - 1])):
            run = itertools.takewhile(_without_savepoint, entries[index:])
            prefetch(ctx, shared, [e.resource for e in run])
        try:
            outcome = submit_entry(ctx, entry, shared)
        except (ServiceError, FhirError) as exc:
            yield exc
        else:
            yield outcome


def submit_entry(ctx: Context, entry: Entry, shared: Shared) -> Outcome:
    """One entry of a batch, which succeeds or fails on its own (`submit` of that entry alone);
    consecutive entries share their reads (`Shared`).

    A QuestionnaireResponse create needs no savepoint: its checks only read and record nothing,
    and its writes (the response, its scores, the consent decision that shares them back) come
    after everything that can refuse it, so a refused one leaves nothing to undo. Its rows wait
    in the store's queue, and a whole batch of them goes in one INSERT per table. Any other entry
    runs in a savepoint, as before, and clears what the batch shares before and after."""
    if _without_savepoint(entry):
        intake, _, _, replayed = _checked(ctx, [entry], shared)
        if replayed is not None:  # no SR, no submission key: never
            [outcome] = replayed
            return outcome
        try:
            [outcome] = write(intake)
        except (ServiceError, FhirError) as exc:
            # Nothing here refuses once the checks passed; if something ever did, what was
            # written cannot be told apart from the rest of the batch: fail the whole request.
            raise RuntimeError("a batch entry was refused after it was written") from exc
        return outcome
    shared.clear()
    try:
        with ctx.session.begin_nested():
            [outcome] = submit(ctx, [entry])
    finally:
        shared.clear()
    return outcome


def _without_savepoint(entry: Entry) -> bool:
    return entry.method == "POST" and entry.rtype == "QuestionnaireResponse"
