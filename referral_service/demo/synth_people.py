"""`spis synth`: the synthetic people referred, and what each of them agreed to.

NHS numbers are in the 999 range NHS England keeps for testing, each passing the Modulus 11 check
intake applies; names are common British names put together at random; home postcodes are made up
inside the districts of the practice's area. Nobody here is a real person.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from fhir_adapters.codes import REFERRAL_REASONS
from fhir_adapters.rules import nhs_number_is_valid

GIVEN = (
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Grace",
    "Freya",
    "Lily",
    "Sophia",
    "Ella",
    "Margaret",
    "Patricia",
    "Jean",
    "Sandra",
    "Pauline",
    "Irene",
    "Joyce",
    "Doreen",
    "Aisha",
    "Fatima",
    "Priya",
    "Mei",
    "Zainab",
    "Chloe",
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Leo",
    "Harry",
    "Jack",
    "Charlie",
    "Thomas",
    "Mohammed",
    "David",
    "John",
    "Michael",
    "Peter",
    "Brian",
    "Kenneth",
    "Derek",
    "Raj",
    "Kwame",
    "Tomasz",
    "Sean",
    "Owen",
    "Rhys",
    "Callum",
)
FAMILY = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Khan",
    "Hughes",
    "Edwards",
    "Hussain",
    "Lewis",
    "Turner",
    "Okafor",
    "Nowak",
    "Begum",
    "Ali",
    "Campbell",
    "Murphy",
    "Kelly",
    "Chen",
    "Mensah",
)
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # the letters inward codes use
NO_FIXED_ABODE = "NFA"  # how some GP systems record it: no district, so no time bank can be found
REASONS = tuple(REFERRAL_REASONS)


@dataclass(frozen=True, slots=True)
class Person:
    nhs_number: str
    given: str
    family: str
    birth_date: str
    postcode: str
    district: str | None  # None when the postcode cannot be read (no fixed abode)
    phone: str | None
    share_back: bool
    secondary_use: bool
    national_opt_out: bool


class NhsNumbers:
    """Distinct valid test NHS numbers (999 range), in a sequence that starts where the seed says."""

    def __init__(self, start: int) -> None:
        self.next = start % 1_000_000

    def take(self) -> str:
        for _ in range(20):
            stem = f"999{self.next:06d}"
            self.next = (self.next + 1) % 1_000_000
            number = stem + str(_check_digit(stem))[-1]
            if nhs_number_is_valid(number):
                return number
        raise RuntimeError("no valid NHS number found")  # pragma: no cover - 1 in 11 fail


def _check_digit(stem: str) -> int:
    total = sum(int(d) * w for d, w in zip(stem, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return 0 if check == 11 else check  # 10: no valid number, skipped by the caller


def person(
    rng: random.Random, numbers: NhsNumbers, districts: tuple[str, ...], today: date
) -> Person:
    """One person referred: most agree to everything; some not to secondary use, a few not to
    share-back; a few have registered a national data opt-out."""
    consent = rng.random()
    district = None if rng.random() < 0.01 else rng.choice(districts)
    age = int(min(95, max(18, rng.gauss(62, 17))))
    born = today - timedelta(days=age * 365 + rng.randrange(365))
    return Person(
        nhs_number=numbers.take(),
        given=rng.choice(GIVEN),
        family=rng.choice(FAMILY),
        birth_date=born.isoformat(),
        postcode=postcode(rng, district) if district else NO_FIXED_ABODE,
        district=district,
        phone=f"07700 900{rng.randrange(1000):03d}" if rng.random() < 0.6 else None,
        share_back=consent >= 0.02,
        secondary_use=consent < 0.02 or consent >= 0.11,
        national_opt_out=rng.random() < 0.03,
    )


def postcode(rng: random.Random, district: str) -> str:
    letters = rng.choice(_INWARD_LETTERS) + rng.choice(_INWARD_LETTERS)
    return f"{district} {rng.randrange(1, 10)}{letters}"
