"""Intake: a practice's writes — a transaction Bundle, or one resource — applied all-or-nothing.

Steps (DESIGN §3 step 1): find each entry's target (new id, conditional-create match, or the
resource a PUT names) → resolve conditional and urn:uuid references → check every rule and every
reference → add the referral Task where the practice sent none → write. Nothing is written until
every check has passed, and the caller's transaction makes it atomic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from fhir_adapters import codes
from fhir_adapters import rules as fhir_rules
from referral_service.audit import service as audit
from referral_service.consent.rules import Purpose, permits
from referral_service.consent.service import governing_consent, share_back_to
from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation, Invalid, MultipleMatches, NotFound
from referral_service.kit.clock import fhir_instant, utcnow
from referral_service.kit.crypto import blind_index
from referral_service.kit.ids import new_id
from referral_service.organisations import repository as organisations
from referral_service.referrals import enforcement, propagation, repository
from referral_service.referrals import rules as referral_rules
from referral_service.referrals.digest import content_digest
from referral_service.referrals.models import Submission
from referral_service.routing import service as routing
from referral_service.store import query as store_query
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.service import Version
from referral_service.wellbeing import service as wellbeing

CREATABLE = frozenset(
    {"Patient", "Consent", "ServiceRequest", "Task", "Condition", "QuestionnaireResponse"}
)
UPDATABLE = frozenset({"Patient", "Consent", "ServiceRequest", "Task", "Condition"})
STORED_TYPES = CREATABLE | {"Observation", "Procedure"}
SUBMISSION_INDEX = "referral-identifier"


@dataclass(slots=True)
class Entry:
    method: Literal["POST", "PUT"]
    rtype: str
    resource: dict[str, Any]
    full_url: str | None = None
    rid: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None


@dataclass(slots=True)
class Outcome:
    created: bool
    version: Version
    note: str | None = None  # e.g. the referral Task SPIS created for a ServiceRequest


@dataclass(slots=True)
class _Target:
    entry: Entry
    ref: str
    existing: StoredResource | None = None  # PUT target, or the conditional-create match
    write: bool = True


@dataclass(slots=True)
class _Intake:
    ctx: Context
    targets: list[_Target] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # fullUrl -> Type/id
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # Type/id -> resource to write
    tasks_added: dict[str, str] = field(default_factory=dict)  # SR ref -> Task ref
    scored: dict[str, wellbeing.ScoredResponse] = field(default_factory=dict)  # QR ref -> scores
    known_orgs: set[str] = field(default_factory=lambda: {"spis"})  # Organization ids seen to exist


def submit(ctx: Context, entries: list[Entry]) -> list[Outcome]:
    """Apply a practice's entries as one unit; on the first broken rule, raise and write nothing."""
    key = _submission_key(ctx, entries)
    # Before anything below rewrites references or fills in server parts.
    digest = _digest(ctx, entries) if key is not None else None
    if key is not None and (
        previous := repository.find_submission(ctx.session, ctx.principal, key)
    ):
        return _replay(ctx, previous, entries, digest)
    intake = _Intake(ctx)
    for index, entry in enumerate(entries):
        intake.targets.append(_target(intake, index, entry))
    for target in intake.targets:
        if target.write:
            _resolve_references(intake, target)
    for target in intake.targets:
        if target.write:
            _check(intake, target)
    outcomes = _write(intake)
    if key is not None:
        _record_submission(ctx, key, digest, outcomes)
    return outcomes


# --- targets ------------------------------------------------------------------------------------


def _target(intake: _Intake, index: int, entry: Entry) -> _Target:
    where = f"Bundle.entry[{index}]"
    if entry.method == "PUT":
        if entry.rtype not in UPDATABLE:
            raise Invalid(
                f"{where}: {entry.rtype} cannot be updated", status=405, issue_code="not-supported"
            )
        row = resources.load(intake.ctx, entry.rtype, entry.rid or "", for_update=True)
        resources.check_version(row, entry.if_match)
        target = _Target(entry, f"{entry.rtype}/{row.id}", existing=row)
    else:
        if entry.rtype not in CREATABLE:
            raise Invalid(
                f"{where}: {entry.rtype} cannot be created here",
                status=405,
                issue_code="not-supported",
            )
        match = _conditional_match(intake.ctx, entry)
        target = _Target(
            entry, f"{entry.rtype}/{match.id if match else new_id()}", match, match is None
        )
    if entry.full_url:
        if entry.full_url in intake.aliases:
            raise Invalid(
                f"{where}: fullUrl is used by more than one entry", expression=[f"{where}.fullUrl"]
            )
        intake.aliases[entry.full_url] = target.ref
    if target.write:
        if target.ref in intake.pending:
            raise Invalid(f"{where}: {target.ref} is written by more than one entry")
        intake.pending[target.ref] = entry.resource
    return target


