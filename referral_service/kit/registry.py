"""Imports every models module so that Base.metadata knows all tables (Alembic, tests)."""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "referral_service.organisations.models",
    "referral_service.auth.models",
    "referral_service.store.models",
    "referral_service.store.sealing",  # seals the store's bodies (and registers them with keys)
    "referral_service.keys.models",
    "referral_service.audit.models",
    "referral_service.referrals.models",
    "referral_service.ledger.models",
    "referral_service.timebanks.models",
    "referral_service.jobs.models",
)


def load_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
