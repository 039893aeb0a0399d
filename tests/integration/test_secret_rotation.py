"""``callcore rotate-secrets``: every stored secret — trunk and phone passwords, voicemail PINs,
alert-channel tokens, IVR flow secrets — encrypted again with the new key, in one transaction,
run as a user runs it (a real process, a real database)."""

import json

import asyncpg
import pytest
from _cli import run
from cryptography.fernet import Fernet

from callcore.crypto import SecretCipher, generate_key


async def seed(conn: asyncpg.Connection, cipher: SecretCipher, *, broken: bool = False) -> None:
    """One secret of each kind under ``cipher``'s key (and, with ``broken``, one no key opens)."""
    encrypt = cipher.encrypt
    await conn.execute(
        "INSERT INTO sip_trunks (name, host, password_encrypted) VALUES ('ovh', 'sip.example', $1)",
        encrypt("trunk-pass"),
    )
    await conn.execute(
        "INSERT INTO phones (endpoint, password_encrypted) VALUES ('desk-1', $1)",
        encrypt("phone-pass"),
    )
    await conn.execute(
        "INSERT INTO voicemail_boxes (mailbox, pin_encrypted) VALUES ('1234', $1)", encrypt("4321")
    )
    await conn.execute(
        "INSERT INTO alert_channels (name, kind, secrets_encrypted) VALUES ('ops', 'slack', $1)",
        encrypt(json.dumps({"webhook_url": "https://hooks.example/T0"})),
    )
    flow = await conn.fetchval("INSERT INTO flows (name) VALUES ('Reception') RETURNING id")
    secrets = {
        "crm": {
            "secret_headers": {
                "Authorization": encrypt("Bearer s3cr3t").decode(),
                "X-Api-Key": encrypt("k-1").decode(),
            }
        }
    }
    await conn.execute(
        "INSERT INTO flow_versions (flow_id, version_number, graph, secrets) "
        "VALUES ($1, 1, '{}'::jsonb, $2::jsonb)",
        flow,
        json.dumps(secrets),
    )
    if broken:
        stranger = SecretCipher(Fernet(generate_key()))
        await conn.execute(
            "INSERT INTO phones (endpoint, password_encrypted) VALUES ('desk-2', $1)",
            stranger.encrypt("lost"),
        )


async def stored(conn: asyncpg.Connection) -> list[bytes | str]:
    """Every stored secret token, in a fixed order."""
    tokens: list[bytes | str] = []
    for table, column in (
        ("sip_trunks", "password_encrypted"),
        ("phones", "password_encrypted"),
        ("voicemail_boxes", "pin_encrypted"),
        ("alert_channels", "secrets_encrypted"),
    ):
        tokens += [row[0] for row in await conn.fetch(f"SELECT {column} FROM {table} ORDER BY id")]
    for row in await conn.fetch("SELECT secrets::text FROM flow_versions ORDER BY id"):
        headers = json.loads(row[0])["crm"]["secret_headers"]
        tokens += [headers["Authorization"], headers["X-Api-Key"]]
    return tokens


def opened(cipher: SecretCipher, tokens: list[bytes | str]) -> list[str]:
    return [cipher.decrypt(t if isinstance(t, bytes) else t.encode()).value for t in tokens]


@pytest.fixture
async def conn(database_url):
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


async def test_every_secret_is_reencrypted_with_the_new_key(cli_env, conn):
    old, new = generate_key(), generate_key()
    assert run({**cli_env, "CALLCORE_SECRET_KEY": old}, "migrate").returncode == 0
    await seed(conn, SecretCipher(Fernet(old)))
    plain = opened(SecretCipher(Fernet(old)), await stored(conn))

    rotating = {**cli_env, "CALLCORE_SECRET_KEY": new, "CALLCORE_PREVIOUS_SECRET_KEYS": old}
    result = run(rotating, "rotate-secrets")
    assert result.returncode == 0, result.stderr
    assert "sip_trunks.password_encrypted: 1 re-encrypted" in result.stdout
    assert "flow_versions.secrets: 2 re-encrypted" in result.stdout
    assert "6 secrets now open with secret_key alone" in result.stdout
    assert old not in result.stdout + result.stderr and new not in result.stdout + result.stderr

    assert opened(SecretCipher(Fernet(new)), await stored(conn)) == plain
    audit = await conn.fetchrow("SELECT * FROM audit_log WHERE entity_type = 'secret_key'")
    assert audit["action"] == "rotate" and audit["actor_label"] == "callcore cli"
    rotated = json.loads(audit["after"])["reencrypted"]
    assert {"column": "phones.password_encrypted", "count": 1} in rotated


async def test_a_secret_no_key_opens_is_named_and_nothing_is_rewritten(cli_env, conn):
    old, new = generate_key(), generate_key()
    assert run({**cli_env, "CALLCORE_SECRET_KEY": old}, "migrate").returncode == 0
    await seed(conn, SecretCipher(Fernet(old)), broken=True)
    before = await stored(conn)
    desk_2 = await conn.fetchval("SELECT id FROM phones WHERE endpoint = 'desk-2'")

    rotating = {**cli_env, "CALLCORE_SECRET_KEY": new, "CALLCORE_PREVIOUS_SECRET_KEYS": old}
    result = run(rotating, "rotate-secrets")
    assert result.returncode == 1
    assert f"phones.password_encrypted of id {desk_2}: a stored secret cannot be decrypted" in (
        result.stderr
    )
    assert await stored(conn) == before  # the trunk before it was not rewritten either
    assert (
        await conn.fetchval("SELECT count(*) FROM audit_log WHERE entity_type = 'secret_key'") == 0
    )
