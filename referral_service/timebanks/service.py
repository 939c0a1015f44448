"""The time bank directory: what a time bank covers and offers, and how many referrals it takes."""

from __future__ import annotations

from sqlalchemy.orm import Session

from fhir_adapters.codes import OFFER_CATEGORIES
from fhir_adapters.summaries import DISTRICT
from referral_service.errors import Invalid
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.timebanks import repository
from referral_service.timebanks.models import TimeBankProfile

OFFERS = frozenset(OFFER_CATEGORIES)


def set_profile(
    session: Session,
    org_id: str,
    catchment: list[str],
    offers: list[str],
    capacity: int,
    contact: str | None = None,
) -> TimeBankProfile:
    org = organisations.get(session, org_id)
    if org is None or org.kind is not OrgKind.TIMEBANK:
        raise Invalid("A directory profile belongs to a registered time bank")
    districts = sorted({d.strip().upper() for d in catchment if d.strip()})
    bad = [d for d in districts if not DISTRICT.match(d)]
    if not districts or bad:
        raise Invalid("Catchment must be postcode districts such as SE6 or SE13")
    unknown = sorted(set(offers) - OFFERS)
    if not offers or unknown:
        raise Invalid(f"Offers must be some of: {', '.join(sorted(OFFERS))}")
    if capacity < 0:
        raise Invalid("Capacity is a number of open referral slots, 0 or more")
    profile = repository.get(session, org_id) or TimeBankProfile(org_id=org_id)
    profile.catchment, profile.offers = " ".join(districts), " ".join(sorted(set(offers)))
    profile.capacity, profile.contact = capacity, contact
    repository.add(session, profile)
    return profile
