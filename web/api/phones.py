"""Agent phones: ``/api/v1/phones``, the PJSIP endpoints agents register with.

Admins write, supervisors read every phone, an agent reads only the phone assigned to them
(another one is a 404, so existence does not leak). The user who uses the phone is ``user_id``
on the phone, stored in ``phone_assignments``: one phone per user and one user per phone, so
assigning a user who already has a phone is a 409 naming that phone — free it first, nothing
moves silently. The SIP password is write-only as on trunks: stored as Fernet ciphertext,
served as ``password_set``, kept when a write omits it, never in the audit trail.

Every field is held to what ``pjsip.conf`` accepts (the dialplan renderer's filters and its
cross-row checks: an endpoint name no trunk uses, a password on every active phone), so a saved
phone always renders. A phone an agent session used stays in that history: deleting it is a
409, deactivate it instead (``active: false``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.web.api.etags import check_version, if_match_tags, require_if_match
from callcore.web.api.openapi import OPENAPI
from callcore.web.api.pagination import Filter, Params, SortKey
from callcore.web.api.problems import FieldError, ProblemError, field_error
from callcore.web.api.resources import Resource, jsonable, merge_patch, read_write_roles
from callcore.web.api.trunks import CODECS
from callcore.web.api.users import (
    ID_SCHEMA,
    READ_ONLY,
    Condition,
    Write,
    audit_change,
    list_page,
    not_found,
    respond,
    row_id,
    write_transaction,
)
from callcore.web.api.validation import read_body, validate
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.keys import RUNTIME

ENDPOINT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TRANSPORTS = ("udp", "tcp", "tls", "wss")
READERS = ("admin", "supervisor", "agent")
WRITERS = ("admin",)

PHONE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Agent phone",
    "description": "A SIP (PJSIP) endpoint an agent's hardware, soft or WebRTC phone registers "
    "as, and the user who uses it.",
    "required": ["endpoint"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "endpoint": {
            "type": "string",
            "pattern": ENDPOINT_PATTERN,
            "description": "PJSIP endpoint and SIP user name: lowercase letters, digits, _ and "
            "-; no trunk may have the same name.",
        },
        "label": {
            "type": "string",
            "maxLength": 200,
            "pattern": r"^[^\x00-\x1f\x7f]*$",
            "default": "",
        },
        "extension": {
            "type": ["string", "null"],
            "pattern": r"^[0-9]{2,8}$",
            "default": None,
            "description": "Internal number other phones dial (2 to 8 digits); null: none.",
        },
        "password": {
            "type": ["string", "null"],
            "minLength": 8,
            "maxLength": 128,
            "pattern": r"^[^\x00-\x1f\x7f]+$",
            "writeOnly": True,
            "description": "Write-only SIP password (8 to 128 characters): omit it to keep the "
            "stored one, null to remove it (an active phone needs one).",
        },
        "password_set": {
            "type": "boolean",
            "readOnly": True,
            "description": "Whether a password is stored (it is never served).",
        },
        "transport": {"type": "string", "enum": list(TRANSPORTS), "default": "udp"},
        "webrtc": {
            "type": "boolean",
            "default": False,
            "description": "A browser (WebRTC) phone; it connects over wss.",
        },
        "codecs": {
            "type": "array",
            "items": {"type": "string", "enum": list(CODECS)},
            "minItems": 1,
            "uniqueItems": True,
            "default": ["alaw", "ulaw"],
            "description": "Codecs offered, in order of preference.",
        },
        "max_contacts": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
        "user_id": {
            **ID_SCHEMA,
            "type": ["integer", "null"],
            "default": None,
            "description": "The user who uses the phone (each user has at most one); null: nobody.",
        },
        "active": {
            "type": "boolean",
            "default": True,
            "description": "An inactive phone is left out of Asterisk's configuration.",
        },
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
    "allOf": [
        {
            "if": {"properties": {"webrtc": {"const": True}}, "required": ["webrtc"]},
            "then": {
                "properties": {
                    "transport": {"const": "wss", "x-message": "a WebRTC phone uses wss"}
                }
            },
        }
    ],
}

PHONES = Resource(
    name="phones",
    entity="phone",
    table="phones",
    schema=PHONE_SCHEMA,
    roles=read_write_roles(read=READERS, write=WRITERS),
    sortable={
        "id": SortKey("id", "bigint"),
        "endpoint": SortKey("endpoint", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    },
    default_sort="endpoint",
    filterable={
        "endpoint": Filter("endpoint", {"type": "string", "pattern": ENDPOINT_PATTERN}),
        "user_id": Filter("user_id", ID_SCHEMA),
        "active": Filter("active", {"type": "boolean"}),
    },
    label_field="endpoint",
)

PHONE_CONDITIONS: dict[str, Condition] = {
    "endpoint": lambda p, v: f"p.endpoint = {p(v)}",
    "user_id": lambda p, v: f"a.user_id = {p(v)}",
    "active": lambda p, v: f"p.active = {p(v)}",
}
COLUMNS = (
    "endpoint",
    "label",
    "extension",
    "transport",
    "webrtc",
    "codecs",
    "max_contacts",
    "active",
)
_UNIQUE = {
    "phones_endpoint_key": "endpoint",
    "phones_extension_key": "extension",
    "phone_assignments_user_id_key": "user_id",
}
SELECT = """
SELECT p.id, p.endpoint, p.label, p.extension, p.password_encrypted IS NOT NULL AS password_set,
       p.transport, p.webrtc, p.codecs, p.max_contacts, a.user_id, p.active, p.version,
       p.created_at, p.updated_at
