"""Intake: a practice's writes — a transaction Bundle, or one resource — applied all-or-nothing.

Steps (DESIGN §3 step 1), one module each: find each entry's target (new id, conditional-create
match, or the resource a PUT names) and resolve conditional and urn:uuid references (`targets`) →
check every rule and every reference (`checks`) → write, adding the referral Task where the
practice sent none (`writes`). A resend under a used ServiceRequest identifier is answered from
`submissions`. Nothing is written until every check has passed, and the caller's transaction
makes it atomic.
"""

from __future__ import annotations

from referral_service.context import Context
from referral_service.referrals import submissions
from referral_service.referrals.checks import check
from referral_service.referrals.intake import (
    CREATABLE,
    STORED_TYPES,
    UPDATABLE,
    Entry,
    Intake,
    Outcome,
)
from referral_service.referrals.targets import resolve_references, target
from referral_service.referrals.writes import write

# Callers (the /fhir edge) import the intake's vocabulary from here.
__all__ = ["CREATABLE", "STORED_TYPES", "UPDATABLE", "Entry", "Outcome", "submit"]


def submit(ctx: Context, entries: list[Entry]) -> list[Outcome]:
    """Apply a practice's entries as one unit; on the first broken rule, raise and write nothing."""
    key = submissions.key(ctx, entries)
    # Before anything below rewrites references or fills in server parts.
    digest = submissions.digest(ctx, entries) if key is not None else None
    if key is not None and (previous := submissions.find(ctx, key)):
        return submissions.replay(ctx, previous, entries, digest)
    intake = Intake(ctx)
    for index, entry in enumerate(entries):
        intake.targets.append(target(intake, index, entry))
    for found in intake.targets:
        if found.write:
            resolve_references(intake, found)
    for found in intake.targets:
        if found.write:
            check(intake, found)
    outcomes = write(intake)
    if key is not None:
        submissions.record(ctx, key, digest, outcomes)
    return outcomes
