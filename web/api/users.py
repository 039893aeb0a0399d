"""Users: ``/api/v1/users`` and ``/api/v1/users/{id}/password``.

Admins write; supervisors read every user; an agent reads only their own row (another id is a
404, so existence does not leak). A user's groups and campaigns are id lists on the user itself.

Rights go through :mod:`callcore.auth.service`: a role change is ``set_role``, disabling or
enabling is ``set_active`` and a password reset is ``reset_password``, each ending the user's
sessions and writing its own audit row in the write's transaction (so the last active admin can
neither be demoted nor disabled, by the same rule everywhere). The other fields are one
``update`` audit row with the changed fields before and after. The generated password of a new
user or of a reset is in that one response and nowhere else: only its hash is stored, and the
audit log never sees it.

A user with history (calls, sessions, audit entries as actor...) cannot be deleted: the 409 names
what refers to them; disable them instead.

The schema pieces here (:data:`READ_ONLY`, :func:`ids_schema`...) serve the other resources too;
so do, for the endpoints written by hand, :func:`write_transaction` and the helpers of
:mod:`callcore.web.api.resources` this module offers under their old names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.auth import service
from callcore.auth.passwords import generate_password, hash_password
from callcore.auth.principal import Principal
from callcore.config import LANGUAGES
from callcore.db import users as db
from callcore.db.groups import USER_CAMPAIGNS, USER_GROUPS
from callcore.db.users import ROLES
from callcore.errors import ValidationError
from callcore.web.api.etags import IF_MATCH_PATTERN, require_if_match
from callcore.web.api.openapi import document_operation, problem_responses
from callcore.web.api.pagination import Filter, Params
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import Condition as Condition
from callcore.web.api.resources import Fetch as Fetch
from callcore.web.api.resources import (
    Resource,
    WriteContext,
    fetch_row,
    merge_patch,
    read_write_roles,
    register_resource,
    sortable_by,
)
from callcore.web.api.resources import list_page as list_page
from callcore.web.api.resources import query_page as query_page
from callcore.web.api.validation import MAX_ID, read_body, validate
from callcore.web.api.writes import Write as Write
from callcore.web.api.writes import audit_change as audit_change
from callcore.web.api.writes import named_conflict, read_patch, transaction
from callcore.web.api.writes import not_found as not_found
from callcore.web.api.writes import respond as respond
from callcore.web.api.writes import row_id as row_id
from callcore.web.auth import PRINCIPAL, requires

ID_SCHEMA: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
MAX_LINKS = 1000


def ids_schema(description: str) -> dict[str, Any]:
    """An id list property: each id once, every listed row must exist (else 422)."""
    return {
        "type": "array",
        "items": ID_SCHEMA,
        "uniqueItems": True,
        "maxItems": MAX_LINKS,
        "default": [],
        "description": description,
    }


READ_ONLY: dict[str, Any] = {
    "id": {**ID_SCHEMA, "readOnly": True},
    "version": {"type": "integer", "readOnly": True},
    "created_at": {"type": "string", "format": "date-time", "readOnly": True},
    "updated_at": {"type": "string", "format": "date-time", "readOnly": True},
}
SEARCH_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 100,
    "description": "Text the name contains (case-insensitive).",
}

USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "User",
    "description": "Someone who logs in. The password is never served; see POST /users and "
    "/users/{id}/password.",
    "required": ["username", "role"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "username": {
            "type": "string",
            "pattern": r"^\S{1,64}$",
            "description": "Login name: 1-64 characters, no spaces, unique ignoring case.",
        },
        "display_name": {"type": "string", "maxLength": 200, "default": ""},
        "email": {
            "type": ["string", "null"],
            "format": "email",
            "maxLength": 254,
            "default": None,
        },
        "role": {"type": "string", "enum": list(ROLES)},
        "language": {"type": "string", "enum": list(LANGUAGES), "default": "fr"},
        "is_active": {
            "type": "boolean",
            "default": True,
            "description": "A disabled user cannot log in; their sessions end at once.",
        },
        "last_login_at": {"type": ["string", "null"], "format": "date-time", "readOnly": True},
        "group_ids": ids_schema("The groups the user belongs to."),
        "campaign_ids": ids_schema("Campaigns the user is assigned to individually."),
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
}


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE, with the user's own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


USER_CONDITIONS: dict[str, Condition] = {
    "q": lambda p, v: (
        f"(u.username ILIKE {p(like_pattern(v))} OR u.display_name ILIKE {p(like_pattern(v))} "
        f"OR coalesce(u.email, '') ILIKE {p(like_pattern(v))})"
    ),
    "role": lambda p, v: f"u.role = {p(v)}",
    "is_active": lambda p, v: f"u.is_active = {p(v)}",
    "group_id": lambda p, v: (
        f"EXISTS (SELECT FROM group_members gm WHERE gm.user_id = u.id AND gm.group_id = {p(v)})"
    ),
}
RIGHTS = ("role", "is_active")
"""The fields that carry rights: changed through the auth service, never by a plain update."""


def write_transaction(
    request: web.Request, unique_fields: Mapping[str, str]
) -> AbstractAsyncContextManager[Write]:
    """One transaction; a unique violation on a constraint of ``unique_fields`` (name -> field)
    is a 409 naming the field, a row referred to that went away meanwhile a 409 too; the audit
    entries go on the bus after the commit."""
    return transaction(request, lambda error: named_conflict(error, unique_fields))


def validated_input(body: Any, resource: Resource) -> dict[str, Any]:
    """A POST/PUT body with the schema's defaults for what it omits, validated; id lists
    sorted, as the representation serves them (for endpoints written by hand)."""
    document = {**resource.defaults, **body} if isinstance(body, dict) else body
    validate(document, resource.input_schema)
    return {k: sorted(v) if isinstance(v, list) else v for k, v in document.items()}


async def patched_input(request: web.Request, resource: Resource) -> Callable[[Any], Any]:
    """Read a PATCH body (an RFC 7396 merge patch) and return how it applies to a row."""
    patch = await read_patch(request)

    def merged(before: Mapping[str, Any]) -> dict[str, Any]:
        current = {k: before[k] for k in resource.writable}
        return validated_input(merge_patch(current, patch), resource)

    return merged


async def replaced_input(request: web.Request, resource: Resource) -> Callable[[Any], Any]:
    """Read a PUT body: the whole object, omitted fields back to their defaults."""
    values = validated_input(await read_body(request), resource)
    return lambda before: values


def _own_row(principal: Principal, params: Params) -> str | None:
    """An agent reads only their own user; staff read everyone."""
    return f"u.id = {params(principal.user_id)}" if principal.role == "agent" else None


async def _before_write(ctx: WriteContext) -> Mapping[str, Any] | None:
    """A new user gets a generated password (in the answer only; its hash is stored); rights
    wait for :func:`_change_rights`; a user is deleted only without history."""
    if ctx.operation == "delete":
        await _refuse_deletion(ctx)
        return None
    assert ctx.values is not None
    if ctx.operation == "create":
        password = generate_password()
        ctx.answer["password"] = password
        return {**ctx.values, "password_hash": hash_password(password)}
    return {k: v for k, v in ctx.values.items() if k not in RIGHTS}


async def _refuse_deletion(ctx: WriteContext) -> None:
    user = ctx.before or {}
    if user["id"] == ctx.principal.user_id:
        raise ProblemError(HTTPStatus.CONFLICT, detail="You cannot delete your own account.")
    history = await db.user_history(ctx.conn, user["id"])
    if history:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"User {user['username']!r} cannot be deleted: it has history "
            f"({', '.join(history)}). Disable it instead.",
            history=history,
        )


async def _change_rights(ctx: WriteContext) -> None:
    """After an edit's other fields: role and active flag through the auth service, which ends
    the user's sessions and keeps the last active admin, each with its own audit entry (a
    creation sets them directly: the new user has no session yet)."""
    before, values = ctx.before, ctx.values
    if before is None or values is None:
        return
    user_id = before["id"]
    for field, argument, change in (
        ("role", "role", service.set_role),
        ("is_active", "active", service.set_active),
    ):
        if values[field] == before[field]:
            continue
        try:
            await change(
                ctx.conn,
                actor=ctx.principal,
                user_id=user_id,
                ip=ctx.request.remote,
                **{argument: values[field]},
            )
        except ValidationError as refused:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"{str(refused)[:1].upper()}{str(refused)[1:]}.",
                errors=[field_error(f"/{field}", f"/{field}: {refused}")],
            ) from None
        ctx.audit_ids.append(await _service_entry(ctx.conn, user_id))


async def _service_entry(conn: asyncpg.Connection, user_id: int) -> int:
    """The audit row the service just wrote about the user: the newest one, since the user's
    row is locked by this transaction until it commits."""
    return await conn.fetchval(
        "SELECT id FROM audit_log WHERE entity_type = 'user' AND entity_id = $1 "
        "ORDER BY at DESC, id DESC LIMIT 1",
        str(user_id),
    )


USERS = Resource(
    name="users",
    entity="user",
    table="users",
    alias="u",
    schema=USER_SCHEMA,
    roles={
        **read_write_roles(read=("admin", "supervisor"), write=("admin",)),
        "get": ("admin", "supervisor", "agent"),
    },
    sortable=sortable_by("username", "display_name", "role"),
    default_sort="username",
    filterable={
        "q": Filter("q", SEARCH_SCHEMA),
        "role": Filter("role", USER_SCHEMA["properties"]["role"]),
        "is_active": Filter("is_active", {"type": "boolean"}),
        "group_id": Filter("group_id", ID_SCHEMA),
    },
    conditions=USER_CONDITIONS,
    label_field="username",
    scope=_own_row,
    links=(USER_GROUPS, USER_CAMPAIGNS),
    before_write=_before_write,
    after_write=_change_rights,
    unique={"users_username_key": "username"},
    audit_changes=True,
)


@requires("admin")
async def reset_user_password(request: web.Request) -> web.Response:
    user_id = row_id(request, "user")
    async with write_transaction(request, USERS.unique) as write:
        before = await fetch_row(write.conn, USERS, user_id, lock=True)
        if before is None:
            raise not_found("user", user_id)
        require_if_match(request, before["version"])
        password = await service.reset_password(
            write.conn, actor=request[PRINCIPAL], user_id=user_id, ip=request.remote
        )
        write.audit_ids.append(await _service_entry(write.conn, user_id))
        after = await fetch_row(write.conn, USERS, user_id)
    assert after is not None
    return respond({**after, "password": password})


def created_schema(resource: Resource, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The representation plus the fields only a creating answer carries."""
    schema = dict(resource.representation_schema)
    schema["properties"] = {**schema["properties"], **extra}
    schema["required"] = [*schema["required"], *extra]
    return schema


