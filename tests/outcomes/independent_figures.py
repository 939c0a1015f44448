"""An independent calculation of the health board figures, for tests only: the figures.

From the per-referral frames (`independent_rows.derive`), each Measure's figures for a board and a
period, exactly (counts, minutes, the per-person values a statistic rests on), by the contract's
cohort rules: a board's referrals are its practices' (board_id read now), only eligible ones, a
person counts once per figure family (strata from the referral that represents them). Then
`independent_disclosure.publish` applies the published disclosure rules as a reader would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import pandas as pd

from fhir_adapters.measures import (
    COPRODUCTION,
    FUNNEL,
    REJECTED_REASONS,
    SCALES,
    WELLBEING,
    Stratifier,
)
from referral_service.config import Settings
from tests.outcomes.independent import Raw
from tests.outcomes.independent_rows import Derived

S = Stratifier
Key = tuple[str, S, str]  # (figure, stratifier, stratum key)


@dataclass(frozen=True)
class Exact:
    """A figure in a stratum before disclosure control."""

    count: int = 0  # a COUNT; for a statistic, the people it rests on
    values: tuple[float, ...] = ()  # MEAN / MEDIAN: one per person
    given: int = 0  # minutes (HOURS, RATIO)
    received: int = 0


Figures = dict[Key, Exact]
Focus = tuple[str, str] | None  # ("practice", ODS code) or ("timebank", organisation id)


def board_referrals(raw: Raw, derived: Derived, board_id: str) -> pd.DataFrame:
    """The board's eligible referrals with their strata columns (practice = ODS code)."""
    orgs = raw.organisations.set_index("id")
    practices = orgs[(orgs["kind"] == "practice") & (orgs["board_id"] == board_id)]
    refs = derived.referrals[
        derived.referrals["practice_id"].isin(practices.index) & derived.referrals["eligible"]
    ].copy()
    refs["practice"] = [practices.loc[p, "ods_code"] for p in refs["practice_id"]]
    refs["timebank"] = refs["timebank_id"].fillna("none")
    return refs


def _in(stamps: pd.Series, start: date, end: date) -> pd.Series:
    days = stamps.dt.date
    return (days >= start) & (days <= end)


def _month(stamps: pd.Series) -> list[str]:
    return [f"{s.year:04d}-{s.month:02d}" for s in stamps]


