"""Every stored secret encrypted again with the current key: ``callcore rotate-secrets``.

Secrets are Fernet ciphertext in ``bytea`` columns named ``*_encrypted`` (the schema's
convention, 0001_domain.sql: trunk and phone passwords, voicemail PINs, alert-channel tokens)
and tokens in ``flow_versions.secrets`` (an IVR webhook's credentials, 0005_flow_secrets.sql).
The columns are found in the catalogue, so a table a later migration adds is rotated too.
"""

from __future__ import annotations

import asyncpg

from callcore import audit
from callcore.crypto import SecretCipher
from callcore.errors import ValidationError
from callcore.ivr.secrets import rotated

_ENCRYPTED_COLUMNS = (
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND data_type = 'bytea' "
    "AND column_name LIKE '%\\_encrypted' ORDER BY table_name, column_name"
)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def rotate_secrets(
    conn: asyncpg.Connection, cipher: SecretCipher, *, actor_label: str
) -> dict[str, int]:
    """Encrypt every stored secret again with ``cipher``'s current key (each may be under it or
    under one of its previous keys), in one transaction, audited; the count per
    ``table.column``.

    A secret no key opens is a :class:`ValidationError` naming its row, and nothing is written:
    a half-rotated database would need both keys for ever.
    """
    counts: dict[str, int] = {}
    async with conn.transaction():
        for table, column in await conn.fetch(_ENCRYPTED_COLUMNS):
            where = f"{table}.{column}"
            t, c = _identifier(table), _identifier(column)
            rows = await conn.fetch(f"SELECT id, {c} FROM {t} WHERE {c} IS NOT NULL FOR UPDATE")
            updates = [(row["id"], _again(cipher, row[column], where, row["id"])) for row in rows]
            await conn.executemany(f"UPDATE {t} SET {c} = $2 WHERE id = $1", updates)
            counts[where] = len(updates)
        versions = await conn.fetch(
            "SELECT id, secrets FROM flow_versions WHERE secrets <> '{}'::jsonb FOR UPDATE"
        )
        tokens = 0
        for row in versions:
            try:
                secrets, count = rotated(row["secrets"], cipher)
            except ValidationError as exc:
                raise ValidationError(f"flow_versions.secrets of id {row['id']}: {exc}") from None
            await conn.execute(
                "UPDATE flow_versions SET secrets = $2 WHERE id = $1", row["id"], secrets
            )
            tokens += count
        counts["flow_versions.secrets"] = tokens
        await audit.record(
            conn,
            actor_id=None,
            actor_label=actor_label,
            action="rotate",
            entity_type="secret_key",
            entity_id=None,
            # a list, not a mapping: the audit log redacts keys named like secrets
            after={"reencrypted": [{"column": where, "count": n} for where, n in counts.items()]},
        )
    return counts


def _again(cipher: SecretCipher, token: bytes, where: str, row_id: int) -> bytes:
    try:
        return cipher.rotate(bytes(token))
    except ValidationError as exc:
        raise ValidationError(f"{where} of id {row_id}: {exc}") from None
