"""An independent calculation of the health board figures, for tests only: the raw data.

What SPIS holds is read as SPIS would hold it: the FHIR resources through the store's public reads
(as `Principal.spis()`, so bodies come back decrypted; Tasks with every version) and the ledger
tables, into pandas DataFrames. Written from the contract (../outcomes-contract.md), not from the
product's outcome code: nothing under `referral_service.outcomes` is imported by these modules.
Secondary-use consent is read out of the Consent here too (newest active/inactive by dateTime;
HOPERAT/PUBHLTH or the consent-flow code `secondary-use`; deny wins; the national data opt-out
on the Patient), not asked of consent.service.

`independent_rows.py` derives the per-referral facts from these frames, and
`independent_figures.py` turns those into the four Measures' figures, published under the
disclosure rules.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from fhir_adapters import codes
from fhir_adapters.measures import REJECTED_REASON_SYSTEM
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.ledger.models import Exchange, LedgerEntry, Member
from referral_service.organisations.repository import all_orgs
from referral_service.outcomes.models import ProgrammeCost
from referral_service.principal import Principal
from referral_service.store import reads

SECONDARY = frozenset({"HOPERAT", "PUBHLTH"})
FLOW_CODES = frozenset({"referral", "share-back", "secondary-use"})
FLOW_PURPOSES = frozenset({"TREAT", "COC", "HOPERAT", "PUBHLTH"})
# Score Observation code -> the scale key of fhir_adapters.measures.SCALES (DESIGN §7).
SCALE_OF_CODE = {
    (codes.SNOMED, "718466001"): "swemwbs",
    (codes.SNOMED, "718426000"): "wemwbs",
    (f"{codes.SPIS_CODESYSTEM_BASE}/wellbeing", "ons4-life-satisfaction"): "ons4-life-satisfaction",
    (f"{codes.SPIS_CODESYSTEM_BASE}/wellbeing", "ons4-worthwhile"): "ons4-worthwhile",
    (f"{codes.SPIS_CODESYSTEM_BASE}/wellbeing", "ons4-happiness"): "ons4-happy",
    (f"{codes.SPIS_CODESYSTEM_BASE}/wellbeing", "ons4-anxiety"): "ons4-anxiety",
    (f"{codes.SPIS_CODESYSTEM_BASE}/wellbeing", "ucla3-loneliness"): "ucla3",
}
COST_COLUMNS = (
    ProgrammeCost.board_id,
    ProgrammeCost.period_start,
    ProgrammeCost.period_end,
    ProgrammeCost.amount_pence,
)


@dataclass(frozen=True)
class Raw:
    organisations: pd.DataFrame  # id, kind, name, ods_code, board_id
    task_versions: pd.DataFrame  # id, tenant, version, last_updated, status, ... (every version)
    service_requests: pd.DataFrame  # id, based_on (the original, for a filler order)
    patients: pd.DataFrame  # id, tenant, opted_out
    consents: pd.DataFrame  # id, tenant, patient, status, given_at, stored_at, secondary_use
    observations: pd.DataFrame  # id, patient, scale, value, at, status, based_on
    members: pd.DataFrame  # id, org_id, referral_task_id, patient_id, enrolled_at
    exchanges: pd.DataFrame  # id, org_id, giver_id, receiver_id, minutes, performed_on, reverses_id
    entries: pd.DataFrame  # exchange_id, member_id, minutes
    costs: pd.DataFrame  # board_id, period_start, period_end, amount_pence (what boards entered)


def instant(value: object) -> pd.Timestamp | None:
    """A FHIR dateTime as a UTC timestamp; a bare date is its midnight UTC."""
    if not isinstance(value, str) or not value:
        return None
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def ref_id(value: object, rtype: str) -> str | None:
    ref = value.get("reference") if isinstance(value, dict) else None
    if isinstance(ref, str) and ref.startswith(f"{rtype}/"):
        return ref.split("/")[1]
    return None


def every(ctx: Context, rtype: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(id, tenant, body) of every stored resource of a type, page by page."""
    offset = 0
    while True:
        params = [("_count", "500"), ("_offset", str(offset)), ("_sort", "_lastUpdated")]
        page = reads.search(ctx, rtype, params, strict=True).page
        assert page is not None
        assert not page.unreadable
        for row in page.matches:
            yield row.id, row.org_id, orjson.loads(reads.present(ctx, row))
        if not page.has_next:
            return
        offset += len(page.matches)


def read_raw(session: Session, settings: Settings) -> Raw:
    ctx = Context(session, Principal.spis(), settings)
    orgs = pd.DataFrame(
        [(o.id, o.kind.value, o.name, o.ods_code, o.board_id) for o in all_orgs(session)],
        columns=["id", "kind", "name", "ods_code", "board_id"],
    )
    return Raw(
        orgs,
        _task_versions(ctx),
        _frame([_sr(i, b) for i, _, b in every(ctx, "ServiceRequest")], ["id", "based_on"]),
        _frame(
            [(i, t, _opted_out(b)) for i, t, b in every(ctx, "Patient")],
            ["id", "tenant", "opted_out"],
        ),
        _frame(
            [_consent(i, t, b) for i, t, b in every(ctx, "Consent")],
            ["id", "tenant", "patient", "status", "given_at", "stored_at", "secondary_use"],
        ),
        _frame(
            [o for i, _, b in every(ctx, "Observation") if (o := _score(i, b))],
            ["id", "patient", "scale", "value", "at", "status", "based_on", "stored"],
        ),
        *_ledger(session),
        _frame(
            [tuple(c) for c in session.execute(select(*COST_COLUMNS)).all()],
            ["board_id", "period_start", "period_end", "amount_pence"],
        ),
    )


