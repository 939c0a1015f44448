"""`spis synth`: what a time bank records about a referred member, as the ledger and intake store
it: the enrolment Observation, questionnaire responses with their score Observations, and for
each exchange the member took part in a Procedure and an hours Observation (a reversed exchange
gives both a second version, entered-in-error). All are the time bank's own records, shared
with the practice while the person permits share-back (`consent.service.share_back_to`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from fhir_adapters import ledger as fhir_ledger
from fhir_adapters.ledger import Direction
from fhir_adapters.questionnaire_form import questionnaire_response
from fhir_adapters.questionnaires import INSTRUMENTS
from fhir_adapters.wellbeing import score_answers, score_observations
from referral_service.demo.synth_activity import Swap
from referral_service.demo.synth_fhir import Emit, Ids, Referral
from referral_service.demo.synth_plan import Plan, Sitting
from referral_service.demo.synth_task import Record
from referral_service.kit.clock import fhir_instant
from referral_service.store.bulk import BulkResource

# Item means at wellbeing z = 0, and how far one unit moves them (people referred score below the
# population: SWEMWBS metric about 19 at baseline, against about 23.5 for adults in England).
ITEM_MODEL: dict[str, list[tuple[float, float, float]]] = {
    "swemwbs": [(2.85, 0.55, 0.7)] * 7,
    "wemwbs": [(2.95, 0.55, 0.7)] * 14,
    "ons4": [(5.0, 1.8, 1.0), (5.6, 1.7, 1.0), (5.2, 2.0, 1.1), (5.0, -1.8, 1.2)],
    "ucla3": [(2.3, -0.4, 0.45)] * 3,
}


@dataclass(frozen=True, slots=True)
class Side:
    """The referred member's part in one exchange, and the ids of what it produced."""

    swap: Swap
    direction: Direction
    procedure_id: str
    observation_id: str


def member_records(
    emit: Emit, p: Plan, ref: Referral, ids: Ids, tb_id: str, sides: list[Side], rng: random.Random
) -> tuple[str, list[Record]]:
    """Emit the member's records; returns the enrolment Observation's id and every record based
    on the referral, for the referral Task's outputs."""
    assert p.enrolled_at is not None
    readers = (_practice_of(ref),) if p.person.share_back else ()
    member = fhir_ledger.ReferredMember(ref.patient_id, ref.sr_id, tb_id)
    enrolment_id = ids.new()
    body = fhir_ledger.enrolment_observation(member, p.enrolled_at)
    emit(BulkResource("Observation", enrolment_id, tb_id, [(p.enrolled_at, body)], readers))
    records = [Record("Observation", enrolment_id, p.enrolled_at)]
    filler = f"ServiceRequest/{ref.fillers[-1]}"  # the accepting time bank's, the last routed
    for sitting in p.sittings:
        records += _questionnaires(emit, p, ref, ids, tb_id, filler, sitting, readers, rng)
    for side in sides:
        records += _exchange(emit, member, side, tb_id, readers)
    return enrolment_id, records


def _practice_of(ref: Referral) -> str:
    requester = ref.service_request["requester"]["reference"]
    return str(requester).removeprefix("Organization/")


def _questionnaires(
    emit: Emit,
    p: Plan,
    ref: Referral,
    ids: Ids,
    tb_id: str,
    filler: str,
    sitting: Sitting,
    readers: tuple[str, ...],
    rng: random.Random,
) -> list[Record]:
    records = []
    for n, qid in enumerate(p.instruments):
        when = sitting.at + timedelta(minutes=3 * n)
        answers = _answers(qid, sitting.level, rng)
        qr_id = ids.new()
        qr = questionnaire_response(
            qid,
            {link: str(value) for link, value in answers.items()},
            patient_ref=f"Patient/{ref.patient_id}",
            based_on_ref=filler,
            authored=fhir_instant(when),
        )
        scores = score_answers(qid, answers)
        observations = score_observations(
            f"QuestionnaireResponse/{qr_id}", qr, f"ServiceRequest/{ref.sr_id}", scores
        )
        emit(BulkResource("QuestionnaireResponse", qr_id, tb_id, [(when, qr)], readers))
        for observation in observations:
            obs_id = ids.new()
            emit(BulkResource("Observation", obs_id, tb_id, [(when, observation)], readers))
            records.append(Record("Observation", obs_id, when))
    return records


def _answers(qid: str, level: float, rng: random.Random) -> dict[str, int]:
    instrument = INSTRUMENTS[qid]
    found = {}
    for link, (mean, slope, noise) in zip(instrument.link_ids, ITEM_MODEL[qid], strict=True):
        value = round(mean + slope * level + rng.gauss(0, noise))
        found[link] = min(instrument.high, max(instrument.low, value))
    return found


def _exchange(
    emit: Emit, member: fhir_ledger.ReferredMember, side: Side, tb_id: str, readers: tuple[str, ...]
) -> list[Record]:
    swap = side.swap
    procedure = fhir_ledger.exchange_procedure(member, swap.category, swap.day, side.direction)
    hours = fhir_ledger.hours_observation(
        member, side.procedure_id, swap.minutes, swap.day, side.direction
    )
    records = []
    for rtype, rid, body in (
        ("Procedure", side.procedure_id, procedure),
        ("Observation", side.observation_id, hours),
    ):
        versions = [(swap.recorded_at, body)]
        corrected = fhir_ledger.entered_in_error(body)
        if swap.reversed_at is not None and corrected is not None:
            versions.append((swap.reversed_at, corrected))
        emit(BulkResource(rtype, rid, tb_id, versions, readers))
        records.append(Record(rtype, rid, swap.recorded_at, swap.reversed_at))
    return records
