"""Intake phases 1 and 2: what each entry writes to (a new id, the conditional-create match, or the
resource a PUT names), and what its references point at (urn:uuid fullUrls and conditional
references resolved; every new reference checked to name something the caller may see).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fhir_adapters import codes
from fhir_adapters import rules as fhir_rules
from referral_service.consent import service as consent
from referral_service.context import Context
from referral_service.errors import Invalid, MultipleMatches
from referral_service.kit.ids import resource_id
from referral_service.kit.refs import Ref, ResourceId
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import Organisation
from referral_service.referrals.intake import (
    CREATABLE,
    STORED_TYPES,
    UPDATABLE,
    Entry,
    Intake,
    Shared,
    Target,
)
from referral_service.routing import service as routing
from referral_service.store import query as store_query
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store import unreadable
from referral_service.store.models import StoredResource

# --- targets ------------------------------------------------------------------------------------


def target(intake: Intake, index: int, entry: Entry) -> Target:
    where = f"Bundle.entry[{index}]"
    if entry.method == "PUT":
        if entry.rtype not in UPDATABLE:
            raise Invalid(
                f"{where}: {entry.rtype} cannot be updated", status=405, issue_code="not-supported"
            )
        row = resources.load(intake.ctx, entry.rtype, entry.rid or "", for_update=True)
        resources.check_version(row, entry.if_match)
        found = Target(entry, f"{entry.rtype}/{row.id}", existing=row)
    else:
        if entry.rtype not in CREATABLE:
            raise Invalid(
                f"{where}: {entry.rtype} cannot be created here",
                status=405,
                issue_code="not-supported",
            )
        match = _conditional_match(intake.ctx, entry)
        found = Target(
            entry,
            f"{entry.rtype}/{match.id if match else resource_id(entry.rtype)}",
            match,
            match is None,
        )
    if entry.full_url:
        if entry.full_url in intake.aliases:
            raise Invalid(
                f"{where}: fullUrl is used by more than one entry", expression=[f"{where}.fullUrl"]
            )
        intake.aliases[entry.full_url] = found.ref
    if found.write:
        if found.ref in intake.pending:
            raise Invalid(f"{where}: {found.ref} is written by more than one entry")
        intake.pending[found.ref] = entry.resource
    return found


def _conditional_match(ctx: Context, entry: Entry) -> StoredResource | None:
    """`If-None-Exist`, and for Patients the NHS number: one match means "already there"."""
    condition = entry.if_none_exist
    if condition is None and entry.rtype == "Patient":
        fhir_rules.check_patient(entry.resource)
        number = fhir_rules.nhs_number(entry.resource)
        condition = f"identifier={codes.NHS_NUMBER_SYSTEM}|{number}" if number else None
    if condition is None:
        return None
    found, more = _match(ctx, entry.rtype, condition)
    if more:
        raise MultipleMatches(
            f"The conditional create for {entry.rtype} matches more than one resource"
        )
    return found


def _match(ctx: Context, rtype: str, condition: str) -> tuple[StoredResource | None, bool]:
    """The newest match of a condition, and whether there are more. With Core, out of the
    session (a match is answered or referred to, never written), the live data keys in the same
    statement. A match whose body does not open fails the intake (`Unreadable`), as it did
    through the ORM."""
    query = store_query.parse_string(ctx, rtype, condition)
    if len(query) == 1 and len(query[0]) == 1 and isinstance(query[0][0], store.TokenMatch):
        answer = store.match_token(ctx.session, ctx.principal, rtype, query[0][0])
        if answer is not None:  # an identifier, as most conditions are: a prepared statement
            return _readable(answer[0]), answer[1]
    rows, more = store.search_page(ctx.session, ctx.principal, rtype, query, count=1, offset=0)
    return _readable(rows[0] if rows else None), more


def _readable(row: StoredResource | None) -> StoredResource | None:
    if row is not None and unreadable.is_unreadable(row):
        raise unreadable.Unreadable
    return row


# --- references ---------------------------------------------------------------------------------


def resolve_references(intake: Intake, target: Target) -> None:
    resource = target.entry.resource
    mapping: dict[str, str] = {}
    found = fhir_rules.reference_strings(resource)
    for ref in found:
        if ref in intake.aliases:
            mapping[ref] = intake.aliases[ref]
        elif ref.startswith(("urn:uuid:", "urn:oid:")):
            raise Invalid(
                f"{target.entry.rtype} refers to {ref}, which is not a fullUrl in this Bundle"
            )
        elif "?" in ref:
            mapping[ref] = _conditional_reference(intake.ctx, ref)
    # Most entries (a time bank's questionnaires) have nothing to rewrite: no second walk.
    if mapping:
        fhir_rules.rewrite_references(resource, mapping)
    target.references = [mapping.get(ref, ref) for ref in found]


def _conditional_reference(ctx: Context, ref: str) -> str:
    rtype, _, condition = ref.partition("?")
    if rtype not in STORED_TYPES:
        raise Invalid(f"Conditional references to {rtype} are not supported")
    found, more = _match(ctx, rtype, condition)
    if more:
        raise MultipleMatches(
            f"The conditional reference to {rtype} matches more than one resource"
        )
    if found is None:
        raise Invalid(
            f"The conditional reference to {rtype} matches no resource", issue_code="not-found"
        )
    return f"{rtype}/{found.id}"


def lookup(intake: Intake, ref: str | None) -> dict[str, Any] | None:
    """A resource this intake writes, or a stored one the caller may see."""
    if ref is None:
        return None
    if ref in intake.pending:
        return intake.pending[ref]
    parts = fhir_rules.split_reference(ref)
    if parts is None or parts[0] not in STORED_TYPES:
        return None
    if ref not in intake.read:
        # Core, out of the session: the intake only reads the content and whose it is.
        row = store.read(intake.ctx.session, intake.ctx.principal, parts[0], parts[1])
        intake.read[ref] = None if row is None else resources.as_dict(row)
        if row is not None:
            intake.owners[ref] = row.org_id
    return intake.read[ref]


def prefetch(ctx: Context, shared: Shared, bodies: Iterable[dict[str, Any]]) -> None:
    """Read, in one statement, the stored resources that these resources' references name, into
    what consecutive batch entries share: as `lookup` would read them one by one (None when the
    caller may not see one; a row that does not open is left for `lookup` to fail on)."""
    base = ctx.settings.fhir_base_url + "/"
    wanted: dict[str, Ref] = {}
    for body in bodies:
        for ref in fhir_rules.reference_strings(body):
            parts = fhir_rules.split_reference(ref.removeprefix(base))
            if parts is not None and parts[0] in STORED_TYPES:
                key = f"{parts[0]}/{parts[1]}"
                if key not in shared.read:
                    wanted[key] = Ref(parts[0], ResourceId(parts[1]))
    if not wanted:
        return
    found = {
        f"{row.type}/{row.id}": row
        for row in store.read_many(ctx.session, ctx.principal, wanted.values())
    }
    for key in wanted:
        row = found.get(key)
        if row is None:
            shared.read[key] = None
        elif not unreadable.is_unreadable(row):
            shared.read[key] = resources.as_dict(row)
            shared.owners[key] = row.org_id
    # The share-back decisions their writes will ask for (writes._write_scored): a response
    # about another organisation's referral is shared back with it while consent allows.
    pairs = []
    for body in bodies:
        named = _first_service_request(base, body)
        practice = shared.owners.get(named) if named else None
        if practice is not None and practice != ctx.principal.org_id:
            pairs.append((practice, str(fhir_rules.reference(body.get("subject")))))
    system = routing.system_context(ctx.session, ctx.settings)
    consent.prefetch_share_back(system, pairs, shared.decisions)


def _first_service_request(base: str, body: dict[str, Any]) -> str | None:
    """The ServiceRequest a response's basedOn names first, as `wellbeing.check_response` finds it."""
    based_on = body.get("basedOn")
    for item in based_on if isinstance(based_on, list) else []:
        ref = fhir_rules.reference(item)
        parts = fhir_rules.split_reference(ref.removeprefix(base)) if ref else None
        if parts is not None and parts[0] == "ServiceRequest":
            return f"ServiceRequest/{parts[1]}"
    return None


