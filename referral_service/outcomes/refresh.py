"""Computing one patient's outcome rows from the source data, as SPIS: the referral Tasks and
their version histories, the time banks' Tasks, the ledger, the score Observations and the
governing Consent. Run by the `spis.refresh_outcomes` job (`triggers.py` enqueues it), by
`spis outcomes rebuild`, and by nothing else.

Idempotent: the patient's rows at their practice are deleted and written again, under a
per-patient lock (`repository.lock_patient`) taken before anything is read, so a refresh and an
immediate exclusion (`eligibility.py`) never undo each other. A patient with no referral keeps no
rows and gets none.

What the rows hold (models.py says what each column means):

- A referral is a practice's Task without `partOf`, about the patient, at the Patient's practice.
  Drafts (not sent yet) and Tasks entered in error (never a referral) have no row.
- `received_at` = the Task's `authoredOn` (its first stored version if it has none); `routed_at`
  = when its first time bank Task was stored; `accepted_at` = the first version, of the referral
  Task or any of its time bank Tasks, in a taken-up status (`cohort.TAKEN_UP`); `completed_at` =
  the first version of the referral Task that is `completed`.
- `timebank_id` = the owner of the time bank Task taken up first; else of the last one stored.
- `rejected_reason` = the routing-rejection code on a `rejected` referral Task
  (fhir_adapters.measures.REJECTED_REASON_SYSTEM); `no-time-bank` when it has none (stored before
  the code existed).
- Declines: each time bank Task now `rejected`, with its DECLINE_REASONS code (`unknown` when
  absent) and the first version that was `rejected`.
- The member: the one enrolled from one of the referral's time bank Tasks, in that time bank's
  ledger (the earliest, should there be more). Exchanges are the member's standing ones: an
  exchange that was reversed and the reversal itself are both left out, so the figures are net.
- Scores: the patient's score Observations (status final, amended or corrected; codes in
  `cohort.SCALE_BY_CODE`) that are `basedOn` the referral's ServiceRequest or one of its filler
  orders. SPIS stores every score with `basedOn` the original ServiceRequest (wellbeing/service.py)
  and a response must name the referral, so this is the link the GP sees too; a score of the same
  patient for another referral counts for that referral only, never twice. The baseline and
  follow-up are then chosen by `cohort.choose` around the member's `enrolled_at`: no member, no
  score rows.
- `eligible` = `consent.service.decide(..., SECONDARY_USE)` (the Consent and the national data
  opt-out), once per refresh; audited like every decision.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fhir_adapters import task as fhir_task
from fhir_adapters.codes import DECLINE_REASON_SYSTEM, DECLINE_REASONS, REJECTED_NO_TIME_BANK
from fhir_adapters.measures import REJECTED_REASON_SYSTEM, REJECTED_REASONS
from referral_service.config import Settings
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.jobs.service import JobName, handles
from referral_service.kit.clock import as_utc
from referral_service.kit.refs import Ref
from referral_service.outcomes import cohort, repository, sources
from referral_service.outcomes.cohort import Scored, Windows
from referral_service.outcomes.models import (
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from referral_service.outcomes.repository import Enrolled, PatientRows
from referral_service.principal import Principal
from referral_service.store.models import StoredResource

NOT_REFERRALS = frozenset({"draft", "entered-in-error"})
UNKNOWN_DECLINE = "unknown"


def system_context(session: Session, settings: Settings) -> Context:
    return Context(session, Principal.spis(), settings)


@handles(JobName.REFRESH_OUTCOMES)
def refresh_job(session: Session, settings: Settings, args: dict[str, str]) -> None:
    """`patients`: Patient resource ids, comma-separated and sorted (outcomes/triggers.py), so
    two jobs lock the patients they share in the same order; `patient`: one, as a job queued by
    an earlier release names it."""
    ctx = system_context(session, settings)
    patients = args["patients"].split(",") if "patients" in args else [args["patient"]]
    for patient_id in patients:
        refresh_patient(ctx, patient_id)


def refresh_patient(ctx: Context, patient_id: str) -> int:
    """Rewrite the outcome rows of every referral of the patient; how many referrals have rows.
    `ctx` is SPIS's (it reads every tenant's records about the patient)."""
    repository.lock_patient(ctx.session, patient_id)
    patient = sources.patient(ctx, patient_id)
    if patient is None:
        return 0  # no such Patient: nothing can be about it
    practice = patient.org_id
    tasks = sources.about(ctx, "Task", patient_id, [])
    referrals = [
        (row, task)
        for row, task in tasks
        if not task.get("partOf") and row.org_id == practice and task["status"] not in NOT_REFERRALS
    ]
    rows = PatientRows([], [], [], [], [])
    if referrals:
        kids = sources.children(tasks)
        eligible = decide(ctx, practice, f"Patient/{patient_id}", Purpose.SECONDARY_USE).permitted
        scores = sources.scores(ctx, patient_id)
        for row, task in referrals:
            facts = _Referral(ctx, row, task, kids.get(row.id, []))
            facts.add_to(rows, patient_id, eligible, scores)
    repository.replace_patient_rows(ctx.session, practice, patient_id, rows)
    return len(rows.referrals)


def windows(settings: Settings) -> Windows:
    return Windows(
        settings.outcome_baseline_window_days,
        settings.outcome_follow_up_min_weeks,
        settings.outcome_follow_up_max_weeks,
    )


# --- one referral --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Child:
    """A time bank's Task for the referral."""

    task_id: str
    owner: str | None  # the time bank's organisation id
    filler: str | None  # "ServiceRequest/<id>" it focuses on
    stored_at: datetime
    taken_up_at: datetime | None
    declined: tuple[str, datetime] | None  # (reason code, when) for one now `rejected`


