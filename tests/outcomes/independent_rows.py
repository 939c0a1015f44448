"""An independent calculation of the health board figures, for tests only: per referral.

From the raw frames (`independent.read_raw`), what the contract's cohort rules need for each
referral (the practice's referral Task), worked out with pandas:

- received = the referral Task's authoredOn; routed = when its first time bank Task was written;
  accepted / completed = the first version of the referral Task with that status (its
  `meta.lastUpdated`); rejected = the referral Task `rejected` now, its reason read from the text
  routing writes (no-address, consent-denies, else no-time-bank);
- the time bank: the one whose Task was ever `accepted`, else the last one routed to;
- declines: time bank Tasks `rejected` now, by their decline-reason code ("unknown" without one);
- the member enrolled from it (ledger_member.referral_task_id is the time bank Task), their
  exchanges net of reversals (a reversal and the exchange it reverses both left out): first
  exchange, first gift, per month minutes given and received and distinct partners;
- scores: final score Observations of the patient `basedOn` the referral's ServiceRequest (or a
  filler order of it); baseline = the first within the window of enrolment, follow-up = the last
  8 to 26 weeks (settings) after the baseline;
- eligible = the governing Consent (the practice's newest active or inactive one for the patient,
  by dateTime, then by when it was stored) permits secondary use, and no national opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from referral_service.config import Settings
from tests.outcomes.independent import Raw

SCORE_STATUSES = ("final", "amended", "corrected")


@dataclass(frozen=True)
class Derived:
    referrals: pd.DataFrame  # the contract's outcome_referral columns, one row per referral
    declines: pd.DataFrame  # referral_id, task_id, timebank_id, reason, declined_at
    activity: pd.DataFrame  # referral_id, month, minutes_given, minutes_received, exchanges
    partners: pd.DataFrame  # referral_id, month, partner_member_id
    scores: pd.DataFrame  # referral_id, scale, baseline, baseline_at, follow_up, follow_up_at


def derive(raw: Raw, settings: Settings) -> Derived:
    tasks = raw.task_versions
    current = tasks.sort_values("version").groupby("id").tail(1).set_index("id")
    refs = current[current["part_of"].isna()].copy()
    kids = current[current["part_of"].notna()].copy()
    versions = tasks[tasks["part_of"].isna()]
    refs["received_at"] = refs["authored_on"]
    refs["routed_at"] = kids.groupby("part_of")["authored_on"].min()
    for status in ("accepted", "completed"):
        firsts = versions[versions["status"] == status].groupby("id")["last_updated"].min()
        refs[f"{status}_at"] = firsts
    refs["rejected_reason"] = [
        _rejected_reason(text) if status == "rejected" else None
        for status, text in zip(refs["status"], refs["reason_text"], strict=True)
    ]
    refs["timebank_id"] = _timebanks(tasks, kids).reindex(refs.index)
    refs = refs.rename(columns={"tenant": "practice_id", "patient": "patient_id"})
    refs["sr_id"] = refs["focus"]
    refs["referral_id"] = refs.index
    members = _members(raw, kids)
    valid = _net_exchanges(raw)
    sides = _sides(valid, members)
    refs = refs.join(members.set_index("referral_id")[["member_id", "enrolled_at"]])
    refs["first_exchange_on"] = sides.groupby("referral_id")["performed_on"].min()
    gifts = sides[sides["given"] > 0]
    refs["first_gift_on"] = gifts.groupby("referral_id")["performed_on"].min()
    refs["eligible"] = _eligible(raw, refs)
    columns = [
        "referral_id",
        "practice_id",
        "patient_id",
        "sr_id",
        "timebank_id",
        "status",
        "received_at",
        "routed_at",
        "accepted_at",
        "first_exchange_on",
        "completed_at",
        "rejected_reason",
        "member_id",
        "enrolled_at",
        "first_gift_on",
        "eligible",
    ]
    referrals = refs[columns].reset_index(drop=True)
    return Derived(
        referrals,
        _declines(tasks, kids),
        _activity(sides),
        sides[["referral_id", "month", "partner"]]
        .drop_duplicates()
        .rename(columns={"partner": "partner_member_id"})
        .reset_index(drop=True),
        _scores(raw, referrals, settings),
    )


def _rejected_reason(text: object) -> str:
    words = str(text or "")
    if words.startswith("SPIS could not read the patient's home postcode"):
        return "no-address"
    if "Consent does not permit" in words:
        return "consent-denies"
    return "no-time-bank"


def _timebanks(tasks: pd.DataFrame, kids: pd.DataFrame) -> pd.Series:
    """Per referral: the owner of a time bank Task ever accepted, else of the last one routed."""
    ever = set(tasks[(tasks["status"] == "accepted") & tasks["part_of"].notna()]["id"])
    ordered = kids.assign(took=kids.index.isin(ever)).sort_values(["took", "authored_on"])
    return ordered.groupby("part_of")["owner"].last()


def _declines(tasks: pd.DataFrame, kids: pd.DataFrame) -> pd.DataFrame:
    rejected = kids[kids["status"] == "rejected"]
    when = tasks[tasks["status"] == "rejected"].groupby("id")["last_updated"].min()
    return pd.DataFrame(
        {
            "referral_id": rejected["part_of"],
            "task_id": rejected.index,
            "timebank_id": rejected["owner"],
            "reason": rejected["decline_code"].fillna("unknown"),
            "declined_at": when.reindex(rejected.index),
        }
    ).reset_index(drop=True)


def _members(raw: Raw, kids: pd.DataFrame) -> pd.DataFrame:
    """Referred members and the referral Task each was enrolled from (through its time bank Task)."""
    referred = raw.members[raw.members["referral_task_id"].notna()].copy()
    parent = kids["part_of"]
    referred["referral_id"] = [parent.get(task, task) for task in referred["referral_task_id"]]
    return referred.rename(columns={"id": "member_id"})[
        ["member_id", "referral_id", "org_id", "enrolled_at"]
    ]


def _net_exchanges(raw: Raw) -> pd.DataFrame:
    """Exchanges that stand: neither a reversal nor reversed. Checked against the entries: each
    member's balance from the exchanges that stand equals the sum of their ledger entries."""
    ex = raw.exchanges
    reversed_ids = set(ex["reverses_id"].dropna())
    valid = ex[ex["reverses_id"].isna() & ~ex["id"].isin(reversed_ids)]
    balance = (
        valid.groupby("giver_id")["minutes"]
        .sum()
        .sub(valid.groupby("receiver_id")["minutes"].sum(), fill_value=0)
    )
    entries = raw.entries.groupby("member_id")["minutes"].sum()
    both = pd.concat([balance.rename("ex"), entries.rename("en")], axis=1).fillna(0)
    assert (both["ex"] == both["en"]).all(), "ledger entries disagree with the exchanges"
    return valid


