"""An independent calculation of the health board figures, for tests only: per referral.

From the raw frames (`independent.read_raw`), what the contract's cohort rules need for each
referral, worked out with pandas. Where the contract leaves a choice open, the rule is the one the
product documents (refresh.py's docstring, docs/architecture.md "Outcome rows"), computed here
from the raw data, not with the product's code:

- a referral is a practice's Task without `partOf`, at the Patient's own practice, neither draft
  nor entered in error; received = its authoredOn (else when it was first stored);
- routed = when its first time bank Task was stored; accepted = the first version of the referral
  Task or of any of its time bank Tasks in a taken-up status (accepted, in-progress, on-hold,
  completed, failed); completed = the first version of the referral Task that is `completed`;
  rejected = `rejected` now, by its routing-rejection code ("no-time-bank" without one);
- its time bank: the owner of the time bank Task taken up first, else of the last one stored;
- declines: time bank Tasks `rejected` now, by their decline-reason code ("unknown" without one),
  at the first version that was `rejected`;
- the member enrolled from one of its time bank Tasks in that time bank's ledger (the earliest),
  their exchanges net of reversals (a reversal and the exchange it reverses both left out): first
  exchange, first gift, per month minutes given and received and distinct partners;
- scores: final/amended/corrected score Observations of the patient `basedOn` the referral's
  ServiceRequest or a filler order of it; baseline = the first within the window of enrolment,
  follow-up = the last 8 to 26 weeks (settings) after the baseline;
- eligible = the governing Consent (the practice's newest active or inactive one for the patient,
  by dateTime, then by when it was stored) permits secondary use, and no national opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

from fhir_adapters.codes import DECLINE_REASONS
from fhir_adapters.measures import REJECTED_REASONS
from referral_service.config import Settings
from tests.outcomes.independent import Raw

SCORE_STATUSES = ("final", "amended", "corrected")
TAKEN_UP = ("accepted", "in-progress", "on-hold", "completed", "failed")
NOT_REFERRALS = ("draft", "entered-in-error")
DECLINE_CODES = frozenset(DECLINE_REASONS)


@dataclass(frozen=True)
class Derived:
    referrals: pd.DataFrame  # the contract's outcome_referral columns, one row per referral
    declines: pd.DataFrame  # referral_id, task_id, timebank_id, reason, declined_at
    activity: pd.DataFrame  # referral_id, month, minutes_given, minutes_received, exchanges
    partners: pd.DataFrame  # referral_id, month, partner_member_id
    scores: pd.DataFrame  # referral_id, scale, baseline, baseline_at, follow_up, follow_up_at


def derive(raw: Raw, settings: Settings) -> Derived:
    refs, kids, versions = _tasks(raw)
    refs["received_at"] = refs["authored_on"].fillna(refs["stored_at"])
    refs["routed_at"] = kids.groupby("part_of")["stored_at"].min()
    refs["accepted_at"] = pd.concat(
        [refs["taken_up_at"], kids.groupby("part_of")["taken_up_at"].min()], axis=1
    ).min(axis=1)
    completed = versions[versions["status"] == "completed"].groupby("id")["last_updated"].min()
    refs["completed_at"] = completed
    refs["rejected_reason"] = [
        (code if code in REJECTED_REASONS else "no-time-bank") if status == "rejected" else None
        for status, code in zip(refs["status"], refs["rejected_code"], strict=True)
    ]
    refs["timebank_id"] = _timebanks(kids).reindex(refs.index)
    refs = refs.rename(columns={"tenant": "practice_id", "patient": "patient_id"})
    refs["sr_id"] = refs["focus"]
    refs["referral_id"] = refs.index
    members = _members(raw, kids)
    sides = _sides(_net_exchanges(raw), members)
    refs = refs.join(members.set_index("referral_id")[["member_id", "enrolled_at"]])
    refs["first_exchange_on"] = sides.groupby("referral_id")["performed_on"].min()
    gifts = sides[sides["given"] > 0]
    refs["first_gift_on"] = gifts.groupby("referral_id")["performed_on"].min()
    refs["eligible"] = _eligible(raw, refs)
    referrals = refs[COLUMNS].reset_index(drop=True)
    return Derived(
        referrals,
        _declines(versions, kids),
        _activity(sides),
        sides[["referral_id", "month", "partner"]]
        .drop_duplicates()
        .rename(columns={"partner": "partner_member_id"})
        .reset_index(drop=True),
        _scores(raw, referrals, kids, settings),
    )


COLUMNS = ["referral_id", "practice_id", "patient_id", "sr_id", "timebank_id", "status",
           "received_at", "routed_at", "accepted_at", "first_exchange_on", "completed_at",
           "rejected_reason", "member_id", "enrolled_at", "first_gift_on", "eligible"]  # fmt: skip


def _tasks(raw: Raw) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The referral Tasks and their time bank Tasks as they are now (with when each was first
    stored and first taken up), and every version of both."""
    tasks = raw.task_versions.sort_values("version")
    current = tasks.groupby("id").tail(1).set_index("id")
    current["stored_at"] = tasks.groupby("id")["last_updated"].min()
    current["taken_up_at"] = (
        tasks[tasks["status"].isin(TAKEN_UP)].groupby("id")["last_updated"].min()
    )
    home = raw.patients.set_index("id")["tenant"]
    refs = current[
        current["part_of"].isna()
        & ~current["status"].isin(NOT_REFERRALS)
        & (current["tenant"] == current["patient"].map(home))
    ].copy()
    kids = current[current["part_of"].isin(refs.index)].copy()
    versions = tasks[tasks["id"].isin(refs.index) | tasks["id"].isin(kids.index)]
    return refs, kids, versions


