"""Server-assigned ids: time-ordered UUIDs, except a person's, which are wholly random.

Most ids are UUIDs of version 7 (RFC 9562): the millisecond they were made, then 74 random bits.
They were all random (version 4) until issue 12, and that cost PostgreSQL more with every row
stored: each new row's key, and each of its index rows' keys, went to a random place in indexes
far larger than memory, so nearly every insert touched a page no recent insert had. Ids made
one after the other now go to the same few pages at the right of each index. Measured on a time
bank's batches of 100 questionnaires (bench/api.py, four runs one after the other, tables
growing by about 30,000 questionnaires a run): PostgreSQL's share of the machine grew from 0.52
to 0.65 cores with random ids, and stayed at 0.39-0.46 with these.

What such an id tells whoever sees it: when it was made, to the millisecond, and so which of two
was made first. Never how many were made: nothing in it counts. For a resource that time is its
first version's `meta.lastUpdated`, which whoever may read it sees anyway, and for most resources
a date in it says as much (a referral's `authoredOn`, a score's `effectiveDateTime`).

A person's id stays random (version 4, `new_person_id`): a Patient's, a time bank member's and a
staff member's. A time bank that is sent a referral sees its Patient's id; were it time-ordered,
it would show when SPIS first heard of that person, which may be an earlier referral sent
elsewhere. Few rows are people, so their keys' order costs the indexes little.
"""

from __future__ import annotations

import secrets
import time
import uuid

_VERSION_7 = 0x7 << 76
_VARIANT = 0b10 << 62
_LOW_62 = (1 << 62) - 1
_PERSON_TYPES = frozenset({"Patient"})


def new_id() -> str:
    """A time-ordered id (UUID version 7): 48 bits of Unix time in milliseconds, the version,
    then 74 random bits (12 and 62, around the variant). No counter: two ids of the same
    millisecond are in random order. (Python 3.14's `uuid.uuid7` makes the same layout, with a
    counter; this runs on 3.11.)"""
    millis = time.time_ns() // 1_000_000
    random = secrets.randbits(74)
    high = (millis << 80) | _VERSION_7 | ((random >> 62) << 64)
    return str(uuid.UUID(int=high | _VARIANT | (random & _LOW_62)))


def new_person_id() -> str:
    """A wholly random id (UUID version 4), for a record of a person: it tells nothing."""
    return str(uuid.uuid4())


def resource_id(rtype: str) -> str:
    """The id of a new FHIR resource of type `rtype`: random for a Patient, else time-ordered."""
    return new_person_id() if rtype in _PERSON_TYPES else new_id()