def owner(intake: Intake, ref: str) -> str | None:
    """The tenant of a stored resource the caller may see; None when it may not, or when this
    intake creates it (it is not stored yet)."""
    for found in intake.targets:
        if found.ref == ref and found.existing is not None:
            return found.existing.org_id
    if ref in intake.pending:
        return None
    lookup(intake, ref)
    return intake.owners.get(ref)


def check_reference_targets(intake: Intake, target: Target) -> None:
    """New references must point at something the caller can see. References an update keeps
    were checked when first written (a time bank's Task keeps pointing at the practice's Task)."""
    base = intake.ctx.settings.fhir_base_url + "/"
    kept = set()
    if target.existing is not None:
        kept = set(fhir_rules.reference_strings(resources.as_dict(target.existing)))
    for ref in _references(target):
        if ref in kept:
            continue
        local = ref.removeprefix(base)
        if ref.startswith("#") or (local == ref and ref.startswith(("http://", "https://"))):
            continue  # contained, or held by another server
        parts = fhir_rules.split_reference(local)
        if parts is None:
            raise Invalid(f"{target.entry.rtype} has a reference SPIS cannot resolve")
        _check_reference_target(intake, target.entry.rtype, *parts)


def _references(target: Target) -> list[str]:
    """As resolved (the same walk would find the same), or found now if not resolved yet."""
    if target.references is not None:
        return target.references
    return fhir_rules.reference_strings(target.entry.resource)


def organisation(intake: Intake, org_id: str) -> Organisation | None:
    """Read once per intake: the practice's own is both referred to and checked against."""
    if org_id not in intake.organisations:
        intake.organisations[org_id] = organisations.read(intake.ctx.session, org_id)
    return intake.organisations[org_id]


def _check_reference_target(intake: Intake, source: str, rtype: str, rid: str) -> None:
    if rtype == "Organization":
        # The caller's own organisation is there without a look: SPIS issued its token for the
        # client's row, which names it (a foreign key), and no organisation is ever deleted.
        # Every referral names it as requester, and its look was 2% of an intake's CPU.
        own = rid == intake.ctx.principal.org_id
        if not own and rid not in intake.known_orgs and organisation(intake, rid) is None:
            raise Invalid(f"{source} refers to an unknown Organization", issue_code="not-found")
        intake.known_orgs.add(rid)
    elif rtype not in STORED_TYPES:
        raise Invalid(
            f"SPIS does not hold {rtype} resources: use a contained or absolute reference"
        )
    elif lookup(intake, f"{rtype}/{rid}") is None:
        raise Invalid(
            f"{source} refers to {rtype}/{rid}, which does not exist", issue_code="not-found"
        )
