"""The consent rules: three flows, three permits, deny by default, deny wins, the national opt-out."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from referral_service.consent.rules import NATIONAL_OPT_OUT, Purpose, opted_out, permits

CONSENT: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "consent.json").read_text()
)


def test_the_sample_consent_permits_all_three_flows() -> None:
    assert all(permits(CONSENT, purpose) for purpose in Purpose)


@pytest.mark.parametrize(
    "status", ["inactive", "draft", "proposed", "rejected", "entered-in-error"]
)
def test_only_an_active_consent_permits(status: str) -> None:
    assert not any(permits({**CONSENT, "status": status}, purpose) for purpose in Purpose)


def test_a_flow_not_named_is_denied() -> None:
    only_referral = copy.deepcopy(CONSENT)
    only_referral["provision"].pop("provision")
    assert permits(only_referral, Purpose.REFERRAL)
    assert not permits(only_referral, Purpose.SHARE_BACK)
    assert not permits(only_referral, Purpose.SECONDARY_USE)


def test_deny_wins() -> None:
    denied = copy.deepcopy(CONSENT)
    denied["provision"]["provision"].append(
        {
            "type": "deny",
            "purpose": [
                {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "COC"}
            ],
        }
    )
    assert not permits(denied, Purpose.SHARE_BACK)
    assert permits(denied, Purpose.REFERRAL)


def test_a_root_deny_denies_everything() -> None:
    assert not any(
        permits({**CONSENT, "provision": {**CONSENT["provision"], "type": "deny"}}, p)
        for p in Purpose
    )


def test_national_opt_out_flag() -> None:
    assert opted_out({"extension": [{"url": NATIONAL_OPT_OUT, "valueBoolean": True}]})
    assert not opted_out({"extension": [{"url": NATIONAL_OPT_OUT, "valueBoolean": False}]})
    assert not opted_out({})
