"""Call queues: ``/api/v1/queues``, what the dialplan renders into ``queues.conf``.

Admins write, supervisors read, agents are refused. A queue's members are a map on the queue
itself, user id (as a string: JSON keys are strings) to penalty, ``{"12": 0, "15": 5}``: a PUT
gives the whole map, and a PATCH merges into it as RFC 7396 says (``{"members": {"15": null}}``
removes one member, ``{"members": {"17": 2}}`` adds one), which an array could not do. Members
must be agents or supervisors; a change of members moves the queue's version like any field.

Every text that ends up in ``queues.conf`` or ``extensions.conf`` is held here to the patterns
the renderer accepts, so a saved queue always renders. A queue campaigns use, or that calls went
through, cannot be deleted (the 409 names them): it stays, as their history refers to it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.web.api.etags import check_version, if_match_tags, require_if_match
from callcore.web.api.openapi import OPENAPI
from callcore.web.api.pagination import Filter, SortKey
from callcore.web.api.problems import FieldError, ProblemError, field_error
from callcore.web.api.resources import Resource, jsonable, read_write_roles
from callcore.web.api.users import (
    ID_SCHEMA,
    MAX_LINKS,
    READ_ONLY,
    SEARCH_SCHEMA,
    Condition,
    Write,
    audit_change,
    like_pattern,
    list_page,
    not_found,
    patched_input,
    replaced_input,
    respond,
    row_id,
    validated_input,
    write_transaction,
)
from callcore.web.api.validation import read_body
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

STRATEGIES = (
    "ringall",
    "leastrecent",
    "fewestcalls",
    "random",
    "rrmemory",
    "rrordered",
    "linear",
    "wrandom",
)
"""Asterisk's ``strategy =`` values, as the ``queues`` table's check allows them."""

MEMBER_ROLES = ("agent", "supervisor")
"""Who may answer a queue: admins configure, they do not take calls."""

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
MAX_PENALTY = 100
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
# The renderer's `ident` filter: what `musicclass =` may print.
_MUSIC_CLASS_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
# The renderer's `sound` filter and the table's check: what `periodic-announce =` may print.
_SOUNDS_PATTERN = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*(&[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*)*$"
# A user id as a JSON key: 1 to 18 digits always fits a bigint.
_USER_KEY_PATTERN = r"^[1-9][0-9]{0,17}$"


def _seconds(low: int, high: int, default: int | None, description: str) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": low,
        "maximum": high,
        "default": default,
        "description": description,
    }


QUEUE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Queue",
    "description": "An Asterisk call queue: how waiting callers are offered to its members.",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "name": {
            "type": "string",
            "pattern": NAME_PATTERN,
            "description": "Asterisk queue name: lowercase letters, digits, _ and -.",
        },
        "label": {"type": "string", "maxLength": 200, "pattern": _ONE_LINE, "default": ""},
        "strategy": {
            "type": "string",
            "enum": list(STRATEGIES),
            "default": "rrmemory",
            "description": "How a caller is offered to the members (Asterisk's strategy).",
        },
        "member_timeout_seconds": _seconds(1, 300, 15, "How long a member's phone rings."),
        "retry_seconds": _seconds(0, 300, 5, "Pause before ringing the members again."),
        "wrapup_seconds": _seconds(
            0, 3600, 10, "Rest a member gets after a call before the next one."
        ),
        "max_waiting": {
            "type": "integer",
            "minimum": 0,
            "maximum": 100000,
            "default": 0,
            "description": "Callers allowed to wait at once; 0: no limit.",
        },
        "max_wait_seconds": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": 86400,
            "default": None,
            "description": "Longest wait before the caller overflows; null: no limit.",
        },
        "overflow_flow_id": {
            "type": ["integer", "null"],
            "minimum": 1,
            "maximum": ID_SCHEMA["maximum"],
            "default": None,
            "description": "The IVR flow callers go to when they overflow; null: the fallback.",
        },
        "music_class": {
            "type": "string",
            "pattern": _MUSIC_CLASS_PATTERN,
            "default": "default",
            "description": "Asterisk music-on-hold class played while waiting.",
        },
        "announce_position": {
            "type": "boolean",
            "default": False,
            "description": "Tell waiting callers their position in the queue.",
        },
        "announce_holdtime": {
            "type": "boolean",
            "default": False,
            "description": "Tell waiting callers their expected hold time.",
        },
        "periodic_announce": {
            "type": ["string", "null"],
            "maxLength": 500,
            "pattern": _SOUNDS_PATTERN,
            "default": None,
            "description": "Asterisk sounds played to waiting callers at intervals, joined by "
            "& (e.g. queue-periodic-announce&custom/promo); null: none.",
        },
        "periodic_announce_frequency": {
            "type": ["integer", "null"],
            "minimum": 15,
            "maximum": 3600,
            "default": None,
            "description": "Seconds between periodic announcements; set exactly when "
            "periodic_announce is.",
        },
        "service_level_seconds": _seconds(
            1, 3600, 20, "Target: calls answered within this many seconds count as in service."
        ),
        "members": {
            "type": "object",
            "propertyNames": {"pattern": _USER_KEY_PATTERN},
            "additionalProperties": {"type": "integer", "minimum": 0, "maximum": MAX_PENALTY},
            "maxProperties": MAX_LINKS,
            "default": {},
            "description": "User id -> penalty (0-100; lower is offered calls first). Members "
            "are agents or supervisors.",
        },
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
    # The table's queues_periodic_announce_pair: an announcement and its frequency go together.
    "if": {
        "properties": {"periodic_announce": {"type": "string"}},
        "required": ["periodic_announce"],
    },
    "then": {
        "required": ["periodic_announce_frequency"],
        "properties": {
            "periodic_announce_frequency": {
                "type": "integer",
                "x-message": "a periodic announcement needs its frequency",
            }
        },
    },
    "else": {
        "properties": {
            "periodic_announce_frequency": {
                "type": "null",
                "x-message": "no periodic announcement to repeat",
            }
        },
    },
}

QUEUES = Resource(
    name="queues",
    entity="queue",
    table="queues",
    schema=QUEUE_SCHEMA,
    roles=read_write_roles(read=("admin", "supervisor"), write=("admin",)),
    sortable={
        "id": SortKey("id", "bigint"),
        "name": SortKey("name", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    },
    default_sort="name",
    filterable={
        "q": Filter("q", SEARCH_SCHEMA),
        "strategy": Filter("strategy", {"type": "string", "enum": list(STRATEGIES)}),
        "member_id": Filter("member_id", ID_SCHEMA),
    },
    label_field="name",
)

COLUMNS = tuple(name for name in QUEUE_SCHEMA["properties"] if name not in (*READ_ONLY, "members"))
"""The queue's own writable columns (members live in ``queue_members``)."""

