"""`spis demo` on the embedded default, as `make demo` runs it, in a fresh directory."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_is_repeatable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPIS_")}
    env["SPIS_VAR_DIR"] = str(tmp_path / "var")
    command = [
        sys.executable,
        "-m",
        "referral_service.cli",
        "demo",
        "--no-serve",
        "--port",
        str(free_port()),
    ]

    first = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    second = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )

    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    assert "201 Created  ServiceRequest/" in out
    assert "200 OK, 200 OK, 200 OK" in out
    assert "is in Catford Time Bank's inbox" in out
    assert "is in Lewisham Time Bank's inbox" in out
    assert "Alex: gave 180 min, received 135 min, 2 partners, reciprocity 1.33" in out
    assert "Alex gave 1.33 minutes for every minute received; 1.00 is an even exchange" in out
    assert (
        'Catford Time Bank declined: "No befriending volunteers free until the spring"' in out
    )  # what the GP sees, found by the GP's own search
    assert "Lewisham Time Bank (broker): enrols" in out  # which broker acts
    assert "referral Task: completed with 11 outputs" in out
    listed = re.findall(r"^ +\d+\. (resulting-activity|additional-content) ", out, re.MULTILINE)
    assert listed.count("resulting-activity") == 4  # one Procedure per exchange
    assert len(listed) == 11  # every output counted is listed
    assert "Time credit hours exchanged: 120 min (Direction of time: Time given)" in out
    assert "SWEMWBS metric 16.36 → 24.11 (+7.75" in out
    assert "listening" not in out  # --no-serve
    assert "SPIS has stopped (--no-serve)" in out
    assert second.returncode == 0, second.stderr
    assert "200 OK       Patient/" in second.stdout  # the same patient, referred again
    assert (tmp_path / "var" / "spis.sqlite3").exists()
    assert (
        oct((tmp_path / "var" / "demo" / "practice.private.jwk").stat().st_mode & 0o777) == "0o600"
    )
    assert "referral Task: completed" in second.stdout