class _Referral:
    def __init__(
        self,
        ctx: Context,
        row: StoredResource,
        task: dict[str, Any],
        kids: list[tuple[StoredResource, dict[str, Any]]],
    ) -> None:
        self.ctx, self.row, self.task = ctx, row, task
        self.history = sources.history(ctx, row)
        self.children = [_child(ctx, kid_row, kid) for kid_row, kid in kids]
        owned = [(c.owner, c.task_id) for c in self.children if c.owner is not None]
        members = repository.enrolled_from(ctx.session, owned)
        self.member: Enrolled | None = members[0] if members else None

    def add_to(
        self, rows: PatientRows, patient_id: str, eligible: bool, scores: list[sources.Score]
    ) -> None:
        exchanged = self._exchanges()
        rows.referrals.append(self._outcome(exchanged, patient_id, eligible))
        rows.declines.extend(
            OutcomeDecline(
                referral_id=self.row.id,
                task_id=c.task_id,
                timebank_id=c.owner,
                reason=c.declined[0],
                declined_at=c.declined[1],
            )
            for c in self.children
            if c.declined is not None and c.owner is not None
        )
        if self.member is None:
            return
        for month, figures in sorted(cohort.rollup(self.member.member_id, exchanged).items()):
            rows.activity.append(
                OutcomeActivity(
                    referral_id=self.row.id,
                    month=month,
                    minutes_given=figures.given,
                    minutes_received=figures.received,
                    exchanges=figures.exchanges,
                )
            )
            rows.partners.extend(
                OutcomePartner(referral_id=self.row.id, month=month, partner_member_id=partner)
                for partner in sorted(figures.partners)
            )
        rows.scores.extend(self._scores(scores, as_utc(self.member.enrolled_at)))

    def _exchanges(self) -> list[cohort.Exchanged]:
        if self.member is None:
            return []
        found = repository.standing_exchanges(
            self.ctx.session, self.member.org_id, self.member.member_id
        )
        return [
            cohort.Exchanged(g.performed_on, g.giver_id, g.receiver_id, g.minutes) for g in found
        ]

    def _outcome(
        self, exchanged: list[cohort.Exchanged], patient_id: str, eligible: bool
    ) -> ReferralOutcome:
        task, member = self.task, self.member
        taken = [c for c in self.children if c.taken_up_at is not None]
        taker = min(taken, key=lambda c: (c.taken_up_at, c.task_id), default=None)
        last = max(self.children, key=lambda c: (c.stored_at, c.task_id), default=None)
        chosen = taker or last
        gifts = [x.performed_on for x in exchanged if member and x.giver_id == member.member_id]
        return ReferralOutcome(
            referral_id=self.row.id,
            practice_id=self.row.org_id,
            patient_id=patient_id,
            timebank_id=chosen.owner if chosen is not None else None,
            status=task["status"],
            received_at=sources.instant(task.get("authoredOn")) or self.history[0].at,
            routed_at=min((c.stored_at for c in self.children), default=None),
            accepted_at=cohort.earliest(
                cohort.first_at(self.history, cohort.TAKEN_UP), *(c.taken_up_at for c in taken)
            ),
            first_exchange_on=min((x.performed_on for x in exchanged), default=None),
            completed_at=cohort.first_at(self.history, ["completed"]),
            rejected_reason=_rejected_reason(task),
            member_id=member.member_id if member else None,
            enrolled_at=as_utc(member.enrolled_at) if member else None,
            first_gift_on=min(gifts, default=None),
            eligible=eligible,
        )

    def _scores(self, scores: list[sources.Score], enrolled_at: datetime) -> list[OutcomeScore]:
        requests = {str(r) for r in (Ref.of(self.task.get("focus")),) if r is not None}
        requests |= {c.filler for c in self.children if c.filler is not None}
        by_scale: dict[str, list[Scored]] = defaultdict(list)
        for score in scores:
            if score.based_on & requests:
                by_scale[score.scale].append(score.scored)
        found = []
        for scale, scored in sorted(by_scale.items()):
            pair = cohort.choose(scored, enrolled_at, windows(self.ctx.settings))
            if pair is None:
                continue
            follow_up = pair.follow_up
            found.append(
                OutcomeScore(
                    referral_id=self.row.id,
                    scale=scale,
                    baseline=pair.baseline.value,
                    baseline_at=pair.baseline.at,
                    follow_up=follow_up.value if follow_up else None,
                    follow_up_at=follow_up.at if follow_up else None,
                )
            )
        return found


def _rejected_reason(task: dict[str, Any]) -> str | None:
    if task["status"] != "rejected":
        return None
    code = fhir_task.reason_code(task, REJECTED_REASON_SYSTEM)
    return code if code in REJECTED_REASONS else REJECTED_NO_TIME_BANK


def _child(ctx: Context, row: StoredResource, kid: dict[str, Any]) -> _Child:
    history = sources.history(ctx, row)
    owner, focus = Ref.of(kid.get("owner")), Ref.of(kid.get("focus"))
    declined = None
    if kid["status"] == "rejected":
        code = fhir_task.reason_code(kid, DECLINE_REASON_SYSTEM)
        when = cohort.first_at(history, ["rejected"]) or history[-1].at
        declined = (code if code in DECLINE_REASONS else UNKNOWN_DECLINE, when)
    return _Child(
        task_id=row.id,
        owner=owner.id if owner is not None and owner.rtype == "Organization" else None,
        filler=str(focus) if focus is not None else None,
        stored_at=history[0].at,
        taken_up_at=cohort.first_at(history, cohort.TAKEN_UP),
        declined=declined,
    )