def _conditional_match(ctx: Context, entry: Entry) -> StoredResource | None:
    """`If-None-Exist`, and for Patients the NHS number: one match means "already there"."""
    condition = entry.if_none_exist
    if condition is None and entry.rtype == "Patient":
        fhir_rules.check_patient(entry.resource)
        number = fhir_rules.nhs_number(entry.resource)
        condition = f"identifier={codes.NHS_NUMBER_SYSTEM}|{number}" if number else None
    if condition is None:
        return None
    query = store_query.parse_string(ctx, entry.rtype, condition)
    found = store.search(ctx.session, ctx.principal, entry.rtype, query, limit=2, offset=0)
    if len(found) > 1:
        raise MultipleMatches(
            f"The conditional create for {entry.rtype} matches more than one resource"
        )
    return found[0] if found else None


# --- references ---------------------------------------------------------------------------------


def _resolve_references(intake: _Intake, target: _Target) -> None:
    resource = target.entry.resource
    mapping: dict[str, str] = {}
    for _, ref in fhir_rules.references(resource):
        if ref in intake.aliases:
            mapping[ref] = intake.aliases[ref]
        elif ref.startswith(("urn:uuid:", "urn:oid:")):
            raise Invalid(
                f"{target.entry.rtype} refers to {ref}, which is not a fullUrl in this Bundle"
            )
        elif "?" in ref:
            mapping[ref] = _conditional_reference(intake.ctx, ref)
    fhir_rules.rewrite_references(resource, mapping)


def _conditional_reference(ctx: Context, ref: str) -> str:
    rtype, _, condition = ref.partition("?")
    if rtype not in STORED_TYPES:
        raise Invalid(f"Conditional references to {rtype} are not supported")
    query = store_query.parse_string(ctx, rtype, condition)
    found = store.search(ctx.session, ctx.principal, rtype, query, limit=2, offset=0)
    if len(found) > 1:
        raise MultipleMatches(
            f"The conditional reference to {rtype} matches more than one resource"
        )
    if not found:
        raise Invalid(
            f"The conditional reference to {rtype} matches no resource", issue_code="not-found"
        )
    return f"{rtype}/{found[0].id}"


def _lookup(intake: _Intake, ref: str | None) -> dict[str, Any] | None:
    """A resource this intake writes, or a stored one the caller may see."""
    if ref is None:
        return None
    if ref in intake.pending:
        return intake.pending[ref]
    parts = fhir_rules.split_reference(ref)
    if parts is None or parts[0] not in STORED_TYPES:
        return None
    return resources.load_json(intake.ctx, parts[0], parts[1])


def _check_reference_targets(intake: _Intake, target: _Target) -> None:
    """New references must point at something the caller can see. References an update keeps
    were checked when first written (a time bank's Task keeps pointing at the practice's Task)."""
    base = intake.ctx.settings.fhir_base_url + "/"
    kept = set()
    if target.existing is not None:
        kept = {ref for _, ref in fhir_rules.references(resources.as_dict(target.existing))}
    for _, ref in fhir_rules.references(target.entry.resource):
        if ref in kept:
            continue
        local = ref.removeprefix(base)
        if ref.startswith("#") or (local == ref and ref.startswith(("http://", "https://"))):
            continue  # contained, or held by another server
        parts = fhir_rules.split_reference(local)
        if parts is None:
            raise Invalid(f"{target.entry.rtype} has a reference SPIS cannot resolve")
        rtype, rid = parts
        if rtype == "Organization":
            if rid not in intake.known_orgs and organisations.get(intake.ctx.session, rid) is None:
                raise Invalid(
                    f"{target.entry.rtype} refers to an unknown Organization",
                    issue_code="not-found",
                )
            intake.known_orgs.add(rid)
        elif rtype not in STORED_TYPES:
            raise Invalid(
                f"SPIS does not hold {rtype} resources: use a contained or absolute reference"
            )
        elif _lookup(intake, f"{rtype}/{rid}") is None:
            raise Invalid(
                f"{target.entry.rtype} refers to {rtype}/{rid}, which does not exist",
                issue_code="not-found",
            )


# --- rules --------------------------------------------------------------------------------------


