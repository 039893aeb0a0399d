"""Read-only repository of what Asterisk's configuration is rendered from.

It loads trunks, DIDs, queues with their members, agent phones and voicemail boxes in one
read-only, repeatable-read transaction, so the rendered files describe one consistent moment.
Secrets stay Fernet ciphertext here: only the dialplan renderer decrypts them.
"""

from __future__ import annotations

import asyncpg
import attrs

FALLBACK_PROMPT_SETTING = "dialplan.fallback_prompt"


@attrs.frozen(slots=True)
class Trunk:
    id: int
    name: str
    label: str
    host: str
    port: int
    transport: str
    username: str | None
    password_encrypted: bytes | None = attrs.field(repr=False)
    register: bool
    from_user: str | None
    from_domain: str | None
    match_addresses: tuple[str, ...]
    codecs: tuple[str, ...]
    number_format: str
    dial_prefix: str
    max_concurrent_calls: int
    allowed_prefixes: tuple[str, ...]


@attrs.frozen(slots=True)
class Did:
    id: int
    number: str
    trunk_name: str | None
    trunk_number_format: str | None
    flow_id: int | None
    flow_name: str | None


@attrs.frozen(slots=True)
class QueueMember:
    user_id: int
    username: str
    penalty: int
    endpoint: str | None  # the PJSIP endpoint of the member's assigned phone, if any


@attrs.frozen(slots=True)
class Queue:
    id: int
    name: str
    label: str
    strategy: str
    member_timeout_seconds: int
    retry_seconds: int
    wrapup_seconds: int
    max_waiting: int
    max_wait_seconds: int | None
    overflow_flow_id: int | None
    music_class: str
    announce_position: bool
    announce_holdtime: bool
    periodic_announce: str | None  # sounds joined by "&"
    periodic_announce_frequency: int | None
    service_level_seconds: int
    members: tuple[QueueMember, ...]


@attrs.frozen(slots=True)
class Phone:
    id: int
    endpoint: str
    label: str
    extension: str | None
    password_encrypted: bytes | None = attrs.field(repr=False)
    transport: str
    webrtc: bool
    codecs: tuple[str, ...]
    max_contacts: int
    username: str | None  # the agent the phone is assigned to
    mailbox: str | None  # that agent's voicemail box, as "mailbox@context"


@attrs.frozen(slots=True)
class VoicemailBox:
    id: int
    context: str
    mailbox: str
    name: str
    email: str | None
    pin_encrypted: bytes | None = attrs.field(repr=False)
    attach_audio: bool
    delete_after_email: bool
    max_message_seconds: int


@attrs.frozen(slots=True)
class TelephonyConfig:
    trunks: tuple[Trunk, ...]
    dids: tuple[Did, ...]
    queues: tuple[Queue, ...]
    phones: tuple[Phone, ...]
    voicemail_boxes: tuple[VoicemailBox, ...]
    fallback_prompt: str | None  # the `dialplan.fallback_prompt` setting, when set


_TRUNKS = """
SELECT id, name, label, host, port, transport, username, password_encrypted, register,
       from_user, from_domain, match_addresses::text[] AS match_addresses, codecs, number_format,
       dial_prefix, max_concurrent_calls, allowed_prefixes
FROM sip_trunks WHERE enabled ORDER BY name
"""

_DIDS = """
SELECT d.id, d.number, t.name AS trunk_name, t.number_format AS trunk_number_format,
       d.flow_id, f.name AS flow_name
FROM dids d
LEFT JOIN sip_trunks t ON t.id = d.trunk_id
LEFT JOIN flows f ON f.id = d.flow_id
WHERE d.active ORDER BY d.number
"""

_QUEUES = """
SELECT id, name, label, strategy, member_timeout_seconds, retry_seconds, wrapup_seconds,
       max_waiting, max_wait_seconds, overflow_flow_id, music_class, announce_position,
       announce_holdtime, periodic_announce, periodic_announce_frequency, service_level_seconds
FROM queues ORDER BY name
"""

_MEMBERS = """
SELECT m.queue_id, m.user_id, u.username, m.penalty, p.endpoint
FROM queue_members m
JOIN users u ON u.id = m.user_id
LEFT JOIN phone_assignments a ON a.user_id = m.user_id
LEFT JOIN phones p ON p.id = a.phone_id AND p.active
WHERE u.is_active
ORDER BY m.queue_id, lower(u.username)
"""

_PHONES = """
SELECT p.id, p.endpoint, p.label, p.extension, p.password_encrypted, p.transport, p.webrtc,
       p.codecs, p.max_contacts, u.username,
       (SELECT v.mailbox || '@' || v.context FROM voicemail_boxes v
        WHERE v.user_id = u.id AND v.active ORDER BY v.context, v.mailbox LIMIT 1) AS mailbox
FROM phones p
LEFT JOIN phone_assignments a ON a.phone_id = p.id
LEFT JOIN users u ON u.id = a.user_id AND u.is_active
WHERE p.active ORDER BY p.endpoint
"""

_VOICEMAIL_BOXES = """
SELECT id, context, mailbox, name, email, pin_encrypted, attach_audio, delete_after_email,
       max_message_seconds
FROM voicemail_boxes WHERE active ORDER BY context, mailbox
"""

_FALLBACK_PROMPT = """
SELECT value #>> '{}' FROM settings WHERE key = $1 AND jsonb_typeof(value) = 'string'
"""


def _tupled(row: asyncpg.Record, *array_columns: str) -> dict[str, object]:
    values = dict(row)
    for column in array_columns:
        values[column] = tuple(values[column])
    return values


async def load_telephony_config(conn: asyncpg.Connection) -> TelephonyConfig:
    """Everything the Asterisk configuration is rendered from, sorted so output is stable.

    Disabled trunks and inactive DIDs, phones, mailboxes and users are left out: Asterisk should
    not know about what the admin switched off.
    """
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        trunks = [
            Trunk(**_tupled(r, "match_addresses", "codecs", "allowed_prefixes"))
            for r in await conn.fetch(_TRUNKS)
        ]
        dids = [Did(**dict(r)) for r in await conn.fetch(_DIDS)]
        members: dict[int, list[QueueMember]] = {}
        for r in await conn.fetch(_MEMBERS):
            values = dict(r)
            members.setdefault(values.pop("queue_id"), []).append(QueueMember(**values))
        queues = [
            Queue(**dict(r), members=tuple(members.get(r["id"], ())))
            for r in await conn.fetch(_QUEUES)
        ]
        phones = [Phone(**_tupled(r, "codecs")) for r in await conn.fetch(_PHONES)]
        boxes = [VoicemailBox(**dict(r)) for r in await conn.fetch(_VOICEMAIL_BOXES)]
        fallback_prompt = await conn.fetchval(_FALLBACK_PROMPT, FALLBACK_PROMPT_SETTING)
    return TelephonyConfig(
        trunks=tuple(trunks),
        dids=tuple(dids),
        queues=tuple(queues),
        phones=tuple(phones),
        voicemail_boxes=tuple(boxes),
        fallback_prompt=fallback_prompt,
    )