def _frame(rows: list[Any], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)


def _task_versions(ctx: Context) -> pd.DataFrame:
    rows = []
    for rid, tenant, _ in every(ctx, "Task"):
        for version in reads.history(ctx, "Task", rid).versions:
            body = orjson.loads(version.body)
            reason = body.get("statusReason") or {}
            coded = {
                c.get("system"): c.get("code")
                for c in reason.get("coding") or []
                if isinstance(c, dict)
            }
            business = {
                c.get("code") for c in (body.get("businessStatus") or {}).get("coding") or []
            }
            rows.append(
                {
                    "id": rid,
                    "tenant": tenant,
                    "version": version.version_id,
                    "last_updated": pd.Timestamp(version.last_updated).tz_convert("UTC"),
                    "status": body["status"],
                    "routed_mark": "routed" in business,
                    "part_of": ref_id((body.get("partOf") or [{}])[0], "Task"),
                    "focus": ref_id(body.get("focus"), "ServiceRequest"),
                    "patient": ref_id(body.get("for"), "Patient"),
                    "owner": ref_id(body.get("owner"), "Organization"),
                    "authored_on": instant(body.get("authoredOn")),
                    "reason_text": reason.get("text"),
                    "decline_code": coded.get(codes.DECLINE_REASON_SYSTEM),
                    "rejected_code": coded.get(REJECTED_REASON_SYSTEM),
                }
            )
    return pd.DataFrame(rows)


def _sr(rid: str, body: dict[str, Any]) -> tuple[str, str | None]:
    based_on = [ref_id(b, "ServiceRequest") for b in body.get("basedOn") or []]
    return rid, next((b for b in based_on if b), None)


def _opted_out(patient: dict[str, Any]) -> bool:
    return any(
        e.get("url") == codes.NATIONAL_OPT_OUT_EXTENSION and e.get("valueBoolean") is True
        for e in patient.get("extension") or []
    )


def _consent(rid: str, tenant: str, body: dict[str, Any]) -> tuple[Any, ...]:
    given = instant(body.get("dateTime")) or pd.Timestamp("1900-01-01", tz="UTC")
    stored = instant(body["meta"]["lastUpdated"])
    return (
        rid,
        tenant,
        ref_id(body.get("patient"), "Patient"),
        body.get("status"),
        given,
        stored,
        _permits_secondary_use(body),
    )


def _permits_secondary_use(consent: dict[str, Any]) -> bool:
    """Active, a permitting root, a permit naming secondary use, and no deny covering it (a deny
    about particular actors does not stop the flow as a whole)."""
    root = consent.get("provision") or {}
    if consent.get("status") != "active" or root.get("type") != "permit":
        return False
    found: set[str] = set()
    _walk(root, in_scope=True, actors=False, found=found)
    return found == {"permit"}


def _walk(provision: dict[str, Any], *, in_scope: bool, actors: bool, found: set[str]) -> None:
    purposes = {
        p.get("code")
        for p in provision.get("purpose") or []
        if p.get("system") == codes.PURPOSE_OF_USE_SYSTEM
    }
    flows = {
        c.get("code")
        for concept in provision.get("code") or []
        for c in concept.get("coding") or []
        if c.get("system") == codes.CONSENT_FLOW_SYSTEM
    }
    names_it = bool(purposes & SECONDARY) or "secondary-use" in flows
    names_any = bool(purposes & FLOW_PURPOSES) or bool(flows & FLOW_CODES)
    scope = names_it or (in_scope and not names_any)
    actors = actors or bool(provision.get("actor"))
    kind = provision.get("type", "permit")
    if kind == "permit" and names_it:
        found.add("permit")
    if kind == "deny" and scope and not actors:
        found.add("deny")
    for nested in provision.get("provision") or []:
        _walk(nested, in_scope=scope, actors=actors, found=found)


def _score(rid: str, body: dict[str, Any]) -> tuple[Any, ...] | None:
    scale = next(
        (
            SCALE_OF_CODE[key]
            for c in (body.get("code") or {}).get("coding") or []
            if (key := (c.get("system"), c.get("code"))) in SCALE_OF_CODE
        ),
        None,
    )
    if scale is None:
        return None
    based_on = [ref_id(b, "ServiceRequest") for b in body.get("basedOn") or []]
    return (
        rid,
        ref_id(body.get("subject"), "Patient"),
        scale,
        float(body["valueQuantity"]["value"]),
        instant(body.get("effectiveDateTime")),
        body.get("status"),
        next((b for b in based_on if b), None),
        instant(body["meta"]["lastUpdated"]),
    )


def _ledger(session: Session) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    members = session.execute(
        select(
            Member.id, Member.org_id, Member.referral_task_id, Member.patient_id, Member.enrolled_at
        )
    ).all()
    exchanges = session.execute(
        select(
            Exchange.id,
            Exchange.org_id,
            Exchange.giver_id,
            Exchange.receiver_id,
            Exchange.minutes,
            Exchange.performed_on,
            Exchange.reverses_id,
        )
    ).all()
    entries = session.execute(
        select(LedgerEntry.exchange_id, LedgerEntry.member_id, LedgerEntry.minutes)
    ).all()
    members_frame = _frame(
        [tuple(m) for m in members],
        ["id", "org_id", "referral_task_id", "patient_id", "enrolled_at"],
    )
    members_frame["enrolled_at"] = pd.to_datetime(members_frame["enrolled_at"], utc=True)
    return (
        members_frame,
        _frame(
            [tuple(e) for e in exchanges],
            ["id", "org_id", "giver_id", "receiver_id", "minutes", "performed_on", "reverses_id"],
        ),
        _frame([tuple(e) for e in entries], ["exchange_id", "member_id", "minutes"]),
    )
