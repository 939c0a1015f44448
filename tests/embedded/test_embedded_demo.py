"""`spis demo` on the embedded default, as `make demo` runs it, in a fresh directory."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
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
    # The second run serves, as `make demo` does: its printed sign-ins are tried while it does.
    port = free_port()
    second = serving_demo([*command[:-3], "--port", str(port)], env, tmp_path, check=try_signins)

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
    assert printed_signins(out) == printed_signins(second.stdout)  # the same people, again
    assert f"Web workspace: http://127.0.0.1:{port}/" in second.stdout
    assert second.returncode == 0, second.stdout + second.stderr
    assert "200 OK       Patient/" in second.stdout  # the same patient, referred again
    assert (tmp_path / "var" / "spis.sqlite3").exists()
    assert (
        oct((tmp_path / "var" / "demo" / "practice.private.jwk").stat().st_mode & 0o777) == "0o600"
    )
    assert "referral Task: completed" in second.stdout
    assert_notifications(out)
    assert_notifications(second.stdout)
    assert "removed 2 subscriptions left by an earlier run" in second.stdout
    assert_board_report(out)
    assert "synthetic referrals loaded by an earlier run are reused" in second.stdout
    assert_board_report(second.stdout)


def assert_notifications(out: str) -> None:
    """The GP system subscribed before referring, and SPIS pushed to its receiver, in order,
    each notification verified and decrypted there: the referral Task's changes (id-only) and
    what the time bank shared back."""
    assert "[ 3/16] GP system: subscribes to its referrals and to what comes back" in out
    assert "both handshakes arrived at http://127.0.0.1:" in out
    pushed = out.split("GP system: the notifications SPIS pushed to it")[1].split("[15/16]")[0]
    lines = [line.strip() for line in pushed.splitlines()]
    assert lines[1:3] == ["handshake", "handshake"], pushed
    for topic, types in (("task", {"Task"}), ("shared-back", {"Observation", "Procedure"})):
        events = [line.split() for line in lines if f"[{topic}]" in line]
        numbers = [int(event[1].lstrip("#")) for event in events]
        assert numbers == list(range(1, len(numbers) + 1)), pushed  # in order, no gap
        assert {event[3].split("/")[0] for event in events} == types, pushed
    assert not [line for line in lines if line.startswith(("gap:", "duplicate"))], pushed


def assert_board_report(out: str) -> None:
    """The demo ends with the health board's reports for its period, as tables with figures
    that passed disclosure control, clearly labelled as resting on synthetic data."""
    assert "[16/16] Health board: its outcome reports, " in out
    reports = out.split("=== Health board report (includes SYNTHETIC data) ===")
    assert len(reports) == 5, out  # the four Measures, after the story
    if "reused" not in out:
        assert "SYNTHETIC DATA: 400 made-up referrals from 3 synthetic practices" in reports[0]
    funnel, _, wellbeing, social_value = reports[1:]
    assert "Social prescribing referrals: from referral to completion" in funnel
    assert "Health board: Demo Integrated Care Board (" in funnel
    referred = re.search(r"^Referred \[\{people\}\]\n.*\n  Total +(\d+)$", funnel, re.MULTILINE)
    assert referred, funnel
    assert int(referred[1]) >= 20
    assert int(referred[1]) % 5 == 0  # rounded to 5
    # The demo practice's own couple of referrals: too few to show.
    demo_practice = (
        r"^  Practice: Rushey Green Group Practice \(demo\) \(F84001\) +masked \(small count\)$"
    )
    assert re.search(demo_practice, funnel, re.MULTILINE), funnel
    mean = re.search(
        r"^SWEMWBS \(metric score\): mean change \[\{score\}\]\n.*\n"
        r"  Total +(-?\d+\.\d\d)  (-?\d+\.\d\d) to (-?\d+\.\d\d) +(\d+)$",
        wellbeing,
        re.MULTILINE,
    )
    assert mean, wellbeing
    assert float(mean[2]) < float(mean[1]) < float(mean[3])  # a mean inside its 95% CI
    assert int(mean[4]) >= 8
    assert re.search(r"^  Total +£[\d,]+$", social_value, re.MULTILINE), social_value
    assert "Programme cost (entered by the board)" in social_value
    assert "£45,000" in social_value


SIGNIN = re.compile(
    r"^  (Time bank broker|Practice staff) at (.+): email (\S+), password (\S+)$", re.MULTILINE
)
START_PAGES = {"Time bank broker": "/broker", "Practice staff": "/practice"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def printed_signins(out: str) -> list[tuple[str, str, str, str]]:
    assert "Demo sign-ins, for development only (no second factor is asked for while" in out
    found = SIGNIN.findall(out)
    assert [(role, org) for role, org, *_ in found] == [
        ("Time bank broker", "Catford Time Bank"),
        ("Time bank broker", "Lewisham Time Bank"),
        ("Practice staff", "Rushey Green Group Practice (demo)"),
    ]
    return found


def try_signins(out: str, web_address: str) -> None:
    """Each printed email and password signs in (no second factor: development) and reaches
    that person's start page, showing their organisation."""
    for role, organisation, email, password in printed_signins(out):
        with httpx.Client(base_url=web_address, timeout=30) as browser:
            form = browser.get("/signin")
            csrf = _CSRF.search(form.text)
            assert csrf, form.text
            signed = browser.post(
                "/signin",
                data={"csrf_token": csrf.group(1), "email": email, "password": password},
                follow_redirects=True,
            )
            assert signed.status_code == 200, signed.text
            assert signed.url.path == START_PAGES[role]
            assert organisation in signed.text  # the header names the person's organisation


def serving_demo(
    command: list[str], env: dict[str, str], cwd: Path, check: Callable[[str, str], None]
) -> subprocess.CompletedProcess[str]:
    """`spis demo` left serving: once it says so, `check(output so far, web address)` runs
    against it; then Ctrl+C, as a person would stop it."""
    out_path = cwd / "serving-demo.out"
    with out_path.open("w") as out_file:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=out_file,
            stderr=subprocess.PIPE,
            text=True,
            # Its own group, so that a demo that does not stop is killed with its worker and beat.
            start_new_session=True,
            # A test run started in the background (`make test &`, some CI runners) ignores
            # SIGINT, and a child inherits that: Ctrl+C must reach the demo as it would a person's.
            preexec_fn=_default_sigint,
        )
        try:
            out = wait_for_output(process, out_path, "Press Ctrl+C to stop.")
            found = re.search(r"^Web workspace: (\S+)$", out, re.MULTILINE)
            assert found, out
            check(out, found.group(1))
        finally:
            process.send_signal(signal.SIGINT)
            err = _stopped(process)
    return subprocess.CompletedProcess(command, process.returncode, out_path.read_text(), err)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stopped(process: subprocess.Popen[str]) -> str:
    """Its stderr once Ctrl+C has stopped it; a demo still running a minute later is killed (with
    its worker and beat) and fails the test."""
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError("spis demo did not stop within 60 s of Ctrl+C") from None
    return err


def wait_for_output(
    process: subprocess.Popen[str], out_path: Path, line: str, timeout: float = 120
) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = out_path.read_text()
        if line in out:
            return out
        assert process.poll() is None, f"spis demo exited with {process.returncode}:\n{out}"
        time.sleep(0.2)
    raise AssertionError(f"spis demo did not print {line!r} within {timeout:.0f} s")
