"""`spis synth`: the health board, and the practices and time banks it places in the board's area.

Registered through the organisations and time bank services, as an operator does with
`spis org add ... --board`. Names say "(synthetic)"; ODS codes and postcode districts are
derived from the seed, so the same seed gives the same area. The districts avoid SE6 and SE13,
where the demo's own time banks work, so that synthetic time banks never take the demo's
referrals.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy.orm import Session

from fhir_adapters.codes import OFFER_CATEGORIES
from referral_service.errors import Invalid
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.timebanks.service import set_profile

# Postcode districts of a few real areas (home postcodes are made up within them).
AREAS: tuple[tuple[str, ...], ...] = (
    ("SE3", "SE4", "SE8", "SE10", "SE12", "SE14", "SE23", "SE26"),
    ("LS4", "LS5", "LS6", "LS7", "LS8", "LS9", "LS11", "LS12"),
    ("M8", "M9", "M11", "M12", "M13", "M14", "M16", "M18"),
    ("B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12"),
    ("NE3", "NE4", "NE5", "NE6", "NE7", "NE15", "NE12", "NE13"),
)
PLACES = (
    "Northbrook",
    "Riverside",
    "Parkview",
    "Hillcrest",
    "Meadowbank",
    "Stonebridge",
    "Ashgrove",
    "Kingsmead",
    "Willowfield",
    "Elmtree",
    "Brookside",
    "Fairholme",
)
PRACTICE_KINDS = ("Medical Centre", "Surgery", "Health Centre", "Group Practice")
OFFERS = tuple(OFFER_CATEGORIES)


@dataclass(frozen=True, slots=True)
class Place:
    id: str
    name: str
    ods: str | None
    districts: tuple[str, ...]  # a practice: where its patients live; a time bank: its catchment
    offers: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Area:
    board_id: str
    board_ods: str
    board_name: str
    practices: tuple[Place, ...]
    timebanks: tuple[Place, ...]
    districts: tuple[str, ...]

    def serving(self, district: str) -> list[int]:
        """Indexes of the time banks whose catchment covers `district`."""
        return [i for i, tb in enumerate(self.timebanks) if district in tb.districts]


def default_board_ods(seed: int) -> str:
    return f"QS{seed % 10_000:04d}"


def board(session: Session, ods: str, seed: int) -> tuple[str, str]:
    """The health board with this ODS code, registered when it is not yet known."""
    found = organisations.by_ods(session, ods)
    if found is not None:
        if found.kind is not OrgKind.HEALTHBOARD:
            raise Invalid(f"{ods} is registered, but not as a health board")
        return found.id, found.name
    name = f"Synthetic Health Board {ods} (seed {seed})"
    return register(session, OrgKind.HEALTHBOARD, name, ods).id, name


def build(
    session: Session, board_id: str, board_ods: str, seed: int, practices: int, timebanks: int
) -> Area:
    """Register `practices` practices and `timebanks` time banks in the board's area."""
    rng = random.Random(f"area/{seed}/{board_ods}")
    districts = AREAS[seed % len(AREAS)]
    places = rng.sample(PLACES, len(PLACES))
    tbs = tuple(
        _timebank(session, board_id, seed, places[i], catchment, rng)
        for i, catchment in enumerate(catchments(districts, timebanks, rng))
    )
    gps = tuple(
        _practice(session, board_id, board_ods, seed, i, places[-1 - i % len(places)], rng)
        for i in range(practices)
    )
    return Area(
        board_id, board_ods, _board_name(session, board_id), _homes(gps, districts), tbs, districts
    )


def catchments(districts: tuple[str, ...], count: int, rng: random.Random) -> list[list[str]]:
    """Every district covered by at least one time bank, most by two (so that a declined referral
    can go to a second time bank)."""
    found: list[set[str]] = [set() for _ in range(count)]
    for i, district in enumerate(districts):
        found[i % count].add(district)
        if count > 1 and rng.random() < 0.85:
            found[(i + 1 + rng.randrange(count - 1)) % count].add(district)
    return [sorted(c) for c in found]


def _timebank(
    session: Session,
    board_id: str,
    seed: int,
    place: str,
    catchment: list[str],
    rng: random.Random,
) -> Place:
    name = f"{place} Time Bank (synthetic)"
    org = register(session, OrgKind.TIMEBANK, name, None, board_id=board_id)
    offers = sorted(rng.sample(OFFERS, rng.randint(4, 6)))
    set_profile(session, org.id, catchment, offers, capacity=50)  # raised once loaded
    return Place(org.id, name, None, tuple(catchment), tuple(offers))


def _practice(
    session: Session,
    board_id: str,
    board_ods: str,
    seed: int,
    index: int,
    place: str,
    rng: random.Random,
) -> Place:
    ods = practice_ods(seed, board_ods, index)
    if organisations.by_ods(session, ods) is not None:
        raise Invalid(
            f"synthetic practice {ods} is already registered: seed {seed} was loaded into board "
            f"{board_ods}'s area before; choose another --seed"
        )
    name = f"{place} {rng.choice(PRACTICE_KINDS)} (synthetic)"
    org = register(session, OrgKind.PRACTICE, name, ods, board_id=board_id)
    return Place(org.id, name, ods, ())


def practice_ods(seed: int, board_ods: str, index: int) -> str:
    """A letter and five digits, like an English GP practice code; distinct for each index."""
    base = random.Random(f"ods/{seed}/{board_ods}").randrange(100_000)
    return f"Y{(base + index * 7919) % 100_000:05d}"  # 7919 is prime: no two indexes collide


def _homes(gps: tuple[Place, ...], districts: tuple[str, ...]) -> tuple[Place, ...]:
    """Each practice's patients live in three neighbouring districts of the area."""
    n = len(districts)
    return tuple(
        Place(gp.id, gp.name, gp.ods, tuple(districts[(i + k) % n] for k in range(3)))
        for i, gp in enumerate(gps)
    )


def _board_name(session: Session, board_id: str) -> str:
    org = organisations.get(session, board_id)
    return org.name if org is not None else board_id


def set_capacities(session: Session, area: Area, open_tasks: dict[int, int]) -> None:
    """Capacity is open referral slots: what each time bank holds now plus some room."""
    for i, tb in enumerate(area.timebanks):
        capacity = open_tasks.get(i, 0) + 20
        set_profile(session, tb.id, list(tb.districts), list(tb.offers), capacity)