def _check(intake: _Intake, target: _Target) -> None:
    """The resource's own content first, then what it refers to, then rules across resources."""
    entry, principal = target.entry, intake.ctx.principal
    data = entry.resource
    old = resources.as_dict(target.existing) if target.existing is not None else None
    _content_rules(entry.rtype, data, new=old is None)
    _check_reference_targets(intake, target)
    if entry.rtype == "ServiceRequest":
        if old is not None:
            referral_rules.check_service_request_update(old, data)
        else:
            referral_rules.check_new_referral_status(data)
            practice = organisations.get(intake.ctx.session, principal.org_id)
            referral_rules.check_requester(principal, data, practice.ods_code if practice else None)
            _check_referral_consent(intake, data)
    elif entry.rtype == "Task":
        if old is not None:
            referral_rules.check_task_update(principal, old, data)
        else:
            _check_new_task(intake, data)
    elif entry.rtype == "QuestionnaireResponse":
        intake.scored[target.ref] = wellbeing.check_response(
            intake.ctx, data, lookup=lambda ref: _lookup(intake, ref)
        )


def _content_rules(rtype: str, data: dict[str, Any], *, new: bool) -> None:
    if rtype == "Patient":
        fhir_rules.check_patient(data)
    elif rtype == "Consent":
        fhir_rules.check_consent(data)
    elif rtype == "ServiceRequest" and new:
        fhir_rules.check_service_request(data)
    elif rtype == "Task" and new:
        fhir_rules.check_referral_task(data)
        data["owner"] = dict(referral_rules.SPIS_OWNER)  # SPIS coordinates, whatever was sent


def _check_new_task(intake: _Intake, task: dict[str, Any]) -> None:
    focus = fhir_rules.reference(task.get("focus"))
    sr = _lookup(intake, focus) if focus and focus.startswith("ServiceRequest/") else None
    referral_rules.check_new_task(intake.ctx.principal, task, sr)
    assert focus is not None
    if focus not in intake.pending and store.find_by_token(
        intake.ctx.session, intake.ctx.principal, "Task", "focus", None, focus
    ):
        raise BusinessRuleViolation(
            "This ServiceRequest already has a referral Task", issue_code="duplicate"
        )
    if focus in intake.tasks_added:
        raise BusinessRuleViolation(
            "A ServiceRequest can have only one referral Task", issue_code="duplicate"
        )
    intake.tasks_added[focus] = ""


def _check_referral_consent(intake: _Intake, sr: dict[str, Any]) -> None:
    """DESIGN §6: no referral leaves the practice without a permit, judged by the same governing
    Consent that routing will use (the newest active one, counting those sent with the referral)."""
    patient = fhir_rules.reference(sr.get("subject"))
    if patient is None or not patient.startswith("Patient/"):
        raise Invalid(
            "ServiceRequest.subject must reference the Patient",
            expression=["ServiceRequest.subject"],
        )
    system = routing.system_context(intake.ctx.session, intake.ctx.settings)
    pending = {ref: r for ref, r in intake.pending.items() if ref.startswith("Consent/")}
    consent_id, consent = governing_consent(system, intake.ctx.principal.org_id, patient, pending)
    permitted = consent is not None and permits(consent, Purpose.REFERRAL)
    audit.record_consent_decision(
        intake.ctx,
        permitted=permitted,
        flow=Purpose.REFERRAL.value,
        patient_id=patient.partition("/")[2],
        consents=[f"Consent/{consent_id}"] if consent_id else [],
        reason="permitted" if permitted else "no active Consent permits the referral",
    )
    if not permitted:
        raise BusinessRuleViolation(
            "The referral needs the patient's current Consent to permit sharing it with a time bank "
            "(an active Consent with provision.purpose TREAT)",
            status=422,
            expression=["ServiceRequest.supportingInfo"],
        )


# --- writing ------------------------------------------------------------------------------------


def _write(intake: _Intake) -> list[Outcome]:
    ctx = intake.ctx
    outcomes = []
    for target in intake.targets:
        rid = target.ref.partition("/")[2]
        entry = target.entry
        if not target.write:
            assert target.existing is not None
            outcomes.append(Outcome(False, Version.of(target.existing)))
        elif target.existing is not None:
            old = resources.as_dict(target.existing)
            outcomes.append(Outcome(False, resources.update(ctx, target.existing, entry.resource)))
            if entry.rtype == "Task":
                propagation.after_task_update(ctx, old, entry.resource)
            elif entry.rtype == "Consent":
                _consent_changed(ctx, target.existing.org_id, entry.resource)
        elif target.ref in intake.scored:
            outcomes.append(Outcome(True, _write_scored(intake, target, rid)))
        else:
            version = resources.create(ctx, entry.rtype, entry.resource, rid)
            outcomes.append(Outcome(True, version, _add_referral_task(intake, target)))
            if entry.rtype == "Consent" and not _about_new_patient(intake, entry.resource):
                _consent_changed(ctx, ctx.principal.org_id, entry.resource)
            if entry.rtype == "Task" and entry.resource["status"] == "requested":
                routing.request_routing(ctx.session, version.id)
    return outcomes


