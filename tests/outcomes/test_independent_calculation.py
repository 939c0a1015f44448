"""The independent calculation checked on its own, before anything is compared with it:

- its reading of secondary-use consent agrees with SPIS's one decision point (consent/rules.py) on
  many generated Consents (nested permits and denies, purposes, flow codes, actors, statuses): the
  figures' eligibility is read from the Consent here, so it must mean what SPIS means;
- its disclosure control gives, on hand-worked rows, the values the published rules give.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from fhir_adapters import codes
from fhir_adapters.measures import FUNNEL, Stratifier, Suppression
from referral_service.consent.rules import Purpose, permits
from tests.outcomes.independent import _permits_secondary_use
from tests.outcomes.independent_compare import row_differences
from tests.outcomes.independent_disclosure import publish, rounded
from tests.outcomes.independent_figures import Exact

S = Stratifier
PURPOSES = ("TREAT", "COC", "HOPERAT", "PUBHLTH", "ETREAT")
FLOWS = ("referral", "share-back", "secondary-use", "research")


def _provision(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    purpose = st.sampled_from(PURPOSES).map(
        lambda c: {"system": codes.PURPOSE_OF_USE_SYSTEM, "code": c}
    )
    flow = st.sampled_from(FLOWS).map(
        lambda c: {"coding": [{"system": codes.CONSENT_FLOW_SYSTEM, "code": c}]}
    )
    actor = st.sampled_from(("Organization/a", "Organization/b")).map(
        lambda r: {"reference": {"reference": r}}
    )
    fields: dict[str, st.SearchStrategy[Any]] = {
        "type": st.sampled_from(("permit", "deny")),
        "purpose": st.lists(purpose, max_size=2),
        "code": st.lists(flow, max_size=2),
        "actor": st.lists(actor, max_size=1),
    }
    if depth:
        fields["provision"] = st.lists(_provision(depth - 1), max_size=3)
    return st.fixed_dictionaries({}, optional=fields)


CONSENTS = st.fixed_dictionaries(
    {
        "resourceType": st.just("Consent"),
        "status": st.sampled_from(("active", "active", "active", "inactive", "draft")),
        "provision": st.tuples(_provision(3), st.lists(_provision(2), max_size=3)).map(
            lambda p: {**p[0], "type": "permit", "provision": p[1]}
        ),
    }
)


@settings(max_examples=400, deadline=None)
@given(CONSENTS)
def test_the_consent_reading_agrees_with_spis_decision_point(consent: dict[str, Any]) -> None:
    permitted = permits(consent, Purpose.SECONDARY_USE)
    event(f"permitted={permitted}")
    assert _permits_secondary_use(consent) == permitted


def test_the_consent_reading_on_the_shapes_gp_systems_send() -> None:
    root = {"type": "permit", "purpose": [{"system": codes.PURPOSE_OF_USE_SYSTEM, "code": "TREAT"}]}
    secondary = {"type": "permit", "purpose": [{"system": codes.PURPOSE_OF_USE_SYSTEM,
                                                "code": "PUBHLTH"}]}  # fmt: skip
    by_code = {"type": "permit", "code": [{"coding": [{"system": codes.CONSENT_FLOW_SYSTEM,
                                                       "code": "secondary-use"}]}]}  # fmt: skip
    deny_all = {"type": "deny"}
    for provision, expected in (
        ({**root, "provision": [secondary]}, True),
        ({**root, "provision": [by_code]}, True),
        ({**root, "provision": [{**secondary, "provision": [deny_all]}]}, False),
        ({**root, "provision": [secondary, deny_all]}, True),  # that deny is about TREAT only
        (root, False),
    ):
        consent = {"status": "active", "provision": provision}
        assert _permits_secondary_use(consent) is expected
        assert _permits_secondary_use({**consent, "status": "inactive"}) is False


@pytest.mark.parametrize(("count", "published"), [(0, 0), (8, 10), (12, 10), (13, 15), (22, 20)])
def test_counts_are_rounded_to_five(count: int, published: int) -> None:
    assert rounded(count) == published


def _row(figure: str, values: dict[str, int], total: int) -> dict[Any, Exact]:
    cells = {(figure, S.TOTAL, ""): Exact(total)}
    cells |= {(figure, S.PRACTICE, key): Exact(v) for key, v in values.items()}
    return cells


def test_one_small_stratum_takes_the_smallest_shown_one_with_it() -> None:
    found = _row("received", {"A": 3, "B": 9, "C": 20, "D": 0}, 32)
    out = publish(FUNNEL, found)
    assert out[("received", S.TOTAL, "")].value == 30
    assert out[("received", S.PRACTICE, "A")].suppressed is Suppression.SMALL_COUNT
    assert out[
        ("received", S.PRACTICE, "B")
    ].protecting  # hidden beside the small one, marked alike
    assert out[("received", S.PRACTICE, "C")].value == 20
    assert out[("received", S.PRACTICE, "D")].value == 0  # zero is never hidden


def test_two_ones_are_not_enough_and_two_small_ones_are() -> None:
    ones = publish(FUNNEL, _row("received", {"A": 1, "B": 1, "C": 10, "D": 14}, 26))
    assert ones[
        ("received", S.PRACTICE, "C")
    ].protecting  # hidden beside the small one, marked alike
    assert ones[("received", S.PRACTICE, "D")].value == 15
    small = publish(FUNNEL, _row("received", {"A": 2, "B": 1, "C": 10}, 13))
    assert small[("received", S.PRACTICE, "C")].value == 10


def test_a_statistic_follows_its_base_and_needs_eight_people() -> None:
    found = _row("accepted", {"A": 8, "B": 3}, 11) | _row("received", {"A": 8, "B": 3}, 11)
    days = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
    found[("days-to-acceptance", S.TOTAL, "")] = Exact(11, (*days, 9.0, 10.0, 11.0))
    found[("days-to-acceptance", S.PRACTICE, "A")] = Exact(8, days)
    found[("days-to-acceptance", S.PRACTICE, "B")] = Exact(3, (9.0, 10.0, 11.0))
    out = publish(FUNNEL, found)
    total = out[("days-to-acceptance", S.TOTAL, "")]
    assert (total.value, total.low, total.high, total.n) == (6.0, 3.5, 8.5, 10)
    # A's base count is hidden as B's secondary: its median is hidden with it
    assert out[
        ("accepted", S.PRACTICE, "A")
    ].protecting  # hidden beside the small one, marked alike
    assert out[("days-to-acceptance", S.PRACTICE, "A")].suppressed is Suppression.SMALL_N
    assert out[("days-to-acceptance", S.PRACTICE, "B")].suppressed is Suppression.SMALL_N


def test_row_comparison_finds_a_changed_time_a_changed_date_and_a_missing_row() -> None:
    when = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    theirs = pd.DataFrame(
        {"referral_id": ["a", "b"], "received_at": [when.replace(tzinfo=None), when],
         "first_exchange_on": [date(2026, 3, 4), None], "eligible": [True, False]}
    )  # fmt: skip
    same = theirs.assign(received_at=pd.to_datetime([when, when], utc=True))
    keys = {"referrals": ["referral_id"]}
    assert row_differences({"referrals": same}, {"referrals": theirs}, keys) == []
    moved = same.assign(received_at=same["received_at"] + pd.Timedelta(milliseconds=1))
    later = same.assign(first_exchange_on=[date(2026, 3, 5), None])
    for changed, column in ((moved, "received_at"), (later, "first_exchange_on")):
        found = row_differences({"referrals": changed}, {"referrals": theirs}, keys)
        assert len(found) >= 1
        assert all(column in f for f in found)
    short = row_differences({"referrals": same.iloc[:1]}, {"referrals": theirs}, keys)
    assert short == ["referrals b: only in the product"]
