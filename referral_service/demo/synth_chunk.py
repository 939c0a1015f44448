"""`spis synth`: writing one chunk of planned referrals in one transaction: their resources in
bulk, the submissions intake would have recorded, and the ledger rows of their members and
exchanges (partners are found within the chunk: referrals close in time, so both are active).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy.orm import Session

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.demo import synth_ledger
from referral_service.demo.synth_activity import exchanges
from referral_service.demo.synth_area import Area
from referral_service.demo.synth_fhir import Ids, holds_patient, intake, referral_ids, routing
from referral_service.demo.synth_plan import ACCEPTED, PENDING, Clock, Plan
from referral_service.demo.synth_records import Side, member_records
from referral_service.demo.synth_task import Record, referral_task
from referral_service.fhir.bundles import entries_of
from referral_service.ledger import repository as ledger
from referral_service.ledger.models import Member
from referral_service.outcomes import triggers
from referral_service.referrals import repository as referrals
from referral_service.referrals import submissions
from referral_service.referrals.models import Submission
from referral_service.store.bulk import BulkResource, BulkWriter

# A referral written: its plan, practice, the three locations intake answered, and the Bundle.
Done = tuple[Plan, str, list[str], dict[str, Any]]


class Loader:
    """Writes a planned load chunk by chunk. Knows, from all the plans, what a chunk alone cannot:
    which time banks still read each person's Patient, how many Tasks each time bank holds open
    at the end (its capacity is set from it), and how many volunteers each needs."""

    def __init__(
        self, settings: Settings, area: Area, clock: Clock, key: str, seed: int, plans: list[Plan]
    ) -> None:
        self.settings, self.area, self.clock, self.key, self.seed = settings, area, clock, key, seed
        self.counts: Counter[str] = Counter()
        self.volunteer_ids: dict[int, list[str]] = {}
        self.grants: dict[int, set[int]] = {}
        for p in plans:
            self.grants.setdefault(p.patient_of, set()).update(holds_patient(p))
        self.taken: Counter[int] = Counter()
        for p in plans:
            for a in p.attempts:
                if a.answer == PENDING or (a.answer == ACCEPTED and _still_open(p)):
                    self.taken[a.timebank] += 1
        per_tb = Counter(t.timebank for p in plans if (t := p.taken_up) is not None)
        self.volunteer_counts = {
            i: min(400, max(12, per_tb[i] // 20)) for i in range(len(area.timebanks))
        }

    def volunteers(self, session: Session) -> int:
        with triggers.paused(session):
            return self._volunteers(session)

    def _volunteers(self, session: Session) -> int:
        for i, tb in enumerate(self.area.timebanks):
            count = self.volunteer_counts[i]
            self.volunteer_ids[i] = synth_ledger.volunteers(
                session, self.key, i, tb.id, count, self.clock.start
            )
        return sum(self.volunteer_counts.values())

    def open_tasks(self) -> dict[int, int]:
        return dict(self.taken)

    def chunk(self, ctx: Context, number: int, plans: list[Plan]) -> int:
        """Write the chunk; the outcome rows are rebuilt once the load is done (no refresh jobs
        are queued meanwhile)."""
        with triggers.paused(ctx.session):
            return self._chunk(ctx, number, plans)

    def _chunk(self, ctx: Context, number: int, plans: list[Plan]) -> int:
        writer = BulkWriter(ctx)

        def emit(resource: BulkResource) -> None:
            self.counts[resource.rtype] += 1
            writer.add(resource)

        chunk_ids = Ids(f"{self.key}/chunk/{number}")
        counts = [self.volunteer_counts[i] for i in range(len(self.area.timebanks))]
        swaps = exchanges(
            random.Random(f"{self.key}/chunk/{number}"), plans, self.area, counts, self.clock.end
        )
        by_plan = synth_ledger.sides(swaps, chunk_ids)
        members: dict[int, str] = {}
        rows: list[Member] = []
        done = [self._referral(emit, p, by_plan, members, rows) for p in plans]
        writer.flush()
        written = writer.rows_written + self._submissions(ctx, done)
        tb_ids = [tb.id for tb in self.area.timebanks]
        ledger_rows = synth_ledger.ledger_rows(
            swaps, by_plan, members, self.volunteer_ids, tb_ids, chunk_ids
        )
        ledger.add(ctx.session, *rows)
        ledger.add(ctx.session, *ledger_rows)
        ctx.session.expunge_all()  # nothing here is read again: keep memory flat
        return written + len(rows) + len(ledger_rows)

    def _referral(
        self,
        emit: Callable[[BulkResource], None],
        p: Plan,
        by_plan: dict[int, list[Side]],
        members: dict[int, str],
        rows: list[Member],
    ) -> Done:
        """One referral's resources (emitted), its member (added to `members` and `rows`)."""
        ids, ref = referral_ids(self.key, p.index, p.patient_of, len(p.attempts))
        practice = self.area.practices[p.practice]
        readers = tuple(self.area.timebanks[i].id for i in sorted(self.grants[p.patient_of]))
        ref, bundle = intake(emit, p, ref, practice.id, self.seed, readers)
        routing(emit, p, ref, self.area, practice.id, self.clock.sla_days)
        records: list[Record] = []
        if p.enrolled_at is not None and (taken := p.taken_up) is not None:
            tb_id = self.area.timebanks[taken.timebank].id
            answers = random.Random(f"{self.key}/answers/{p.index}")
            enrolment, records = member_records(
                emit, p, ref, ids, tb_id, by_plan.get(p.index, []), answers
            )
            members[p.index] = ids.new()
            enrolled = synth_ledger.Enrolled(members[p.index], ref, practice.id, tb_id)
            rows.append(synth_ledger.member(p, enrolled, ref.children[-1], enrolment))
        referral_task(emit, p, ref, self.area, practice.id, records)
        sent = [
            f"Patient/{ref.patient_id}",
            f"Consent/{ref.consent_id}",
            f"ServiceRequest/{ref.sr_id}",
        ]
        return p, practice.id, sent, bundle

    def _submissions(self, ctx: Context, done: list[Done]) -> int:
        """The first answer to each referral, kept so a resend gets it (referrals/submissions)."""
        for p, practice_id, sent, bundle in done:
            entries = entries_of(bundle)
            row = Submission(
                id=Ids(f"{self.key}/submission/{p.index}").new(),
                org_id=practice_id,
                key=submissions.key(ctx, entries) or "",
                service_request_id=sent[2].removeprefix("ServiceRequest/"),
                response=orjson.dumps(sent),
                digest=submissions.digest(ctx, entries),
                created_at=p.received_at,
            )
            referrals.add_submission(ctx.session, row)
        return len(done)


def _still_open(p: Plan) -> bool:
    return p.cancelled_at is None and p.ended is None