def _sides(valid: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """One row per referred member's side of an exchange that stands."""
    gave = valid.assign(
        member_id=valid["giver_id"],
        partner=valid["receiver_id"],
        given=valid["minutes"],
        received=0,
    )
    got = valid.assign(
        member_id=valid["receiver_id"],
        partner=valid["giver_id"],
        given=0,
        received=valid["minutes"],
    )
    sides = pd.concat([gave, got]).merge(members[["member_id", "referral_id"]], on="member_id")
    sides["month"] = [d.replace(day=1) for d in sides["performed_on"]]
    return sides[
        ["referral_id", "member_id", "partner", "given", "received", "performed_on", "month"]
    ].reset_index(drop=True)


def _activity(sides: pd.DataFrame) -> pd.DataFrame:
    grouped = sides.groupby(["referral_id", "month"])
    return pd.DataFrame(
        {
            "minutes_given": grouped["given"].sum(),
            "minutes_received": grouped["received"].sum(),
            "exchanges": grouped.size(),
        }
    ).reset_index()


def _eligible(raw: Raw, refs: pd.DataFrame) -> pd.Series:
    consents = raw.consents[raw.consents["status"].isin(["active", "inactive"])]
    newest = (
        consents.sort_values(["given_at", "stored_at"])
        .groupby(["tenant", "patient"])
        .tail(1)
        .set_index(["tenant", "patient"])["secondary_use"]
    )
    opted = raw.patients.set_index("id")["opted_out"]
    return pd.Series(
        [
            bool(newest.get((practice, patient), False)) and not bool(opted.get(patient, False))
            for practice, patient in zip(refs["practice_id"], refs["patient_id"], strict=True)
        ],
        index=refs.index,
    )


def _scores(raw: Raw, referrals: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    window = timedelta(days=settings.outcome_baseline_window_days)
    low = timedelta(weeks=settings.outcome_follow_up_min_weeks)
    high = timedelta(weeks=settings.outcome_follow_up_max_weeks)
    srs = raw.service_requests
    original = {i: b for i, b in zip(srs["id"], srs["based_on"], strict=True) if isinstance(b, str)}
    obs = raw.observations[raw.observations["status"].isin(SCORE_STATUSES)].copy()
    obs["sr_id"] = [original.get(b) or b for b in obs["based_on"]]
    enrolled = referrals[referrals["enrolled_at"].notna()]
    joined = obs.merge(enrolled, left_on=["sr_id", "patient"], right_on=["sr_id", "patient_id"])
    rows = []
    for (referral_id, scale), group in joined.sort_values("at").groupby(["referral_id", "scale"]):
        enrolled_at = group["enrolled_at"].iloc[0]
        near = group[(group["at"] - enrolled_at).abs() <= window]
        if near.empty:
            continue
        base = near.iloc[0]
        later = group[(group["at"] >= base["at"] + low) & (group["at"] <= base["at"] + high)]
        follow = later.iloc[-1] if not later.empty else None
        rows.append(
            (
                referral_id,
                scale,
                base["value"],
                base["at"],
                None if follow is None else follow["value"],
                None if follow is None else follow["at"],
            )
        )
    return pd.DataFrame(
        rows,
        columns=["referral_id", "scale", "baseline", "baseline_at", "follow_up", "follow_up_at"],
    )
