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

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.db.links import LinkTable
from callcore.web.api.pagination import Filter
from callcore.web.api.problems import FieldError, ProblemError, field_error
from callcore.web.api.resources import (
    Condition,
    Reference,
    Resource,
    WriteContext,
    fetch_row,
    read_write_roles,
    register_resource,
    select_rows,
    sortable_by,
)
from callcore.web.api.users import ID_SCHEMA, MAX_LINKS, READ_ONLY, SEARCH_SCHEMA, like_pattern

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

QUEUE_CONDITIONS: dict[str, Condition] = {
    "q": lambda p, v: f"(q.name ILIKE {p(like_pattern(v))} OR q.label ILIKE {p(like_pattern(v))})",
    "strategy": lambda p, v: f"q.strategy = {p(v)}",
    "member_id": lambda p, v: (
        f"EXISTS (SELECT FROM queue_members m WHERE m.queue_id = q.id AND m.user_id = {p(v)})"
    ),
}


async def _check_refs(ctx: WriteContext) -> None:
    """Before a write: 422 naming each member who is not a user allowed to answer (missing, or
    an admin), and a missing overflow flow."""
    if ctx.values is None:
        return
    conn, values = ctx.conn, ctx.values
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


QUEUES = Resource(
    name="queues",
    entity="queue",
    table="queues",
    alias="q",
    schema=QUEUE_SCHEMA,
    roles=read_write_roles(read=("admin", "supervisor"), write=("admin",)),
    sortable=sortable_by("name"),
    default_sort="name",
    filterable={
        "q": Filter("q", SEARCH_SCHEMA),
        "strategy": Filter("strategy", {"type": "string", "enum": list(STRATEGIES)}),
        "member_id": Filter("member_id", ID_SCHEMA),
    },
    conditions=QUEUE_CONDITIONS,
    label_field="name",
    links=(LinkTable("members", "queue_members", "queue_id", "user_id", "users", value="penalty"),),
    before_write=_check_refs,
    references=(
        Reference("campaigns", "SELECT name FROM campaigns WHERE queue_id = $1 ORDER BY name"),
        Reference("alert rules", "SELECT name FROM alert_rules WHERE queue_id = $1 ORDER BY name"),
        Reference(
            "voicemail boxes",
            "SELECT mailbox || '@' || context FROM voicemail_boxes WHERE queue_id = $1 ORDER BY 1",
        ),
        Reference(
            "calls",
            "SELECT count(*) || ' call(s), kept in the history' FROM calls WHERE queue_id = $1 "
            "HAVING count(*) > 0",
        ),
    ),
    in_use_hint="Keep it (remove its members to stop it taking calls), or move the campaigns to "
    "another queue first.",
    unique={"queues_name_key": "name"},
    audit_changes=True,
)


async def fetch_queues(
    conn: asyncpg.Connection, *, where: str, args: Sequence[Any], order: str, limit: int
) -> list[dict[str, Any]]:
    """One page of queues with their members; ``where`` and ``order`` come from allowlists,
    every value bound in ``args``."""
    return await select_rows(conn, QUEUES, where=where, args=args, order=order, limit=limit)


async def get_queue_row(
    conn: asyncpg.Connection, queue_id: int, *, lock: bool = False
) -> dict[str, Any] | None:
    """The queue as the API serves it, members included; ``lock`` holds it until the
    transaction ends."""
    return await fetch_row(conn, QUEUES, queue_id, lock=lock)


def setup_queues_api(app: web.Application) -> None:
    """Add the queues routes and their OpenAPI description."""
    register_resource(app, QUEUES)
