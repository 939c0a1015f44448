"""Which columns hold sealed values: each domain that seals a column registers it here when it
attaches the sealing (store/sealing.py), so key status and re-encryption reach every sealed table
without this package importing the domains that own them."""

from __future__ import annotations

from typing import Any

from referral_service.kit.registry import load_all_models

_columns: list[tuple[type[Any], str]] = []


def register(model: type[Any], attribute: str) -> None:
    if (model, attribute) not in _columns:
        _columns.append((model, attribute))


def columns() -> tuple[tuple[type[Any], str], ...]:
    """Every sealed column, as (model, attribute). Loads every models module first: a column
    missing here would count as nothing left to re-seal, and its key would be retired."""
    load_all_models()
    return tuple(_columns)
