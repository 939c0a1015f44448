"""Registering organisations (from the CLI); the rules about ODS codes live here."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from fhir_adapters.organization import organization
from referral_service.errors import BusinessRuleViolation, Invalid, NotFound
from referral_service.kit.ids import new_id
from referral_service.organisations import repository
from referral_service.organisations.models import Organisation, OrgKind

# ODS organisation codes: 3 to 6 upper-case letters and digits (e.g. F84001, X26, QKK).
ODS_CODE = re.compile(r"^[A-Z0-9]{3,6}$")


def register(
    session: Session,
    kind: OrgKind,
    name: str,
    ods_code: str | None,
    board_id: str | None = None,
) -> Organisation:
    name = name.strip()
    if kind is OrgKind.PLATFORM:
        raise Invalid("SPIS itself is not a registrable organisation")
    if not name:
        raise Invalid("An organisation needs a name")
    if ods_code is not None:
        ods_code = ods_code.strip().upper()
        if not ODS_CODE.match(ods_code):
            raise Invalid("ODS code must be 3 to 6 letters or digits")
        if repository.by_ods(session, ods_code) is not None:
            raise BusinessRuleViolation("An organisation with this ODS code is already registered")
    elif kind is OrgKind.PRACTICE:
        raise Invalid("A GP practice must be registered with its ODS code (--ods)")
    org = Organisation(id=new_id(), kind=kind, name=name, ods_code=ods_code)
    if board_id is not None:
        _check_board(session, kind, board_id)
        org.board_id = board_id
    return repository.add(session, org)


# Whose area an organisation is in: practices and time banks have a board, boards do not.
IN_A_BOARD_AREA = frozenset({OrgKind.PRACTICE, OrgKind.TIMEBANK})


def set_board(session: Session, org_id: str, board_id: str | None) -> Organisation:
    """Place a practice or a time bank in a health board's area (None: in none). The board's
    reports cover its practices' referrals from the next report on: reports read the area when
    they run, so nothing needs rebuilding."""
    org = repository.get_for_update(session, org_id)
    if org is None:
        raise NotFound("No organisation has this id")
    if board_id is not None:
        _check_board(session, org.kind, board_id)
    org.board_id = board_id
    session.flush()
    return org


def _check_board(session: Session, kind: OrgKind, board_id: str) -> None:
    if kind not in IN_A_BOARD_AREA:
        raise Invalid("Only a practice or a time bank is placed in a health board's area")
    board = repository.get(session, board_id)
    if board is None or board.kind is not OrgKind.HEALTHBOARD:
        raise Invalid("--board must be the id of a registered health board (spis org list)")


SPIS_ORG = ("spis", "SPIS social prescribing integration service", "platform", None)


def as_fhir(session: Session, org_id: str) -> dict[str, Any]:
    """Organisations are a public directory to every authenticated system: no patient data."""
    if org_id == SPIS_ORG[0]:
        return organization(*SPIS_ORG)
    org = repository.get(session, org_id)
    if org is None:
        raise NotFound(f"Organization/{org_id} is not known")
    return organization(org.id, org.name, org.kind.value, org.ods_code, org.board_id)


def search_fhir(session: Session, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    orgs = repository.all_orgs(session)
    for name, value in params:
        if name == "_id":
            orgs = [o for o in orgs if o.id in value.split(",")]
        elif name == "identifier":
            code = value.rpartition("|")[2].upper()
            orgs = [o for o in orgs if o.ods_code == code]
    return [organization(o.id, o.name, o.kind.value, o.ods_code, o.board_id) for o in orgs]
