"""Encryption at rest for stored secrets (trunk passwords, alert-channel tokens).

The key is a Fernet key. With the embedded database it is generated into the data directory on
first start; with an external database every node must be given the same key, so start-up
refuses to guess one. ``previous_secret_keys`` still decrypt (never encrypt) while a new key is
rolled out, until ``callcore rotate-secrets`` has re-encrypted everything with the new one.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from callcore.config import Secret, Settings
from callcore.errors import ConfigError, ValidationError

KEY_FILE_NAME = "secret.key"


def _checked(key: str, origin: str) -> Fernet:
    try:
        return Fernet(key.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise ConfigError(
            f"secret_key from {origin} is not a Fernet key (32 url-safe base64-encoded bytes); "
            "generate one with `callcore secret-key`"
        ) from None


def generate_key() -> str:
    """A new random key, for `callcore secret-key` and the embedded first start."""
    return Fernet.generate_key().decode("ascii")


def load_cipher(settings: Settings) -> SecretCipher:
    """Find the key the settings call for, generating it only where that is safe."""
    previous = [
        _checked(key.value, f"previous_secret_keys[{n}]")
        for n, key in enumerate(settings.previous_secret_keys)
    ]
    if settings.secret_key is not None:
        return SecretCipher(_checked(settings.secret_key.value, "the settings"), *previous)
    if not settings.embedded_database:
        raise ConfigError(
            "secret_key is required with an external database_url: set CALLCORE_SECRET_KEY "
            "(the same value on every callcore node) or secret_key in callcore.toml"
        )
    path = Path(settings.data_dir) / KEY_FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(generate_key() + "\n")
    return SecretCipher(_checked(path.read_text(encoding="ascii"), str(path)), *previous)


class SecretCipher:
    """Encrypts and decrypts stored secrets; the plaintext only lives in the caller's hands.

    ``fernet`` encrypts; it and each of ``previous`` decrypt.
    """

    def __init__(self, fernet: Fernet, *previous: Fernet) -> None:
        self._fernet = MultiFernet([fernet, *previous])

    def encrypt(self, plaintext: str | Secret) -> bytes:
        value = plaintext.value if isinstance(plaintext, Secret) else plaintext
        return self._fernet.encrypt(value.encode("utf-8"))

    def decrypt(self, token: bytes) -> Secret:
        try:
            return Secret(self._fernet.decrypt(token).decode("utf-8"))
        except InvalidToken:
            raise ValidationError(_UNREADABLE) from None

    def rotate(self, token: bytes) -> bytes:
        """``token`` encrypted again with the current key (it may be under a previous one)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise ValidationError(_UNREADABLE) from None

    def __repr__(self) -> str:
        return "SecretCipher(<key hidden>)"


_UNREADABLE = (
    "a stored secret cannot be decrypted with this secret_key "
    "(was the key changed, or does another node use a different one?)"
)
