"""The one consent decision point (DESIGN §6): `decide(...)` answers for a patient and a purpose,
for intake, routing, share-back and secondary use alike. What a changed decision does to grants and
open Tasks is not decided here: `referrals.lifecycle.apply_consent_change` acts on the answers.

The governing Consent is the practice's most recent one for the patient that is in force or was
withdrawn (`active` or `inactive`): a new Consent replaces the old, and setting it inactive
withdraws consent; it never brings an older Consent back. Drafts, proposals, rejected Consents and
ones entered in error replace nothing. Decisions are enforced as read grants, inside
the store's queries, so search, _include, history and paging can never show what is withheld.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fhir_adapters.rules import reference
from referral_service.audit import service as audit
from referral_service.consent.rules import (
    GOVERNING_STATUSES,
    Purpose,
    consent_time,
    opted_out,
    permits,
)
from referral_service.context import Context
from referral_service.kit.refs import ResourceId, id_of
from referral_service.principal import Principal
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.repository import TokenMatch


@dataclass(frozen=True, slots=True)
class Decision:
    permitted: bool
    purpose: Purpose
    consent_id: str | None  # the Consent that decided, for the audit trail
    reason: str


DecisionKey = tuple[str, str, Purpose, str | None]  # (tenant, patient, purpose, recipient)


@dataclass(slots=True)
class Decisions:
    """Decisions already made in one batch: what `decide` answers again without reading the
    Consents again (`known`). `made` may hold decisions read ahead (`prefetch_share_back`) that
    no entry has used yet; `audited` holds those whose event is queued in this request."""

    made: dict[DecisionKey, Decision] = field(default_factory=dict)
    audited: set[DecisionKey] = field(default_factory=set)

    def clear(self) -> None:
        self.made.clear()
        self.audited.clear()


def decide(
    ctx: Context,
    tenant: str,
    patient_ref: str,
    purpose: Purpose,
    recipient: str | None = None,
    *,
    pending: Mapping[str, dict[str, Any]] | None = None,
    new_patient: bool = False,
    known: Decisions | None = None,
) -> Decision:
    """May `purpose` happen for this patient of practice `tenant` (and reach `recipient`,
    "Organization/<id>", when given)? Every decision is audited, with the Consent that made it.

    `ctx` is who asks: SPIS itself (a system context) when routing or enforcing, the practice at
    intake; it is the audit agent. The Consents are read as SPIS whoever asks. At intake, `pending`
    holds the Consents arriving in the same Bundle (`Consent/<id>` → resource), and
    `new_patient` says the Patient is created by it too: no stored Consent can name it yet.

    `known` holds decisions made earlier in the same request, reused rather than read again: the
    caller keeps it only while nothing it writes can change a Consent or a Patient (see
    `referrals.intake.Shared`). A decision is audited once in that span, however many entries use
    it: the event says who decided what for which patient by which Consent, and each use made
    the same one again. A batch of 100 questionnaires about 20 patients recorded 100 events, 80
    of them repeats; the entries it governed are each in their own write event."""
    system = ctx if ctx.principal.system else replace(ctx, principal=Principal.spis())
    key = (tenant, patient_ref, purpose, recipient)
    if pending or new_patient:
        known = None  # this Bundle's own Consents decide: nothing made earlier stands for it
    decision = known.made.get(key) if known is not None else None
    if decision is None:
        decision = _decide(system, tenant, patient_ref, purpose, recipient, pending, new_patient)
        if known is not None:
            known.made[key] = decision
    if known is not None:
        if key in known.audited:
            return decision
        known.audited.add(key)
    audit.record_consent_decision(
        ctx,
        permitted=decision.permitted,
        flow=purpose.value,
        patient_id=_patient_id(patient_ref),
        consents=[f"Consent/{decision.consent_id}"] if decision.consent_id else [],
        tenant=tenant,
        reason=decision.reason,
    )
    return decision


def _decide(
    ctx: Context,
    tenant: str,
    patient_ref: str,
    purpose: Purpose,
    recipient: str | None,
    pending: Mapping[str, dict[str, Any]] | None,
    new_patient: bool = False,
) -> Decision:
    consent_id, consent = governing_consent(ctx, tenant, patient_ref, pending, new_patient)
    return _decision(ctx, patient_ref, purpose, recipient, consent_id, consent)


def _decision(
    ctx: Context,
    patient_ref: str,
    purpose: Purpose,
    recipient: str | None,
    consent_id: str | None,
    consent: dict[str, Any] | None,
) -> Decision:
    """What the governing Consent (if any) decides."""
    if consent is None:
        return Decision(False, purpose, None, "no active Consent")
    if consent.get("status") != "active":
        return Decision(False, purpose, consent_id, "the current Consent was withdrawn")
    if purpose is Purpose.SECONDARY_USE:
        patient_id = _patient_id(patient_ref)
        patient = (resources.load_json(ctx, "Patient", patient_id) if patient_id else None) or {}
        if opted_out(patient):
            return Decision(False, purpose, consent_id, "national data opt-out")
    if permits(consent, purpose, recipient):
        return Decision(True, purpose, consent_id, _for("permitted", recipient))
    return Decision(False, purpose, consent_id, _for("not permitted by the Consent", recipient))


def _patient_id(patient_ref: str) -> ResourceId | None:
    """None for a reference that names no Patient locally: intake may be judging a versioned
    `subject`, which no Consent matches; it is refused, and the refusal is still audited."""
    try:
        return id_of(patient_ref)
    except ValueError:
        return None


def _for(reason: str, recipient: str | None) -> str:
    return f"{reason} for {recipient}" if recipient else reason


def governing_consent(
    ctx: Context,
    tenant: str,
    patient_ref: str,
    pending: Mapping[str, dict[str, Any]] | None = None,
    new_patient: bool = False,
    rows: Sequence[StoredResource] | None = None,
) -> tuple[str | None, dict[str, Any] | None]:
    """The newest Consent in force or withdrawn (by dateTime, then by when it was stored) among
    the practice's stored ones and, at intake, those arriving with the referral. It may be
    `inactive`: then nothing is permitted, whatever older Consents say. A Patient new in this
    intake (`new_patient`) has no stored Consents: none are looked for. `rows`: the stored ones,
    when the caller read them already (`prefetch_share_back`)."""
    if rows is None:
        query = [[TokenMatch("patient", patient_ref)], _governing_statuses()]
        rows = (
            []
            if new_patient
            else store.search(
                ctx.session, ctx.principal, "Consent", query, limit=_SEARCHED, offset=0
            )
        )
    candidates = [
        (consent_time(data), 0, row.last_updated.isoformat(), row.id, data)
        for row in rows
        if row.org_id == tenant and (data := resources.as_dict(row))
    ]
    candidates += [
        (consent_time(c), 1, "", id_of(ref), c)
        for ref, c in (pending or {}).items()
        if c.get("status") in GOVERNING_STATUSES and reference(c.get("patient")) == patient_ref
    ]
    if not candidates:
        return None, None
    newest = max(candidates, key=lambda c: (c[0], c[1], c[2]))
    return newest[3], newest[4]


_SEARCHED = 200  # a patient's stored Consents considered (the newest)


def _governing_statuses() -> list[TokenMatch]:
    return [TokenMatch("status", status) for status in sorted(GOVERNING_STATUSES)]


def prefetch_share_back(ctx: Context, wanted: Iterable[tuple[str, str]], known: Decisions) -> None:
    """The share-back decisions `share_back_to` will make for these (practice, patient) pairs,
    their Consents read in one statement rather than one per patient, into `known`: a batch of
    questionnaires about twenty patients made twenty searches. The same decisions (the same
    Consents, the same rule); each is audited when `decide` first uses it, never here. Nothing
    is added when the one statement cannot stand for the searches (see `search_by_values`)."""
    system = ctx if ctx.principal.system else replace(ctx, principal=Principal.spis())
    keys = {
        (tenant, patient, Purpose.SHARE_BACK, f"Organization/{tenant}"): patient
        for tenant, patient in wanted
    }
    keys = {key: patient for key, patient in keys.items() if key not in known.made}
    if not keys:
        return
    grouped = store.search_by_values(
        system.session,
        system.principal,
        "Consent",
        "patient",
        sorted(set(keys.values())),
        [_governing_statuses()],
        limit=_SEARCHED,
    )
    if grouped is None:
        return
    for (tenant, patient, purpose, recipient), _ in keys.items():
        consent_id, consent = governing_consent(system, tenant, patient, rows=grouped[patient])
        known.made[(tenant, patient, purpose, recipient)] = _decision(
            system, patient, purpose, recipient, consent_id, consent
        )


def share_back_to(
    ctx: Context, tenant: str, patient_ref: str, known: Decisions | None = None
) -> tuple[str, ...]:
    """Who, besides the time bank that records it, may read an activity or a score: the practice,
    when the patient permits share-back."""
    practice = f"Organization/{tenant}"
    shared = decide(ctx, tenant, patient_ref, Purpose.SHARE_BACK, practice, known=known).permitted
    return (tenant,) if shared else ()
