"""The immediate exclusion: a person whose Consent no longer permits secondary use, or who has
set the national data opt-out, leaves every later report in the same transaction as the change,
before any job runs. Their outcome rows stay (the figures of a re-permitted person come back
without a rebuild) but are marked ineligible, and reports count eligible rows only.

Called by `referrals.lifecycle` after every Consent written for an existing patient and every
Patient updated. Permission given again is not applied here: the Consent or Patient write
enqueues a refresh (`triggers.py`), which asks `consent.service.decide` again.
"""

from __future__ import annotations

from typing import Any

from referral_service.consent.rules import Purpose, opted_out
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.kit.refs import Ref
from referral_service.outcomes import repository


def exclude(system: Context, practice_id: str, patient_id: str) -> int:
    """Mark the patient's referrals at this practice ineligible; how many rows changed. Waits
    for a refresh of the same patient still running, so that its rows are the ones marked."""
    repository.lock_patient(system.session, patient_id)
    return repository.set_ineligible(system.session, practice_id, patient_id)


def after_consent_change(system: Context, practice_id: str, patient_ref: str) -> None:
    """A Consent of the practice's was written for `patient_ref`: exclude the patient at once
    unless the governing Consent still permits secondary use. A patient with no outcome rows
    yet has nothing to exclude (and no decision is asked or audited)."""
    patient = Ref.of({"reference": patient_ref})
    if patient is None or patient.rtype != "Patient":
        return
    repository.lock_patient(system.session, patient.id)
    if not repository.has_rows(system.session, practice_id, patient.id):
        return
    if not decide(system, practice_id, patient_ref, Purpose.SECONDARY_USE).permitted:
        repository.set_ineligible(system.session, practice_id, patient.id)


def after_patient_update(system: Context, practice_id: str, patient: dict[str, Any]) -> None:
    """A Patient was updated: the national data opt-out, when set, excludes them at once."""
    if opted_out(patient) and isinstance(patient.get("id"), str):
        exclude(system, practice_id, patient["id"])
