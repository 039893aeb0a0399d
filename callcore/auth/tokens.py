"""Short-lived JWT access tokens (HS256) and the keys they are signed with.

The signing key is derived from the node's secret key with HKDF, under a label of its own: the
Fernet key that encrypts stored secrets is never used as a MAC key itself, and a token can never
be mistaken for ciphertext or the other way round. Every node with the same secret key derives
the same signing key, so a token issued by one node is accepted by all of them.

Only the signature, the expiry and the claims' shapes are checked here; whether the user still
exists, is active and still has this token version is the caller's business (it needs the
database): see :func:`callcore.web.auth.authenticate_token`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callcore.auth.principal import Principal
from callcore.config import Settings
from callcore.crypto import KEY_FILE_NAME
from callcore.errors import CallcoreError

ALGORITHM = "HS256"
ACCESS_TOKEN_LIFETIME = timedelta(minutes=15)
REQUIRED_CLAIMS = ("sub", "role", "tv", "exp", "iat", "jti")

_SIGNING_LABEL = b"callcore access-token signing key v1"
_CSRF_LABEL = b"callcore csrf token key v1"


class InvalidToken(CallcoreError):
    """An access token that is malformed, forged, tampered with or expired."""


@attrs.frozen
class AccessClaims:
    """The checked content of an access token."""

    user_id: int
    role: str
    token_version: int
    issued_at: datetime
    expires_at: datetime
    jti: str


@attrs.frozen
class IssuedToken:
    token: str
    expires_at: datetime


def _derive(secret_key: str, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(
        secret_key.strip().encode("utf-8")
    )


def secret_key_material(settings: Settings) -> str:
    """The node's secret key: from the settings, or the file the embedded first start wrote.

    Called after :func:`callcore.crypto.load_cipher` has validated (or generated) that key.
    """
    if settings.secret_key is not None:
        return settings.secret_key.value
    return (Path(settings.data_dir) / KEY_FILE_NAME).read_text(encoding="ascii")


class TokenKeys:
    """Issues and checks access tokens and CSRF tokens; the keys never leave this object."""

    def __init__(self, secret_key: str) -> None:
        self._signing_key = _derive(secret_key, _SIGNING_LABEL)
        self._csrf_key = _derive(secret_key, _CSRF_LABEL)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenKeys:
        return cls(secret_key_material(settings))

    def issue_access(
        self,
        principal: Principal,
        *,
        now: datetime | None = None,
        lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
    ) -> IssuedToken:
        """A signed token for ``principal``; ``lifetime`` may be shortened, never lengthened."""
        if lifetime > ACCESS_TOKEN_LIFETIME:
            raise ValueError(f"access token lifetime {lifetime} exceeds {ACCESS_TOKEN_LIFETIME}")
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        expires = issued + lifetime
        claims = {
            "sub": str(principal.user_id),
            "role": principal.role,
            "tv": principal.token_version,
            "iat": issued,
            "exp": expires,
            "jti": secrets.token_urlsafe(16),
        }
        return IssuedToken(jwt.encode(claims, self._signing_key, algorithm=ALGORITHM), expires)

    def decode_access(self, token: str) -> AccessClaims:
        """Check signature, algorithm (HS256 only, never ``none``), expiry and claim types."""
        try:
            claims = jwt.decode(
                token,
                self._signing_key,
                algorithms=[ALGORITHM],
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the access token has expired") from None
        except jwt.PyJWTError as error:
            raise InvalidToken(f"the access token is not valid: {error}") from None
        try:
            user_id = int(claims["sub"])
            token_version = claims["tv"]
            if not isinstance(token_version, int) or not isinstance(claims["role"], str):
                raise TypeError
        except (TypeError, ValueError):
            raise InvalidToken("the access token's claims have the wrong types") from None
        return AccessClaims(
            user_id=user_id,
            role=claims["role"],
            token_version=token_version,
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            jti=str(claims["jti"]),
        )

    def csrf_token(self, family_id: uuid.UUID) -> str:
        """The CSRF token of a session: stable across refreshes, unguessable without the key."""
        digest = hmac.new(self._csrf_key, family_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def __repr__(self) -> str:
        return "TokenKeys(<keys hidden>)"