def _write_scored(intake: _Intake, target: _Target, rid: str) -> Version:
    """A questionnaire answer and its scores belong to the referral's practice (the GP finds them
    with `Observation?based-on=`), and stay readable to whoever recorded them."""
    ctx, scored = intake.ctx, intake.scored[target.ref]
    practice = wellbeing.referral_owner(ctx, scored)
    owner, share = practice, tuple[str, ...]((ctx.principal.org_id,))
    if practice != ctx.principal.org_id:  # a time bank's record, shared back while consent allows
        patient = str(fhir_rules.reference(target.entry.resource.get("subject")))
        system = routing.system_context(ctx.session, ctx.settings)
        owner, share = ctx.principal.org_id, share_back_to(system, practice, patient)
    version = resources.create(
        ctx, "QuestionnaireResponse", target.entry.resource, rid, tenant=owner, share_with=share
    )
    for observation in wellbeing.observations_for(scored, target.ref):
        resources.create(ctx, "Observation", observation, tenant=owner, share_with=share)
    return version


def _about_new_patient(intake: _Intake, consent: dict[str, Any]) -> bool:
    """A Consent for a Patient created in this same intake changes nothing already shared: there
    is no earlier referral or time bank record to stop or to share back yet."""
    patient = fhir_rules.reference(consent.get("patient"))
    return any(t.ref == patient and t.write and t.existing is None for t in intake.targets)


def _consent_changed(ctx: Context, tenant: str, consent: dict[str, Any]) -> None:
    patient = fhir_rules.reference(consent.get("patient"))
    if patient and patient.startswith("Patient/"):
        enforcement.apply_change(routing.system_context(ctx.session, ctx.settings), tenant, patient)


def _add_referral_task(intake: _Intake, target: _Target) -> str | None:
    if target.entry.rtype != "ServiceRequest" or target.ref in intake.tasks_added:
        return None
    sr = target.entry.resource
    requester = referral_rules.practice_reference(intake.ctx.principal, sr)
    task = referral_rules.referral_task(target.ref, sr, requester, fhir_instant(utcnow()))
    version = resources.create(intake.ctx, "Task", task)
    routing.request_routing(intake.ctx.session, version.id)
    return f"Referral Task created: Task/{version.id}"


# --- resubmission -------------------------------------------------------------------------------


def _submission_key(ctx: Context, entries: list[Entry]) -> str | None:
    for entry in entries:
        if entry.rtype == "ServiceRequest" and entry.method == "POST":
            for identifier in entry.resource.get("identifier") or []:
                if identifier.get("value"):
                    key = ctx.settings.blind_index_key.get_secret_value().encode()
                    name = f"{identifier.get('system', '')}|{identifier['value']}"
                    return blind_index(key, SUBMISSION_INDEX, name)
    return None


def _digest(ctx: Context, entries: list[Entry]) -> str:
    return content_digest(ctx.settings.blind_index_key.get_secret_value().encode(), entries)


def _record_submission(ctx: Context, key: str, digest: str | None, outcomes: list[Outcome]) -> None:
    refs = [f"{o.version.type}/{o.version.id}" for o in outcomes]
    sr_id = next(o.version.id for o in outcomes if o.version.type == "ServiceRequest")
    row = Submission(
        id=new_id(),
        org_id=ctx.principal.org_id,
        key=key,
        service_request_id=sr_id,
        response=orjson.dumps(refs),
        digest=digest,
    )
    repository.add_submission(ctx.session, row)


def _replay(
    ctx: Context, previous: Submission, entries: list[Entry], digest: str | None
) -> list[Outcome]:
    """The same referral sent again: answer as before (current versions), create nothing.

    "The same" is judged by content: a different referral under a used identifier is refused,
    never answered as if it had been accepted. (Submissions recorded before digests were kept
    are compared by their entry types only.)"""
    refs: list[str] = orjson.loads(previous.response)
    same_types = [ref.partition("/")[0] for ref in refs] == [entry.rtype for entry in entries]
    if not same_types or (previous.digest is not None and previous.digest != digest):
        raise BusinessRuleViolation(
            "This ServiceRequest identifier was already used for a different referral: the "
            "content differs from what was first accepted, and nothing was changed. Give a new "
            "referral its own identifier; to change this one, update its ServiceRequest",
            issue_code="duplicate",
            expression=["ServiceRequest.identifier"],
        )
    outcomes = []
    for ref in refs:
        rtype, _, rid = ref.partition("/")
        row = store.get(ctx.session, ctx.principal, rtype, rid)
        if row is None:
            raise NotFound(f"{ref} from the earlier submission is no longer available")
        outcomes.append(Outcome(False, Version.of(row)))
    return outcomes