_PASSWORD = {
    "type": "string",
    "minLength": 16,
    "description": "The generated password: shown in this answer only, never again.",
}
_WITH_PASSWORD = created_schema(USERS, {"password": _PASSWORD})


def _document(app: web.Application) -> None:
    """What the resource's own description cannot say: the password in two answers."""
    with_password = {"application/json": {"schema": _WITH_PASSWORD}}
    etag_header = {"ETag": {"required": True, "schema": {"type": "string"}}}
    document_operation(
        app,
        "post",
        USERS.path,
        {
            "operationId": "create_users",
            "summary": "Create a user; the answer holds the generated password, once",
            "tags": [USERS.name],
            "x-roles": ["admin"],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/UserInput"}}
                },
            },
            "responses": {
                "201": {
                    "description": "Created, with its password.",
                    "headers": {
                        **etag_header,
                        "Location": {"required": True, "schema": {"type": "string"}},
                    },
                    "content": with_password,
                },
                **problem_responses(400, 401, 403, 409, 413, 415, 422, 500),
            },
        },
    )
    document_operation(
        app,
        "post",
        f"{USERS.item_path}/password",
        {
            "operationId": "reset_user_password",
            "summary": "Give the user a new generated password (their sessions end)",
            "tags": [USERS.name],
            "x-roles": ["admin"],
            "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": ID_SCHEMA},
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string", "pattern": IF_MATCH_PATTERN},
                    "description": "The user's ETag: 428 without it, 412 when stale.",
                },
            ],
            "responses": {
                "200": {
                    "description": "The user and their new password, shown once.",
                    "headers": etag_header,
                    "content": with_password,
                },
                **problem_responses(400, 401, 403, 404, 412, 428, 500),
            },
        },
    )


def setup_users_api(app: web.Application) -> None:
    """Add the users routes and their OpenAPI description."""
    register_resource(app, USERS)
    app.router.add_post(
        f"{USERS.item_path}/password", reset_user_password, name="api.users.password"
    )
    _document(app)
