"""`spis beat` creates a missing SPIS_VAR_DIR; folders it cannot use give one-line errors, as do
unusable transit key folders for `spis transit-keys ensure` (issue 7 item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.spis_cli import assert_one_line_error, run_spis, spis_command, spis_env

STARTUP_TIMEOUT_S = 60.0


def test_beat_creates_a_missing_var_dir_and_keeps_its_heartbeat(tmp_path: Path) -> None:
    var_dir = tmp_path / "not" / "yet"
    env = spis_env(var_dir, SPIS_BROKER_URL="memory://", SPIS_RELAY_INTERVAL_S="1")
    log = tmp_path / "beat.log"
    with log.open("wb") as out:
        beat = subprocess.Popen(
            spis_command("beat"), env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            heartbeat = var_dir / "celerybeat-heartbeat"
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not heartbeat.exists() and beat.poll() is None:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            assert beat.poll() is None, log.read_text()
            probe = run_spis(["health", "beat", "--max-age", "30"], env, cwd=tmp_path)
            assert probe.returncode == 0, probe.stderr
            assert json.loads(probe.stdout)["heartbeat"] == str(heartbeat)
        finally:
            os.killpg(beat.pid, signal.SIGTERM)
            beat.wait(15)
    assert "Traceback" not in log.read_text()
    assert (var_dir / "celerybeat-schedule").exists() or list(var_dir.glob("celerybeat-schedule*"))


def test_beat_names_a_var_dir_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    env = spis_env(tmp_path / "a-file" / "var", SPIS_BROKER_URL="memory://")
    result = run_spis(["beat"], env, cwd=tmp_path)
    assert_one_line_error(result, "SPIS_VAR_DIR", str(tmp_path / "a-file" / "var"))


def test_transit_keys_ensure_names_a_folder_it_cannot_create(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    keys = tmp_path / "a-file" / "keys"
    env = spis_env(tmp_path / "var", SPIS_TRANSIT_KEYS_DIR=str(keys))
    result = run_spis(["transit-keys", "ensure"], env, cwd=tmp_path)
    assert_one_line_error(result, "SPIS_TRANSIT_KEYS_DIR", str(keys), "Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to any folder")
def test_transit_keys_ensure_names_a_folder_it_may_not_write(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o500)
    env = spis_env(tmp_path / "var", SPIS_TRANSIT_KEYS_DIR=str(keys))
    result = run_spis(["transit-keys", "ensure"], env, cwd=tmp_path)
    assert_one_line_error(result, "SPIS_TRANSIT_KEYS_DIR", str(keys), "Permission denied")


def test_transit_keys_ensure_names_a_broken_key_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "sig.ES384.1.jwk").write_text("not a key")
    env = spis_env(tmp_path / "var", SPIS_TRANSIT_KEYS_DIR=str(keys))
    result = run_spis(["transit-keys", "ensure"], env, cwd=tmp_path)
    line = assert_one_line_error(result, "sig.ES384.1.jwk")
    assert "not a key" not in line  # names the file, never its contents


def test_transit_keys_ensure_creates_a_missing_folder(tmp_path: Path) -> None:
    keys = tmp_path / "deep" / "keys"
    env = spis_env(tmp_path / "var", SPIS_TRANSIT_KEYS_DIR=str(keys))
    result = run_spis(["transit-keys", "ensure"], env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["directory"] == str(keys)
    assert sorted(p.name for p in keys.iterdir()) == [
        "enc.ECDH-ES+A256KW.1.jwk", "enc.RSA-OAEP-256.1.jwk", "sig.ES384.1.jwk",
    ]  # fmt: skip