_UNIQUE = {"queues_name_key": "name"}
_SELECT = (
    f"SELECT q.id, {', '.join('q.' + column for column in COLUMNS)}, "
    "(SELECT coalesce(jsonb_object_agg(m.user_id::text, m.penalty), '{}'::jsonb) "
    "FROM queue_members m WHERE m.queue_id = q.id) AS members, "
    "q.version, q.created_at, q.updated_at FROM queues q"
)
QUEUE_CONDITIONS: dict[str, Condition] = {
    "q": lambda p, v: f"(q.name ILIKE {p(like_pattern(v))} OR q.label ILIKE {p(like_pattern(v))})",
    "strategy": lambda p, v: f"q.strategy = {p(v)}",
    "member_id": lambda p, v: (
        f"EXISTS (SELECT FROM queue_members m WHERE m.queue_id = q.id AND m.user_id = {p(v)})"
    ),
}
_REFERENCES = (
    ("campaigns", "SELECT name FROM campaigns WHERE queue_id = $1 ORDER BY name"),
    ("alert rules", "SELECT name FROM alert_rules WHERE queue_id = $1 ORDER BY name"),
    (
        "voicemail boxes",
        "SELECT mailbox || '@' || context FROM voicemail_boxes WHERE queue_id = $1 ORDER BY 1",
    ),
    (
        "calls",
        "SELECT count(*) || ' call(s), kept in the history' FROM calls WHERE queue_id = $1 "
        "HAVING count(*) > 0",
    ),
)
"""What keeps a queue from being deleted: each query names the referrers of queue ``$1``."""


