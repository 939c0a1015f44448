"""Imports every models module so that Base.metadata knows all tables (Alembic, tests, key status).

Found by convention rather than listed, so kit names no domain: each package directly under
`referral_service` may have a `models` module (its tables) and a `sealing` module (which attaches
encryption at rest to models and registers the sealed columns with `keys.sealed`).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil

_ROOT = __name__.rsplit(".", 2)[0]  # referral_service
_CONVENTIONAL = ("models", "sealing")


def load_all_models() -> None:
    for name in model_modules():
        importlib.import_module(name)


def model_modules() -> tuple[str, ...]:
    root = importlib.import_module(_ROOT)
    return tuple(
        f"{_ROOT}.{package.name}.{leaf}"
        for package in pkgutil.iter_modules(root.__path__)
        if package.ispkg
        for leaf in _CONVENTIONAL
        if importlib.util.find_spec(f"{_ROOT}.{package.name}.{leaf}") is not None
    )
