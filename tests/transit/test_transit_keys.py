"""SPIS's transit keys: made on first use outside production, required in production, rotated by
adding a generation, and published without a single private member."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from referral_service.config import Settings
from referral_service.keys import jose as transit_keys
from referral_service.keys.jose import (
    KeyRing,
    KeyStore,
    TransitKeyError,
    create_key_file,
    key_store,
    keys_dir,
    load_ring,
)
from referral_service.kit.jwe_keys import PRIVATE_MEMBERS
from referral_service.transit.jwe import encrypt_response, open_request

EXPECTED_FILES = {"sig.ES384.1.jwk", "enc.ECDH-ES+A256KW.1.jwk", "enc.RSA-OAEP-256.1.jwk"}


def enc_jwk(store: KeyStore, alg: str) -> dict[str, object]:
    return next(key for key in store.public_jwks()["keys"] if key["alg"] == alg)


def test_development_generates_private_files_only_we_can_read(keys_dir: Path) -> None:
    KeyStore(keys_dir, generate=True)

    assert {path.name for path in keys_dir.iterdir()} == EXPECTED_FILES
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700
    for path in keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "d" in json.loads(path.read_text())


def test_a_second_process_loads_the_same_keys(keys_dir: Path) -> None:
    first = KeyStore(keys_dir, generate=True).public_jwks()
    second = KeyStore(keys_dir, generate=True).public_jwks()

    assert first == second


def test_processes_racing_on_an_empty_directory_agree(keys_dir: Path) -> None:
    results: list[dict[str, object]] = []

    def start() -> None:
        results.append(KeyStore(keys_dir, generate=True).public_jwks())

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 4
    assert all(result == results[0] for result in results)
    assert {path.name for path in keys_dir.iterdir()} == EXPECTED_FILES  # no temporaries left


def test_production_refuses_to_start_without_keys(tmp_path: Path) -> None:
    settings = production_settings(tmp_path)

    with pytest.raises(TransitKeyError, match=r"sig\.ES384\.1\.jwk"):
        key_store(settings)
    assert not (tmp_path / "keys").exists()


def test_production_loads_keys_made_beforehand_and_rsa_is_optional(tmp_path: Path) -> None:
    create_key_file(tmp_path / "keys", "ES384")
    create_key_file(tmp_path / "keys", "ECDH-ES+A256KW")
    settings = production_settings(tmp_path)

    published = key_store(settings).public_jwks()["keys"]

    assert sorted(key["alg"] for key in published) == ["ECDH-ES+A256KW", "ES384"]


def test_keys_dir_defaults_under_var(tmp_path: Path) -> None:
    assert keys_dir(Settings(var_dir=tmp_path)) == tmp_path / "keys"


def test_published_jwks_has_no_private_members(keys_dir: Path) -> None:
    published = KeyStore(keys_dir, generate=True).public_jwks()["keys"]

    assert {(key["use"], key["alg"]) for key in published} == {
        ("sig", "ES384"),
        ("enc", "ECDH-ES+A256KW"),
        ("enc", "RSA-OAEP-256"),
    }
    for key in published:
        assert not PRIVATE_MEMBERS & key.keys()
        assert set(key) <= {"kty", "kid", "use", "alg", "crv", "x", "y", "n", "e"}


def test_kid_is_the_thumbprint(keys_dir: Path) -> None:
    store = KeyStore(keys_dir, generate=True)

    for key in store.ring().keys:
        assert key.kid == key.key.thumbprint()


def test_rotation_makes_a_new_current_key_and_old_jwes_still_decrypt(keys_dir: Path) -> None:
    store = KeyStore(keys_dir, generate=True)
    old_enc, old_sig = enc_jwk(store, "ECDH-ES+A256KW"), store.ring().signing_key()
    sent_before = encrypt_response(b'{"before": true}', old_enc)

    create_key_file(keys_dir, "ECDH-ES+A256KW")
    create_key_file(keys_dir, "ES384")
    rotated = KeyStore(keys_dir, generate=True)

    new_enc = enc_jwk(rotated, "ECDH-ES+A256KW")
    assert new_enc["kid"] != old_enc["kid"]
    assert rotated.ring().signing_key().kid != old_sig.kid
    assert open_request(sent_before.encode(), rotated).plaintext == b'{"before": true}'
    assert open_request(encrypt_response(b"{}", new_enc).encode(), rotated).plaintext == b"{}"
    published = {key["kid"] for key in rotated.public_jwks()["keys"]}
    assert old_sig.kid in published  # signatures made before the rotation still verify
    assert old_enc["kid"] not in published  # but nobody should encrypt to the old key


def test_unknown_kid_rereads_the_directory(keys_dir: Path) -> None:
    clock = [1000.0]
    store = KeyStore(keys_dir, generate=True, clock=lambda: clock[0])
    create_key_file(keys_dir, "ECDH-ES+A256KW")  # another process rotated
    newer = KeyStore(keys_dir, generate=True)
    token = encrypt_response(b"{}", enc_jwk(newer, "ECDH-ES+A256KW"))
    clock[0] += transit_keys.UNKNOWN_KID_COOLDOWN_S

    assert open_request(token.encode(), store).plaintext == b"{}"


def test_unknown_kids_do_not_reread_more_than_once_per_cooldown(
    keys_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    store = KeyStore(keys_dir, generate=True, clock=lambda: clock[0])
    reads: list[Path] = []

    def counting_load(directory: Path, *, generate: bool) -> KeyRing:
        reads.append(directory)
        return load_ring(directory, generate=generate)

    monkeypatch.setattr(transit_keys, "load_ring", counting_load)
    clock[0] += transit_keys.UNKNOWN_KID_COOLDOWN_S

    for _ in range(5):
        store.refresh_for_unknown_kid()

    assert len(reads) == 1


def test_a_broken_file_fails_loudly_without_quoting_it(keys_dir: Path) -> None:
    keys_dir.mkdir(mode=0o700)
    (keys_dir / "sig.ES384.1.jwk").write_text('{"kty": "EC", "secret": "s3cr3t-material"}')

    with pytest.raises(TransitKeyError) as caught:
        load_ring(keys_dir, generate=True)

    assert "sig.ES384.1.jwk" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_a_public_key_file_is_refused(keys_dir: Path) -> None:
    KeyStore(keys_dir, generate=True)
    path = keys_dir / "sig.ES384.1.jwk"
    private = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in private.items() if k != "d"}))

    with pytest.raises(TransitKeyError, match="no private key"):
        load_ring(keys_dir, generate=True)


def test_a_failed_reload_keeps_the_loaded_keys(keys_dir: Path) -> None:
    clock = [1000.0]
    store = KeyStore(keys_dir, generate=True, clock=lambda: clock[0])
    before = store.public_jwks()
    (keys_dir / "sig.ES384.9.jwk").write_text("not json")
    clock[0] += transit_keys.REFRESH_INTERVAL_S

    assert store.public_jwks() == before


def production_settings(var_dir: Path) -> Settings:
    """Production as far as the keys are concerned (copied, so no other secret is demanded)."""
    return Settings(var_dir=var_dir).model_copy(update={"environment": "production"})