async def fetch_queues(
    conn: asyncpg.Connection, *, where: str, args: Sequence[Any], order: str, limit: int
) -> list[dict[str, Any]]:
    """One page of queues with their members; ``where`` and ``order`` come from allowlists,
    every value bound in ``args``."""
    rows = await conn.fetch(f"{_SELECT} WHERE {where} ORDER BY {order} LIMIT {limit:d}", *args)
    return [dict(row) for row in rows]


async def get_queue_row(
    conn: asyncpg.Connection, queue_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The queue as the API serves it, members included; ``lock`` holds it until the
    transaction ends."""
    row = await conn.fetchrow(
        f"{_SELECT} WHERE q.id = $1{' FOR UPDATE OF q' if lock else ''}", queue_id
    )
    return None if row is None else jsonable(row)


async def _queue_row(conn: asyncpg.Connection, queue_id: int, *, lock: bool = False) -> dict:
    row = await get_queue_row(conn, queue_id, lock=lock)
    if row is None:
        raise not_found("queue", queue_id)
    return row


async def _check_refs(conn: asyncpg.Connection, values: Mapping[str, Any]) -> None:
    """422 naming each member who is not a user allowed to answer, and a missing flow."""
    errors: list[FieldError] = []
    flow_id = values["overflow_flow_id"]
    if flow_id is not None and not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM flows WHERE id = $1)", flow_id
    ):
        errors.append(field_error("/overflow_flow_id", f"/overflow_flow_id: no flow {flow_id}"))
    keys = sorted(values["members"], key=int)
    users = {
        row["id"]: row
        for row in await conn.fetch(
            "SELECT id, username, role FROM users WHERE id = ANY($1::bigint[])",
            [int(key) for key in keys],
        )
    }
    for key in keys:
        user = users.get(int(key))
        pointer = f"/members/{key}"
        if user is None:
            errors.append(field_error(pointer, f"{pointer}: no user {key}"))
        elif user["role"] not in MEMBER_ROLES:
            errors.append(
                field_error(
                    pointer,
                    f"{pointer}: {user['username']!r} is an {user['role']}; only agents and "
                    "supervisors answer queues",
                )
            )
    if errors:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="The queue refers to something it cannot use.",
            errors=errors,
        )


async def _save_members(
    conn: asyncpg.Connection, queue_id: int, members: Mapping[str, int]
) -> None:
    """Make ``members`` the queue's whole membership; unchanged rows are left alone."""
    ids = [int(key) for key in members]
    penalties = list(members.values())
    await conn.execute(
        "DELETE FROM queue_members WHERE queue_id = $1 AND NOT user_id = ANY($2::bigint[])",
        queue_id,
        ids,
    )
    await conn.execute(
        "INSERT INTO queue_members (queue_id, user_id, penalty) "
        "SELECT $1, u, p FROM unnest($2::bigint[], $3::integer[]) AS t (u, p) "
        "ON CONFLICT (queue_id, user_id) DO UPDATE SET penalty = excluded.penalty "
        "WHERE queue_members.penalty <> excluded.penalty",
        queue_id,
        ids,
        penalties,
    )


async def _write_columns(
    conn: asyncpg.Connection, queue_id: int, changes: Mapping[str, Any]
) -> None:
    """Set the changed columns (names from :data:`COLUMNS`), or only bump the version when
    just the members changed."""
    assignments = [f"{column} = ${n}" for n, column in enumerate(changes, start=2)]
    assignments = assignments or ["updated_at = now()"]
    await conn.execute(
        f"UPDATE queues SET {', '.join(assignments)} WHERE id = $1", queue_id, *changes.values()
    )


@requires("admin", "supervisor")
async def list_queues(request: web.Request) -> web.Response:
    return await list_page(request, QUEUES, fetch_queues, QUEUE_CONDITIONS)


@requires("admin", "supervisor")
async def get_queue(request: web.Request) -> web.Response:
    queue_id = row_id(request, "queue")
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        return respond(await _queue_row(conn, queue_id))


@requires("admin")
async def create_queue(request: web.Request) -> web.Response:
    values = validated_input(await read_body(request), QUEUES)
    async with write_transaction(request, _UNIQUE) as write:
        await _check_refs(write.conn, values)
        placeholders = ", ".join(f"${n}" for n in range(1, len(COLUMNS) + 1))
        queue_id = await write.conn.fetchval(
            f"INSERT INTO queues ({', '.join(COLUMNS)}) VALUES ({placeholders}) RETURNING id",
            *(values[column] for column in COLUMNS),
        )
        await _save_members(write.conn, queue_id, values["members"])
        after = await _queue_row(write.conn, queue_id)
        await audit_change(write, request, "create", "queue", queue_id, None, after)
    return respond(after, HTTPStatus.CREATED, f"{QUEUES.path}/{queue_id}")


async def _edit(request: web.Request, new_values: Callable[[Any], Any]) -> web.Response:
    queue_id = row_id(request, "queue")
    async with write_transaction(request, _UNIQUE) as write:
        conn = write.conn
        before = await _queue_row(conn, queue_id, lock=True)
        # A missing If-Match is reported first, a stale one only once the change is valid.
        tags = if_match_tags(request)
        values = new_values(before)
        check_version(tags, before["version"])
        await _check_refs(conn, values)
        changed = [k for k in (*COLUMNS, "members") if values[k] != before[k]]
        if changed:
            await _write_columns(conn, queue_id, {k: values[k] for k in changed if k in COLUMNS})
            await _save_members(conn, queue_id, values["members"])
            await audit_change(
                write,
                request,
                "update",
                "queue",
                queue_id,
                {k: before[k] for k in changed},
                {k: values[k] for k in changed},
            )
        after = await _queue_row(conn, queue_id)
    return respond(after)


@requires("admin")
async def update_queue(request: web.Request) -> web.Response:
    return await _edit(request, await patched_input(request, QUEUES))


@requires("admin")
async def replace_queue(request: web.Request) -> web.Response:
    return await _edit(request, await replaced_input(request, QUEUES))


async def _refuse_if_referenced(write: Write, queue: Mapping[str, Any]) -> None:
    """409 naming the campaigns using the queue and the calls that went through it."""
    found = []
    for what, query in _REFERENCES:
        rows = await write.conn.fetch(f"SELECT * FROM ({query}) AS r LIMIT 6", queue["id"])
        names = [str(name) for (name,) in rows]
        if names:
            shown = ", ".join(names[:5]) + (" and more" if len(names) > 5 else "")
            found.append(f"{what} ({shown})")
    if found:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"Queue {queue['name']!r} cannot be deleted: it is still used by "
            f"{'; '.join(found)}. Keep it (remove its members to stop it taking calls), or "
            "move the campaigns to another queue first.",
        )


@requires("admin")
async def delete_queue(request: web.Request) -> web.Response:
    queue_id = row_id(request, "queue")
    async with write_transaction(request, _UNIQUE) as write:
        before = await _queue_row(write.conn, queue_id, lock=True)
        require_if_match(request, before["version"])
        await _refuse_if_referenced(write, before)
        await write.conn.execute("DELETE FROM queues WHERE id = $1", queue_id)
        await audit_change(write, request, "delete", "queue", queue_id, before, None)
    return web.Response(status=HTTPStatus.NO_CONTENT)


def setup_queues_api(app: web.Application) -> None:
    """Add the queues routes and their OpenAPI description."""
    app.router.add_get(QUEUES.path, list_queues, name="api.queues.list")
    app.router.add_post(QUEUES.path, create_queue, name="api.queues.create")
    app.router.add_get(QUEUES.item_path, get_queue, name="api.queues.get")
    app.router.add_put(QUEUES.item_path, replace_queue, name="api.queues.replace")
    app.router.add_patch(QUEUES.item_path, update_queue, name="api.queues.update")
    app.router.add_delete(QUEUES.item_path, delete_queue, name="api.queues.delete")
    app[OPENAPI].resources.append(QUEUES)