def _timebanks(kids: pd.DataFrame) -> pd.Series:
    """Per referral: the owner of the time bank Task taken up first, else of the last stored."""
    kids = kids.assign(task_id=kids.index)
    taken = kids[kids["taken_up_at"].notna()].sort_values(["taken_up_at", "task_id"])
    last = kids.sort_values(["stored_at", "task_id"])
    first_taken = taken.groupby("part_of")["owner"].first()
    return first_taken.combine_first(last.groupby("part_of")["owner"].last())


def _declines(versions: pd.DataFrame, kids: pd.DataFrame) -> pd.DataFrame:
    rejected = kids[kids["status"] == "rejected"]
    when = versions[versions["status"] == "rejected"].groupby("id")["last_updated"].min()
    reasons = [c if isinstance(c, str) and c in DECLINE_CODES else "unknown"
               for c in rejected["decline_code"]]  # fmt: skip
    return pd.DataFrame(
        {
            "referral_id": rejected["part_of"],
            "task_id": rejected.index,
            "timebank_id": rejected["owner"],
            "reason": reasons,
            "declined_at": when.reindex(rejected.index),
        }
    ).reset_index(drop=True)


def _members(raw: Raw, kids: pd.DataFrame) -> pd.DataFrame:
    """Referred members and the referral each was enrolled from: through one of its time bank
    Tasks, in that time bank's own ledger; the earliest enrolment should there be more."""
    referred = raw.members[raw.members["referral_task_id"].isin(kids.index)].copy()
    referred["referral_id"] = referred["referral_task_id"].map(kids["part_of"])
    owner = referred["referral_task_id"].map(kids["owner"])
    referred = referred[referred["org_id"] == owner].sort_values(["enrolled_at", "id"])
    referred = referred.drop_duplicates("referral_id")
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


def _scores(
    raw: Raw, referrals: pd.DataFrame, kids: pd.DataFrame, settings: Settings
) -> pd.DataFrame:
    window = timedelta(days=settings.outcome_baseline_window_days)
    low = timedelta(weeks=settings.outcome_follow_up_min_weeks)
    high = timedelta(weeks=settings.outcome_follow_up_max_weeks)
    # The ServiceRequests a score may be based on: the referral's own, and its filler orders.
    requests = pd.concat(
        [
            pd.DataFrame({"request": referrals["sr_id"], "referral_id": referrals["referral_id"]}),
            pd.DataFrame({"request": kids["focus"], "referral_id": kids["part_of"]}),
        ]
    ).dropna()
    obs = raw.observations[raw.observations["status"].isin(SCORE_STATUSES)]
    obs = obs.merge(requests, left_on="based_on", right_on="request")
    obs = obs.drop_duplicates(["id", "referral_id"])
    enrolled = referrals[referrals["enrolled_at"].notna()]
    joined = obs.merge(
        enrolled, left_on=["referral_id", "patient"], right_on=["referral_id", "patient_id"]
    )
    rows = []
    for (referral_id, scale), group in joined.sort_values(["at", "stored", "id"]).groupby(
        ["referral_id", "scale"]
    ):
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
