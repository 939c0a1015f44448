"""`make demo` as a newcomer runs it: it says what the first, silent install is doing, and
`make demo PORT=...` reaches `spis demo --port`. The venv is a stub that records its commands."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def stub_venv(folder: Path) -> Path:
    log = folder / "commands.log"
    for name in ("python", "spis"):
        stub = folder / "venv" / "bin" / name
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\necho "{name} $*"\n')
        stub.chmod(0o755)
    (folder / "pyproject.toml").write_text("")
    return log


def make_demo(folder: Path, *variables: str) -> str:
    done = subprocess.run(
        ["make", "-s", "-f", str(REPO / "Makefile"), "demo", "VENV=venv", *variables],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_first_run_says_it_is_installing_then_the_port_reaches_spis_demo(tmp_path: Path) -> None:
    stub_venv(tmp_path)

    first = make_demo(tmp_path, "PORT=8123")
    again = make_demo(tmp_path)

    lines = first.splitlines()
    installing = next(i for i, line in enumerate(lines) if "Installing SPIS" in line)
    pip = next(i for i, line in enumerate(lines) if "pip install" in line)
    assert installing < pip, first
    assert "about a minute" in first
    assert lines[-1] == "spis demo --host 127.0.0.1 --port 8123"
    assert "Installing" not in again  # installed once
    assert again.splitlines()[-1] == "spis demo --host 127.0.0.1 --port 8000"
