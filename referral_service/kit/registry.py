"""Imports every models module so that Base.metadata knows all tables (Alembic, tests, key status).

Found by convention rather than listed, so kit names no domain: each package directly under
`referral_service` may have a `models` module (its tables) and a `sealing` module (which attaches
encryption at rest to models and registers the sealed columns with `keys.sealed`).

A package may also have a `hooks` module: what it does on session events that a lower package
announces (`kit.changes.on_commit`). `load_hooks` imports them all, once; `kit.changes` calls it
the first time a commit has changes to hand over, so every process that writes has them.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import pkgutil

_ROOT = __name__.rsplit(".", 2)[0]  # referral_service
_CONVENTIONAL = ("models", "sealing")
_HOOKS = "hooks"


def load_all_models() -> None:
    for name in model_modules():
        importlib.import_module(name)


@functools.cache  # once per process: the package listing is not walked on every commit
def load_hooks() -> None:
    for name in hook_modules():
        importlib.import_module(name)


def model_modules() -> tuple[str, ...]:
    return _conventional_modules(_CONVENTIONAL)


def hook_modules() -> tuple[str, ...]:
    return _conventional_modules((_HOOKS,))


def _conventional_modules(leaves: tuple[str, ...]) -> tuple[str, ...]:
    root = importlib.import_module(_ROOT)
    return tuple(
        f"{_ROOT}.{package.name}.{leaf}"
        for package in pkgutil.iter_modules(root.__path__)
        if package.ispkg
        for leaf in leaves
        if importlib.util.find_spec(f"{_ROOT}.{package.name}.{leaf}") is not None
    )
