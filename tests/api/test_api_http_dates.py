"""`Last-Modified` is RFC 9110's IMF-fixdate, written as the standard library writes it, from a
UTC time only; a read's header names its `meta.lastUpdated` to the second."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime, parsedate_to_datetime

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from referral_service.fhir.bundles import http_date
from referral_service.store.service import Version
from tests.fixtures.referrals import Referral


def _version(at: datetime) -> Version:
    return Version("Patient", "p", 1, at, b"{}")


@given(st.datetimes(min_value=datetime(1, 1, 1), timezones=st.just(UTC)))
def test_the_date_is_the_standard_librarys(at: datetime) -> None:
    assert http_date(_version(at)) == format_datetime(at, usegmt=True)


def test_a_time_not_in_utc_is_refused() -> None:
    with pytest.raises(ValueError, match="UTC"):
        http_date(_version(datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=1)))))


def test_a_reads_last_modified_is_its_last_updated(
    client: TestClient, referral: Referral, practice_headers: dict[str, str]
) -> None:
    answer = client.get(f"/fhir/{referral.service_request}", headers=practice_headers)
    updated = datetime.fromisoformat(answer.json()["meta"]["lastUpdated"])
    assert parsedate_to_datetime(answer.headers["Last-Modified"]) == updated.replace(microsecond=0)