def _first(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Per person, their first referral by `by` (then by id, so ties are decided)."""
    return frame.sort_values([by, "referral_id"]).groupby("patient_id").head(1)


def _groups(
    frames: dict[S, pd.DataFrame], stratifiers: tuple[S, ...]
) -> Iterator[tuple[S, str, pd.DataFrame]]:
    yield S.TOTAL, "", frames[S.TOTAL]
    for stratifier in stratifiers:
        frame = frames.get(stratifier, frames[S.TOTAL])
        for key, sub in frame.groupby(stratifier.value):
            yield stratifier, str(key), sub


def _figure(
    found: Figures,
    code: str,
    frames: dict[S, pd.DataFrame],
    stratifiers: tuple[S, ...],
    exact: Callable[[pd.DataFrame], Exact],
) -> None:
    for stratifier, key, sub in _groups(frames, stratifiers):
        found[(code, stratifier, key)] = exact(sub)


def _count(mask: str | None = None) -> Callable[[pd.DataFrame], Exact]:
    return lambda sub: Exact(int(len(sub) if mask is None else sub[mask].sum()))


def _values(column: str, mask: str) -> Callable[[pd.DataFrame], Exact]:
    def exact(sub: pd.DataFrame) -> Exact:
        chosen = sub[sub[mask]]
        return Exact(len(chosen), tuple(float(v) for v in chosen[column]))

    return exact


def _narrow(frame: pd.DataFrame, focus: Focus) -> pd.DataFrame:
    """A report narrowed to one practice or time bank: what its stratum of the board's report
    holds (the people whose representing referral is there; declines by that time bank)."""
    return frame if focus is None else frame[frame[focus[0]] == focus[1]]


def funnel(
    refs: pd.DataFrame, derived: Derived, start: date, end: date, focus: Focus = None
) -> Figures:
    people = _first(refs[_in(refs["received_at"], start, end)], "received_at").copy()
    people["month"] = _month(people["received_at"])
    people["is_routed"] = people["routed_at"].notna()
    people["is_accepted"] = people["accepted_at"].notna()
    people["is_exchanged"] = people["first_exchange_on"].notna()
    people["is_completed"] = people["completed_at"].notna()
    people["is_rejected"] = (people["status"] == "rejected") & people["rejected_reason"].isin(
        list(REJECTED_REASONS)
    )
    people["reason"] = people["rejected_reason"]
    people["to_accept"] = (people["accepted_at"] - people["received_at"]).dt.total_seconds() / 86400
    people["to_exchange"] = [
        (f - r.date()).days if pd.notna(f) else None
        for f, r in zip(people["first_exchange_on"], people["received_at"], strict=True)
    ]
    found: Figures = {}
    declines = derived.declines.merge(
        people[["referral_id", "practice", "month"]], on="referral_id"
    ).rename(columns={"timebank_id": "timebank"})
    people, declines = _narrow(people, focus), _narrow(declines, focus)
    frames = {S.TOTAL: people}
    masks = {
        "received": None,
        "routed": "is_routed",
        "accepted": "is_accepted",
        "first-exchange": "is_exchanged",
        "completed": "is_completed",
    }
    for code, mask in masks.items():
        _figure(found, code, frames, FUNNEL.figure(code).stratifiers, _count(mask))
    rejected = {S.TOTAL: people, S.REASON: people[people["is_rejected"]]}
    _figure(
        found, "rejected", rejected, FUNNEL.figure("rejected").stratifiers, _count("is_rejected")
    )
    _figure(found, "declined", {S.TOTAL: declines}, FUNNEL.figure("declined").stratifiers, _count())
    _figure(
        found,
        "days-to-acceptance",
        frames,
        FUNNEL.figure("received").stratifiers,
        _values("to_accept", "is_accepted"),
    )
    _figure(
        found,
        "days-to-first-exchange",
        frames,
        FUNNEL.figure("received").stratifiers,
        _values("to_exchange", "is_exchanged"),
    )
    return found


def months_of(start: date, end: date) -> list[date]:
    """The months a period covers: those whose first day is inside it."""
    firsts = pd.date_range(start.replace(day=1), end, freq="MS")
    return [d.date() for d in firsts if start <= d.date() <= end]


def coproduction(
    refs: pd.DataFrame, derived: Derived, start: date, end: date, focus: Focus = None
) -> Figures:
    months = months_of(start, end)
    rows = derived.activity[
        derived.activity["month"].isin(months) & (derived.activity["exchanges"] > 0)
    ]
    rows = rows.merge(
        refs[["referral_id", "patient_id", "received_at", "practice", "timebank"]], on="referral_id"
    )
    partners = derived.partners.merge(
        rows[["referral_id", "month", "patient_id"]], on=["referral_id", "month"]
    )
    chosen = _first(rows.drop_duplicates("referral_id"), "received_at").set_index("patient_id")
    person = rows.groupby("patient_id")[["minutes_given", "minutes_received"]].sum()
    person["reach"] = partners.groupby("patient_id")["partner_member_id"].nunique()
    person[["practice", "timebank"]] = chosen[["practice", "timebank"]]
    by_month = rows.groupby(["patient_id", "month"])[["minutes_given", "minutes_received"]].sum()
    by_month["reach"] = partners.groupby(["patient_id", "month"])["partner_member_id"].nunique()
    by_month = by_month.reset_index().merge(person[["practice", "timebank"]], on="patient_id")
    by_month["month"] = [f"{m.year:04d}-{m.month:02d}" for m in by_month["month"]]
    frames = {
        S.TOTAL: _narrow(person.reset_index(), focus),
        S.MONTH: _narrow(by_month, focus),
    }
    found: Figures = {}
    strata = COPRODUCTION.figure("active-members").stratifiers
    _figure(found, "active-members", frames, strata, _count())
    for code in ("hours-given", "hours-received", "reciprocity"):
        _figure(found, code, frames, strata, _minutes)
    _figure(
        found,
        "network-reach",
        frames,
        strata,
        lambda sub: Exact(len(sub), tuple(float(v) for v in sub["reach"])),
    )
    _giving(found, refs, start, end, focus)
    return found


def _minutes(sub: pd.DataFrame) -> Exact:
    given, received = sub["minutes_given"].sum(), sub["minutes_received"].sum()
    return Exact(len(sub), given=int(given), received=int(received))


def _giving(found: Figures, refs: pd.DataFrame, start: date, end: date, focus: Focus) -> None:
    enrolled = refs[refs["enrolled_at"].notna()]
    people = _first(enrolled[_in(enrolled["enrolled_at"], start, end)], "enrolled_at").copy()
    people["month"] = _month(people["enrolled_at"])
    people["gave"] = people["first_gift_on"].notna()
    people["to_gift"] = [
        (g - e.date()).days if pd.notna(g) else None
        for g, e in zip(people["first_gift_on"], people["enrolled_at"], strict=True)
    ]
    frames = {S.TOTAL: _narrow(people, focus)}
    strata = COPRODUCTION.figure("enrolled").stratifiers
    _figure(found, "enrolled", frames, strata, _count())
    _figure(found, "givers", frames, strata, _count("gave"))
    _figure(found, "gave-time", frames, strata, _count())
    _figure(found, "days-to-first-gift", frames, strata, _values("to_gift", "gave"))


def wellbeing(
    refs: pd.DataFrame,
    derived: Derived,
    start: date,
    end: date,
    settings: Settings,
    focus: Focus = None,
) -> Figures:
    found: Figures = {}
    scores = derived.scores[derived.scores["follow_up_at"].notna()]
    for scale, _, higher_is_better in SCALES:
        mine = scores[(scores["scale"] == scale) & _in(scores["follow_up_at"], start, end)]
        mine = mine.merge(refs, on="referral_id")
        people = mine.sort_values(["baseline_at", "referral_id"]).groupby("patient_id").head(1)
        people = people.copy()
        people["month"] = _month(people["follow_up_at"])
        people["change"] = people["follow_up"] - people["baseline"]
        threshold = settings.outcome_meaningful_change[scale]
        reached = [round(abs(c), 6) >= threshold for c in people["change"]]
        better = [(c > 0) == higher_is_better for c in people["change"]]
        people["improved"] = [r and b for r, b in zip(reached, better, strict=True)]
        people["declined"] = [r and not b for r, b in zip(reached, better, strict=True)]
        people["all"] = True
        frames = {S.TOTAL: _narrow(people, focus)}
        strata = WELLBEING.figure(f"{scale}-pairs").stratifiers
        _figure(found, f"{scale}-pairs", frames, strata, _count())
        _figure(found, f"{scale}-change", frames, strata, _values("change", "all"))
        for side in ("improved", "declined"):
            _figure(found, f"{scale}-{side}-count", frames, strata, _count(side))
            _figure(found, f"{scale}-{side}", frames, strata, _count())
    return found
