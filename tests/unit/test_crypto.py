"""Secret encryption at rest: where the key comes from, and refusing to guess one."""

import stat

import pytest

from callcore.config import Secret, load_settings
from callcore.crypto import generate_key, load_cipher
from callcore.errors import ConfigError, ValidationError


def test_embedded_database_generates_a_private_key_once(tmp_path):
    settings = load_settings(env={"CALLCORE_DATA": str(tmp_path / "data")})
    first = load_cipher(settings)
    key_file = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = first.encrypt("trunk-password")
    assert b"trunk-password" not in token
    again = load_cipher(settings)
    assert again.decrypt(token) == Secret("trunk-password")


def test_external_database_refuses_to_start_without_a_key(tmp_path):
    settings = load_settings(
        env={"CALLCORE_DATA": str(tmp_path), "DATABASE_URL": "postgresql://h/db"}
    )
    with pytest.raises(ConfigError, match="secret_key is required with an external database_url"):
        load_cipher(settings)
    assert not (tmp_path / "secret.key").exists()


def test_configured_key_is_used_and_a_bad_one_is_named_not_shown(tmp_path):
    key = generate_key()
    env = {"CALLCORE_DATA": str(tmp_path), "DATABASE_URL": "postgresql://h/db"}
    cipher = load_cipher(load_settings(env={**env, "CALLCORE_SECRET_KEY": key}))
    assert cipher.decrypt(cipher.encrypt("x")).value == "x"
    with pytest.raises(ConfigError, match="is not a Fernet key") as excinfo:
        load_cipher(load_settings(env={**env, "CALLCORE_SECRET_KEY": "not-a-key-hunter2"}))
    assert "hunter2" not in str(excinfo.value)


def test_decrypting_with_another_key_is_a_clear_error(tmp_path):
    env = {"CALLCORE_DATA": str(tmp_path), "DATABASE_URL": "postgresql://h/db"}
    one = load_cipher(load_settings(env={**env, "CALLCORE_SECRET_KEY": generate_key()}))
    other = load_cipher(load_settings(env={**env, "CALLCORE_SECRET_KEY": generate_key()}))
    with pytest.raises(ValidationError, match="cannot be decrypted with this secret_key"):
        other.decrypt(one.encrypt("x"))
    assert "key" in repr(one) and generate_key() not in repr(one)


def test_previous_keys_still_decrypt_and_never_encrypt(tmp_path):
    old, new = generate_key(), generate_key()
    env = {"CALLCORE_DATA": str(tmp_path), "DATABASE_URL": "postgresql://h/db"}
    before = load_cipher(load_settings(env={**env, "CALLCORE_SECRET_KEY": old}))
    token = before.encrypt("pin 1234")
    during = load_cipher(
        load_settings(
            env={**env, "CALLCORE_SECRET_KEY": new, "CALLCORE_PREVIOUS_SECRET_KEYS": f" {old} ,"}
        )
    )
    assert during.decrypt(token).value == "pin 1234"
    after = load_cipher(load_settings(env={**env, "CALLCORE_SECRET_KEY": new}))
    with pytest.raises(ValidationError):
        after.decrypt(token)
    assert after.decrypt(during.encrypt("x")).value == "x"  # new secrets: the new key
    rotated = during.rotate(token)
    assert after.decrypt(rotated).value == "pin 1234"
    with pytest.raises(ValidationError, match="cannot be decrypted"):
        after.rotate(token)


def test_a_bad_previous_key_is_named_by_its_place(tmp_path):
    env = {
        "CALLCORE_DATA": str(tmp_path),
        "CALLCORE_SECRET_KEY": generate_key(),
        "CALLCORE_PREVIOUS_SECRET_KEYS": f"{generate_key()},hunter2",
    }
    with pytest.raises(ConfigError, match=r"previous_secret_keys\[1\] is not a Fernet key") as e:
        load_cipher(load_settings(env=env))
    assert "hunter2" not in str(e.value)