FROM phones p LEFT JOIN phone_assignments a ON a.phone_id = p.id
"""


def _agent_scope(request: web.Request, params: Params) -> str:
    """An agent sees only their own phone; staff see every one."""
    principal = request[PRINCIPAL]
    if principal.role == "agent":
        return f"a.user_id = {params(principal.user_id)}"
    return "TRUE"


async def phone_row(
    conn: asyncpg.Connection, request: web.Request, phone_id: int, *, lock: bool = False
) -> dict[str, Any]:
    params = Params()
    sql = f"{SELECT} WHERE p.id = {params(phone_id)} AND {_agent_scope(request, params)}"
    row = await conn.fetchrow(sql + (" FOR UPDATE OF p" if lock else ""), *params.values)
    if row is None:
        raise not_found("phone", phone_id)
    return jsonable(row)


def _validated(document: Any) -> dict[str, Any]:
    """A body with the schema's defaults for what it omits, validated (codecs keep their
    order: it is the preference)."""
    if isinstance(document, dict):
        document = {**PHONES.defaults, **document}
    validate(document, PHONES.input_schema)
    return document


async def _check_rules(
    conn: asyncpg.Connection,
    values: Mapping[str, Any],
    before: Mapping[str, Any] | None,
) -> None:
    """What the schema cannot see: the trunks' names, the user's other phone, the password."""
    trunk = await conn.fetchval("SELECT id FROM sip_trunks WHERE name = $1", values["endpoint"])
    if trunk is not None:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"A SIP trunk is already named {values['endpoint']!r}: PJSIP endpoint names "
            "must be unique.",
            errors=[field_error("/endpoint", "/endpoint is a trunk's name")],
        )
    user_id = values["user_id"]
    if user_id is not None and (before is None or before["user_id"] != user_id):
        user = await conn.fetchrow(
            "SELECT u.username, p.endpoint FROM users u "
            "LEFT JOIN phone_assignments a ON a.user_id = u.id "
            "LEFT JOIN phones p ON p.id = a.phone_id WHERE u.id = $1",
            user_id,
        )
        if user is None:
            raise ProblemError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                detail="/user_id refers to something that does not exist.",
                errors=[field_error("/user_id", f"/user_id {user_id} does not exist")],
            )
        if user["endpoint"] is not None:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"User {user['username']!r} already uses phone {user['endpoint']!r}: "
                "free that phone first (one phone per user).",
                errors=[field_error("/user_id", f"/user_id already uses {user['endpoint']!r}")],
            )
    has_password = (
        values["password"] is not None
        if "password" in values
        else before is not None and before["password_set"]
    )
    if values["active"] and not has_password:
        errors: list[FieldError] = [field_error("/password", "an active phone needs a password")]
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="An active phone needs a password, or anyone could register as it.",
            errors=errors,
        )


def _columns(request: web.Request, values: Mapping[str, Any]) -> dict[str, Any]:
    """The phone's own columns to write, the password encrypted when the body gives one."""
    columns = {k: values[k] for k in COLUMNS}
    if "password" in values:
        password = values["password"]
        cipher = request.app[RUNTIME].cipher
        columns["password_encrypted"] = None if password is None else cipher.encrypt(password)
    return columns


async def _assign(conn: asyncpg.Connection, phone_id: int, user_id: int | None) -> None:
    await conn.execute("DELETE FROM phone_assignments WHERE phone_id = $1", phone_id)
    if user_id is not None:
        await conn.execute(
            "INSERT INTO phone_assignments (phone_id, user_id) VALUES ($1, $2)", phone_id, user_id
        )


@requires(*READERS)
async def list_phones(request: web.Request) -> web.Response:
    async def fetch(
        conn: asyncpg.Connection, *, where: str, args: list[Any], order: str, limit: int
    ) -> list[dict[str, Any]]:
        params = Params()
        params.values.extend(args)
        scope = _agent_scope(request, params)
        sql = f"{SELECT} WHERE {where} AND {scope} ORDER BY {order} LIMIT {limit:d}"
        return [dict(row) for row in await conn.fetch(sql, *params.values)]

    return await list_page(request, PHONES, fetch, PHONE_CONDITIONS)


