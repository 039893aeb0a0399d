"""Access tokens: claims, lifetime, key derivation, and every way a token can be bad."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from callcore.auth.principal import Principal
from callcore.auth.tokens import (
    ACCESS_TOKEN_LIFETIME,
    InvalidToken,
    TokenKeys,
    secret_key_material,
)
from callcore.config import Secret, Settings
from callcore.crypto import KEY_FILE_NAME, generate_key

SECRET = generate_key()
KEYS = TokenKeys(SECRET)
ALICE = Principal(user_id=7, username="alice", role="supervisor", language="en", token_version=3)


def _expected_signing_key(secret: str) -> bytes:
    """The documented derivation: HKDF-SHA256 of the secret key, under the token label."""
    hkdf = HKDF(hashes.SHA256(), 32, None, b"callcore access-token signing key v1")
    return hkdf.derive(secret.encode())


def _claims(**changes: object) -> dict:
    now = datetime.now(UTC)
    claims = {
        "sub": "7",
        "role": "supervisor",
        "tv": 3,
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "jti": "j",
    }
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).rstrip(b"=").decode()


def test_a_token_carries_the_pinned_claims_and_lives_fifteen_minutes():
    issued = KEYS.issue_access(ALICE)
    claims = KEYS.decode_access(issued.token)
    assert (claims.user_id, claims.role, claims.token_version) == (7, "supervisor", 3)
    assert claims.expires_at - claims.issued_at == ACCESS_TOKEN_LIFETIME == timedelta(minutes=15)
    assert claims.expires_at == issued.expires_at
    raw = jwt.decode(issued.token, options={"verify_signature": False})
    assert set(raw) == {"sub", "role", "tv", "exp", "iat", "jti"}
    assert jwt.get_unverified_header(issued.token)["alg"] == "HS256"
    assert KEYS.decode_access(KEYS.issue_access(ALICE).token).jti != claims.jti


def test_the_lifetime_can_be_shortened_never_lengthened():
    short = KEYS.issue_access(ALICE, lifetime=timedelta(minutes=1))
    claims = KEYS.decode_access(short.token)
    assert claims.expires_at - claims.issued_at == timedelta(minutes=1)
    with pytest.raises(ValueError, match="exceeds 0:15:00"):
        KEYS.issue_access(ALICE, lifetime=timedelta(minutes=16))


def test_the_signing_key_is_derived_not_the_fernet_key():
    derived = jwt.encode(_claims(), _expected_signing_key(SECRET), algorithm="HS256")
    assert KEYS.decode_access(derived).user_id == 7
    for raw_key in (SECRET.encode(), base64.urlsafe_b64decode(SECRET)):
        with pytest.raises(InvalidToken, match="Signature verification failed"):
            KEYS.decode_access(jwt.encode(_claims(), raw_key, algorithm="HS256"))


def test_an_expired_token_is_refused():
    old = KEYS.issue_access(ALICE, now=datetime.now(UTC) - timedelta(minutes=15, seconds=1))
    with pytest.raises(InvalidToken, match="expired"):
        KEYS.decode_access(old.token)


def test_a_token_of_another_key_is_refused():
    with pytest.raises(InvalidToken, match="Signature"):
        KEYS.decode_access(TokenKeys(generate_key()).issue_access(ALICE).token)


def test_a_tampered_payload_is_refused():
    header, payload, signature = KEYS.issue_access(ALICE).token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered = ".".join([header, _b64({**claims, "role": "admin"}), signature])
    with pytest.raises(InvalidToken, match="Signature"):
        KEYS.decode_access(tampered)


@pytest.mark.parametrize("algorithm", ["none", "HS512", "HS384"])
def test_other_algorithms_are_refused(algorithm):
    key = _expected_signing_key(SECRET) * 2  # long enough for any HMAC; only the alg matters
    if algorithm == "none":
        token = ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(_claims()), ""])
    else:
        token = jwt.encode(_claims(), key, algorithm=algorithm)
    with pytest.raises(InvalidToken, match="alg value is not allowed"):
        KEYS.decode_access(token)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"tv": None}, 'missing the "tv" claim'),
        ({"jti": None}, 'missing the "jti" claim'),
        ({"sub": None}, 'missing the "sub" claim'),
        ({"tv": "3"}, "wrong types"),
        ({"sub": "seven"}, "wrong types"),
        ({"role": 1}, "wrong types"),
        ({"iat": datetime.now(UTC) + timedelta(hours=1)}, "not yet valid"),
    ],
)
def test_claims_must_be_complete_and_well_typed(changes, message):
    token = jwt.encode(_claims(**changes), _expected_signing_key(SECRET), algorithm="HS256")
    with pytest.raises(InvalidToken, match=message):
        KEYS.decode_access(token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "ey.ey.ey", "Bearer x"])
def test_garbage_is_refused(garbage):
    with pytest.raises(InvalidToken):
        KEYS.decode_access(garbage)


def test_csrf_tokens_are_per_session_and_per_key():
    session, other = uuid.uuid4(), uuid.uuid4()
    assert KEYS.csrf_token(session) == TokenKeys(SECRET).csrf_token(session)
    assert KEYS.csrf_token(session) != KEYS.csrf_token(other)
    assert KEYS.csrf_token(session) != TokenKeys(generate_key()).csrf_token(session)
    assert len(KEYS.csrf_token(session)) == 43


def test_the_key_material_comes_from_settings_or_the_key_file(tmp_path):
    assert secret_key_material(Settings(secret_key=Secret(SECRET))) == SECRET
    (tmp_path / KEY_FILE_NAME).write_text(SECRET + "\n", encoding="ascii")
    from_file = TokenKeys.from_settings(Settings(data_dir=tmp_path))
    assert from_file.decode_access(KEYS.issue_access(ALICE).token).user_id == 7


def test_keys_never_show_in_a_repr():
    assert repr(KEYS) == "TokenKeys(<keys hidden>)"
    assert SECRET not in repr(KEYS)
