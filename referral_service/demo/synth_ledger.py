"""`spis synth`: the time credit ledger's rows, as `ledger.service` writes them: members (the
time banks' own volunteers, and referred people enrolled from their time bank Task), each
exchange with its two entries (+minutes to the giver, −minutes to the receiver, naming the
Procedure and hours Observation made for a referred party), and reversals with the opposite
entries. Written through the ledger repository, so aliases and reasons are sealed as always.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from fhir_adapters.ledger import Direction
from referral_service.demo.synth_activity import Party, Swap
from referral_service.demo.synth_fhir import Ids, Referral
from referral_service.demo.synth_people import FAMILY, GIVEN
from referral_service.demo.synth_plan import Plan
from referral_service.demo.synth_records import Side
from referral_service.ledger import repository
from referral_service.ledger.models import Exchange, LedgerEntry, Member


@dataclass(frozen=True, slots=True)
class Enrolled:
    member_id: str
    referral: Referral
    practice_id: str
    tb_id: str


def volunteers(
    session: Session, key: str, tb: int, tb_id: str, count: int, since: datetime
) -> list[str]:
    """The `tb`th time bank's own members, who joined before the period began; their ids."""
    ids, rng = Ids(f"{key}/volunteers/{tb}"), random.Random(f"{key}/volunteers/{tb}")
    members = [
        Member(
            id=ids.new(),
            org_id=tb_id,
            alias=f"{rng.choice(GIVEN)} {rng.choice(FAMILY)[0]}.",
            joined_at=since - timedelta(days=rng.uniform(30, 1500)),
        )
        for _ in range(count)
    ]
    repository.add(session, *members)
    return [m.id for m in members]


def member(p: Plan, enrolled: Enrolled, child_task_id: str, enrolment_id: str) -> Member:
    assert p.enrolled_at is not None
    ref = enrolled.referral
    return Member(
        id=enrolled.member_id,
        org_id=enrolled.tb_id,
        alias=p.person.given,
        joined_at=p.enrolled_at,
        enrolled_at=p.enrolled_at,
        referral_task_id=child_task_id,
        practice_org_id=enrolled.practice_id,
        patient_id=ref.patient_id,
        service_request_id=ref.sr_id,
        enrolment_observation_id=enrolment_id,
    )


def sides(swaps: list[Swap], ids: Ids) -> dict[int, list[Side]]:
    """Each referred party's side of each exchange, with the ids its resources get."""
    found: dict[int, list[Side]] = {}
    for swap in swaps:
        for party, direction in (
            (swap.giver, Direction.GIVEN),
            (swap.receiver, Direction.RECEIVED),
        ):
            if party.plan is not None:
                side = Side(swap, direction, ids.new(), ids.new())
                found.setdefault(party.plan, []).append(side)
    return found


def ledger_rows(
    swaps: list[Swap],
    by_plan: dict[int, list[Side]],
    members: dict[int, str],
    volunteers_of: dict[int, list[str]],
    tb_ids: list[str],
    ids: Ids,
) -> list[Exchange | LedgerEntry]:
    """Exchanges and entries (parents first); reversals after what they reverse."""
    produced = {
        (id(side.swap), side.direction): side for found in by_plan.values() for side in found
    }
    rows: list[Exchange | LedgerEntry] = []
    for swap in swaps:
        tb = tb_ids[swap.timebank]
        giver = _member_id(swap.giver, members, volunteers_of[swap.timebank])
        receiver = _member_id(swap.receiver, members, volunteers_of[swap.timebank])
        exchange = Exchange(
            id=ids.new(),
            org_id=tb,
            giver_id=giver,
            receiver_id=receiver,
            minutes=swap.minutes,
            performed_on=swap.day,
            category=swap.category,
            created_at=swap.recorded_at,
        )
        rows.append(exchange)
        for who, direction, sign in (
            (giver, Direction.GIVEN, 1),
            (receiver, Direction.RECEIVED, -1),
        ):
            side = produced.get((id(swap), direction))
            rows.append(
                LedgerEntry(
                    id=ids.new(),
                    org_id=tb,
                    exchange_id=exchange.id,
                    member_id=who,
                    minutes=sign * swap.minutes,
                    procedure_id=side.procedure_id if side else None,
                    observation_id=side.observation_id if side else None,
                )
            )
        if swap.reversed_at is not None:
            rows += _reversal(exchange, swap, giver, receiver, ids)
    return rows


def _reversal(
    original: Exchange, swap: Swap, giver: str, receiver: str, ids: Ids
) -> list[Exchange | LedgerEntry]:
    reversal = Exchange(
        id=ids.new(),
        org_id=original.org_id,
        giver_id=giver,
        receiver_id=receiver,
        minutes=original.minutes,
        performed_on=original.performed_on,
        category=original.category,
        created_at=swap.reversed_at,
        reverses_id=original.id,
        reason=swap.reversal_reason,
    )
    return [
        reversal,
        LedgerEntry(
            id=ids.new(),
            org_id=original.org_id,
            exchange_id=reversal.id,
            member_id=giver,
            minutes=-original.minutes,
        ),
        LedgerEntry(
            id=ids.new(),
            org_id=original.org_id,
            exchange_id=reversal.id,
            member_id=receiver,
            minutes=original.minutes,
        ),
    ]


def _member_id(party: Party, members: dict[int, str], volunteers: list[str]) -> str:
    if party.plan is not None:
        return members[party.plan]
    assert party.volunteer is not None
    return volunteers[party.volunteer]