@requires(*READERS)
async def get_phone(request: web.Request) -> web.Response:
    phone_id = row_id(request, "phone")
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        return respond(await phone_row(conn, request, phone_id))


@requires(*WRITERS)
async def create_phone(request: web.Request) -> web.Response:
    values = _validated(await read_body(request))
    async with write_transaction(request, _UNIQUE) as write:
        await _check_rules(write.conn, values, None)
        columns = _columns(request, values)
        params = Params()
        phone_id = await write.conn.fetchval(
            f"INSERT INTO phones ({', '.join(columns)}) "
            f"VALUES ({', '.join(params(v) for v in columns.values())}) RETURNING id",
            *params.values,
        )
        await _assign(write.conn, phone_id, values["user_id"])
        after = await phone_row(write.conn, request, phone_id)
        await audit_change(write, request, "create", "phone", phone_id, None, after)
    return respond(after, HTTPStatus.CREATED, f"{PHONES.path}/{phone_id}")


async def _edit(
    request: web.Request, new_values: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> web.Response:
    phone_id = row_id(request, "phone")
    async with write_transaction(request, _UNIQUE) as write:
        conn = write.conn
        before = await phone_row(conn, request, phone_id, lock=True)
        # A missing If-Match is reported first, a stale one only once the change is valid.
        tags = if_match_tags(request)
        values = new_values(before)
        check_version(tags, before["version"])
        await _check_rules(conn, values, before)
        columns = _columns(request, values)
        if values["user_id"] != before["user_id"]:
            await _assign(conn, phone_id, values["user_id"])
            columns["updated_at"] = datetime.now(UTC)  # the representation changed: new version
        params = Params()
        assignments = ", ".join(f"{k} = {params(v)}" for k, v in columns.items())
        await conn.execute(
            f"UPDATE phones SET {assignments} WHERE id = {params(phone_id)}", *params.values
        )
        after = await phone_row(conn, request, phone_id)
        await _audit_update(write, request, before, after, "password" in values)
    return respond(after)


async def _audit_update(
    write: Write,
    request: web.Request,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    password_written: bool,
) -> None:
    """The changed fields before and after; a new password shows only as ``password_set``
    (redacted by the audit log like every secret-looking key)."""
    changed = [k for k in after if k not in ("version", "updated_at") and after[k] != before[k]]
    if password_written and "password_set" not in changed:
        changed.append("password_set")
    if changed:
        await audit_change(
            write,
            request,
            "update",
            "phone",
            before["id"],
            {k: before[k] for k in changed},
            {k: after[k] for k in changed},
        )


@requires(*WRITERS)
async def replace_phone(request: web.Request) -> web.Response:
    values = _validated(await read_body(request))
    return await _edit(request, lambda before: values)


@requires(*WRITERS)
async def update_phone(request: web.Request) -> web.Response:
    patch = await read_body(request)
    if not isinstance(patch, dict):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="A PATCH body is a JSON object of the fields to change.",
            errors=[field_error("", "the body must be an object")],
        )

    def merged(before: Mapping[str, Any]) -> dict[str, Any]:
        document = merge_patch({k: before[k] for k in PHONES.writable if k in before}, patch)
        # The password is never in `before`: its null (remove it) must be kept, not dropped.
        if "password" in patch and patch["password"] is None:
            document["password"] = None
        return _validated(document)

    return await _edit(request, merged)


@requires(*WRITERS)
async def delete_phone(request: web.Request) -> web.Response:
    phone_id = row_id(request, "phone")
    async with write_transaction(request, _UNIQUE) as write:
        before = await phone_row(write.conn, request, phone_id, lock=True)
        require_if_match(request, before["version"])
        sessions = await write.conn.fetchval(
            "SELECT count(*) FROM agent_sessions WHERE phone_id = $1", phone_id
        )
        if sessions:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"Phone {before['endpoint']!r} cannot be deleted: it is still used by "
                f"agent sessions ({sessions}), whose history names it; deactivate it instead "
                "(active: false).",
            )
        await write.conn.execute("DELETE FROM phones WHERE id = $1", phone_id)
        await audit_change(write, request, "delete", "phone", phone_id, before, None)
    return web.Response(status=HTTPStatus.NO_CONTENT)


def setup_phones_api(app: web.Application) -> None:
    """Add the phone routes and their OpenAPI description."""
    app.router.add_get(PHONES.path, list_phones, name="api.phones.list")
    app.router.add_post(PHONES.path, create_phone, name="api.phones.create")
    app.router.add_get(PHONES.item_path, get_phone, name="api.phones.get")
    app.router.add_put(PHONES.item_path, replace_phone, name="api.phones.replace")
    app.router.add_patch(PHONES.item_path, update_phone, name="api.phones.update")
    app.router.add_delete(PHONES.item_path, delete_phone, name="api.phones.delete")
    app[OPENAPI].resources.append(PHONES)
