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

The write helpers here (:func:`write_transaction`, :func:`audit_change`, :func:`list_page`...)
serve every resource whose representation carries link lists, groups included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import asyncpg
import attrs
from aiohttp import web

from callcore import audit
from callcore.audit_events import publish_audit
from callcore.auth import service
from callcore.auth.passwords import generate_password, hash_password
from callcore.config import LANGUAGES
from callcore.db import users as db
from callcore.db.groups import USER_CAMPAIGNS, USER_GROUPS, Link, missing_ids, replace_links, touch
from callcore.db.users import ROLES
from callcore.errors import ValidationError
from callcore.web.api.etags import (
    IF_MATCH_PATTERN,
    check_version,
    etag,
    if_match_tags,
    require_if_match,
)
from callcore.web.api.openapi import OPENAPI, document_operation, problem_responses
from callcore.web.api.pagination import (
    Filter,
    Params,
    SortKey,
    keyset_clause,
    next_cursor,
    parse_list_query,
)
from callcore.web.api.problems import FieldError, ProblemError, field_error
from callcore.web.api.resources import (
    CURSOR_KEY,
    Resource,
    jsonable,
    merge_patch,
    read_write_roles,
)
from callcore.web.api.validation import MAX_ID, read_body, validate
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.keys import RUNTIME

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

USERS = Resource(
    name="users",
    entity="user",
    table="users",
    schema=USER_SCHEMA,
    roles={
        **read_write_roles(read=("admin", "supervisor"), write=("admin",)),
        "get": ("admin", "supervisor", "agent"),
    },
    sortable={
        "id": SortKey("id", "bigint"),
        "username": SortKey("username", "text"),
        "display_name": SortKey("display_name", "text"),
        "role": SortKey("role", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
        "updated_at": SortKey("updated_at", "timestamptz"),
    },
    default_sort="username",
    filterable={
        "q": Filter("q", SEARCH_SCHEMA),
        "role": Filter("role", USER_SCHEMA["properties"]["role"]),
        "is_active": Filter("is_active", {"type": "boolean"}),
        "group_id": Filter("group_id", ID_SCHEMA),
    },
    label_field="username",
)
_USER_LINKS = {"group_ids": USER_GROUPS, "campaign_ids": USER_CAMPAIGNS}
_UNIQUE = {"users_username_key": "username"}


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE, with the user's own wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


Condition = Callable[[Params, Any], str]

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


# --- helpers shared with the groups API ------------------------------------------------------


@attrs.define
class Write:
    """A write in progress: its connection, and the audit rows to announce once committed."""

    conn: asyncpg.Connection
    audit_ids: list[int] = attrs.field(factory=list)


@asynccontextmanager
async def write_transaction(
    request: web.Request, unique_fields: Mapping[str, str]
) -> AsyncIterator[Write]:
    """One transaction; a unique violation on a constraint of ``unique_fields`` is a 409 naming
    the field; the audit entries go on the bus after the commit."""
    runtime = request.app[RUNTIME]
    async with runtime.database.pool.acquire() as conn:
        write = Write(conn)
        try:
            async with conn.transaction():
                yield write
        except asyncpg.UniqueViolationError as error:
            field = unique_fields.get(error.constraint_name or "")
            if field is None:
                raise
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"This {field} is already taken.",
                errors=[field_error(f"/{field}", f"/{field} is already taken")],
            ) from None
        except asyncpg.ForeignKeyViolationError:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail="Something this refers to was deleted meanwhile; reload and try again.",
            ) from None
        for entry_id in write.audit_ids:
            await publish_audit(runtime.bus, conn, entry_id)


async def audit_change(
    write: Write,
    request: web.Request,
    action: str,
    entity_type: str,
    entity_id: int,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
) -> None:
    """Record the change in the audit log, in the write's transaction, by the caller."""
    principal = request[PRINCIPAL]
    write.audit_ids.append(
        await audit.record(
            write.conn,
            actor_id=principal.user_id,
            actor_label=principal.username,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
            ip=request.remote,
        )
    )


def row_id(request: web.Request, entity: str) -> int:
    """The ``{id}`` of the path; anything but a valid id is a 404 like a missing row."""
    raw = request.match_info["id"]
    if raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_ID:
        return int(raw)
    raise ProblemError(HTTPStatus.NOT_FOUND, detail=f"There is no {entity} {raw!r}.")


def not_found(entity: str, entity_id: int) -> ProblemError:
    return ProblemError(HTTPStatus.NOT_FOUND, detail=f"There is no {entity} with id {entity_id}.")


def validated_input(body: Any, resource: Resource) -> dict[str, Any]:
    """A POST/PUT body with the schema's defaults for what it omits, validated; id lists
    sorted, as the representation serves them."""
    document = {**resource.defaults, **body} if isinstance(body, dict) else body
    validate(document, resource.input_schema)
    return {k: sorted(v) if isinstance(v, list) else v for k, v in document.items()}


async def patched_input(request: web.Request, resource: Resource) -> Callable[[Any], Any]:
    """Read a PATCH body (an RFC 7396 merge patch) and return how it applies to a row."""
    patch = await read_body(request)
    if not isinstance(patch, dict):
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="A PATCH body is a JSON object of the fields to change.",
            errors=[field_error("", "the body must be an object")],
        )

    def merged(before: Mapping[str, Any]) -> dict[str, Any]:
        current = {k: before[k] for k in resource.writable}
        return validated_input(merge_patch(current, patch), resource)

    return merged


async def replaced_input(request: web.Request, resource: Resource) -> Callable[[Any], Any]:
    """Read a PUT body: the whole object, omitted fields back to their defaults."""
    values = validated_input(await read_body(request), resource)
    return lambda before: values


async def check_links(
    conn: asyncpg.Connection, values: Mapping[str, Any], links: Mapping[str, Link]
) -> None:
    """422 naming each listed id whose row does not exist."""
    errors: list[FieldError] = []
    for field, link in links.items():
        for missing in await missing_ids(conn, link.other_table, values[field]):
            index = values[field].index(missing)
            errors.append(field_error(f"/{field}/{index}", f"/{field}/{index}: no row {missing}"))
    if errors:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail="Some listed ids name nothing that exists.",
            errors=errors,
        )


async def save_links(
    write: Write,
    owner_id: int,
    links: Mapping[str, Link],
    before: Mapping[str, Any] | None,
    values: Mapping[str, Any],
) -> list[str]:
    """Replace the link lists that changed; the fields changed."""
    changed = [f for f in links if before is None or values[f] != before[f]]
    for field in changed:
        await replace_links(write.conn, links[field], owner_id, values[field])
    return changed


def respond(
    row: Mapping[str, Any], status: int = HTTPStatus.OK, location: str | None = None
) -> web.Response:
    headers = {"ETag": etag(row["version"])}
    if location is not None:
        headers["Location"] = location
    return web.json_response(dict(row), status=status, headers=headers)


Fetch = Callable[..., Awaitable[list[dict[str, Any]]]]


async def query_page(
    request: web.Request, resource: Resource, fetch: Fetch, conditions: Mapping[str, Condition]
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a list (rows as read, and the next cursor): allowlisted filters and sort,
    keyset cursor, bound values. The JSON list and the HTML list pages both read through it."""
    key = request.app[CURSOR_KEY]
    query = parse_list_query(
        request,
        sortable=resource.sortable,
        default_sort=resource.default_sort,
        filterable=resource.filterable,
        key=key,
        scope=resource.name,
    )
    params = Params()
    where = [conditions[spec.column](params, value) for spec, value in query.filters]
    resume, order = keyset_clause(query, params)
    if resume:
        where.append(resume)
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        rows = await fetch(
            conn,
            where=" AND ".join(where) or "TRUE",
            args=params.values,
            order=order,
            limit=query.limit + 1,
        )
    return rows[: query.limit], next_cursor(query, rows, key, resource.name)


async def list_page(
    request: web.Request, resource: Resource, fetch: Fetch, conditions: Mapping[str, Condition]
) -> web.Response:
    rows, cursor = await query_page(request, resource, fetch, conditions)
    return web.json_response({"items": [jsonable(row) for row in rows], "next_cursor": cursor})


def created_schema(resource: Resource, extra: Mapping[str, Any]) -> dict[str, Any]:
    """The representation plus the fields only a creating answer carries."""
    schema = dict(resource.representation_schema)
    schema["properties"] = {**schema["properties"], **extra}
    schema["required"] = [*schema["required"], *extra]
    return schema


# --- users ------------------------------------------------------------------------------------


async def _user_row(conn: asyncpg.Connection, user_id: int, *, lock: bool = False) -> dict:
    row = await db.get_user(conn, user_id, lock=lock)
    if row is None:
        raise not_found("user", user_id)
    return jsonable(row)


async def _service_entry(write: Write, user_id: int) -> None:
    """Announce the audit row the service just wrote about the user: the newest one, since
    the user's row is locked by this transaction until it commits."""
    write.audit_ids.append(
        await write.conn.fetchval(
            "SELECT id FROM audit_log WHERE entity_type = 'user' AND entity_id = $1 "
            "ORDER BY at DESC, id DESC LIMIT 1",
            str(user_id),
        )
    )


@requires("admin", "supervisor")
async def list_users(request: web.Request) -> web.Response:
    return await list_page(request, USERS, db.list_users, USER_CONDITIONS)


@requires("admin", "supervisor", "agent")
async def get_user(request: web.Request) -> web.Response:
    user_id = row_id(request, "user")
    principal = request[PRINCIPAL]
    if principal.role == "agent" and principal.user_id != user_id:
        raise not_found("user", user_id)
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        return respond(await _user_row(conn, user_id))


@requires("admin")
async def create_user(request: web.Request) -> web.Response:
    values = validated_input(await read_body(request), USERS)
    password = generate_password()
    async with write_transaction(request, _UNIQUE) as write:
        await check_links(write.conn, values, _USER_LINKS)
        user_id = await db.insert_user(
            write.conn,
            username=values["username"],
            display_name=values["display_name"],
            email=values["email"],
            role=values["role"],
            language=values["language"],
            is_active=values["is_active"],
            password_hash=hash_password(password),
        )
        await save_links(write, user_id, _USER_LINKS, None, values)
        after = await _user_row(write.conn, user_id)
        await audit_change(write, request, "create", "user", user_id, None, after)
    return respond({**after, "password": password}, HTTPStatus.CREATED, f"{USERS.path}/{user_id}")


async def _edit(request: web.Request, new_values: Callable[[Any], Any]) -> web.Response:
    user_id = row_id(request, "user")
    principal = request[PRINCIPAL]
    async with write_transaction(request, _UNIQUE) as write:
        conn = write.conn
        before = await _user_row(conn, user_id, lock=True)
        # A missing If-Match is reported first, a stale one only once the change is valid.
        tags = if_match_tags(request)
        values = new_values(before)
        check_version(tags, before["version"])
        await check_links(conn, values, _USER_LINKS)
        columns = {k: values[k] for k in db.EDITABLE_COLUMNS if values[k] != before[k]}
        await db.update_user(conn, user_id, columns)
        links = await save_links(write, user_id, _USER_LINKS, before, values)
        if links and not columns:
            await touch(conn, "users", [user_id])
        changed = sorted([*columns, *links])
        if changed:
            await audit_change(
                write,
                request,
                "update",
                "user",
                user_id,
                {k: before[k] for k in changed},
                {k: values[k] for k in changed},
            )
        await _change_rights(write, request, principal, before, values)
        after = await _user_row(conn, user_id)
    return respond(after)


async def _change_rights(
    write: Write,
    request: web.Request,
    principal: Any,
    before: Mapping[str, Any],
    values: Mapping[str, Any],
) -> None:
    """Role and active flag through the auth service: sessions end, the last admin stays."""
    user_id = before["id"]
    field = "role"
    try:
        if values["role"] != before["role"]:
            await service.set_role(
                write.conn, actor=principal, user_id=user_id, role=values["role"], ip=request.remote
            )
            await _service_entry(write, user_id)
        field = "is_active"
        if values["is_active"] != before["is_active"]:
            await service.set_active(
                write.conn,
                actor=principal,
                user_id=user_id,
                active=values["is_active"],
                ip=request.remote,
            )
            await _service_entry(write, user_id)
    except ValidationError as refused:
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"{str(refused)[:1].upper()}{str(refused)[1:]}.",
            errors=[field_error(f"/{field}", f"/{field}: {refused}")],
        ) from None


@requires("admin")
async def update_user(request: web.Request) -> web.Response:
    return await _edit(request, await patched_input(request, USERS))


@requires("admin")
async def replace_user(request: web.Request) -> web.Response:
    return await _edit(request, await replaced_input(request, USERS))


@requires("admin")
async def delete_user(request: web.Request) -> web.Response:
    user_id = row_id(request, "user")
    async with write_transaction(request, _UNIQUE) as write:
        before = await _user_row(write.conn, user_id, lock=True)
        require_if_match(request, before["version"])
        if user_id == request[PRINCIPAL].user_id:
            raise ProblemError(HTTPStatus.CONFLICT, detail="You cannot delete your own account.")
        history = await db.user_history(write.conn, user_id)
        if history:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"User {before['username']!r} cannot be deleted: it has history "
                f"({', '.join(history)}). Disable it instead.",
                history=history,
            )
        await db.delete_user(write.conn, user_id)
        await audit_change(write, request, "delete", "user", user_id, before, None)
    return web.Response(status=HTTPStatus.NO_CONTENT)


@requires("admin")
async def reset_user_password(request: web.Request) -> web.Response:
    user_id = row_id(request, "user")
    async with write_transaction(request, _UNIQUE) as write:
        before = await _user_row(write.conn, user_id, lock=True)
        require_if_match(request, before["version"])
        password = await service.reset_password(
            write.conn, actor=request[PRINCIPAL], user_id=user_id, ip=request.remote
        )
        await _service_entry(write, user_id)
        after = await _user_row(write.conn, user_id)
    return respond({**after, "password": password})


_PASSWORD = {
    "type": "string",
    "minLength": 16,
    "description": "The generated password: shown in this answer only, never again.",
}
_WITH_PASSWORD = created_schema(USERS, {"password": _PASSWORD})


def _document(app: web.Application) -> None:
    app[OPENAPI].resources.append(USERS)
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
    app.router.add_get(USERS.path, list_users, name="api.users.list")
    app.router.add_post(USERS.path, create_user, name="api.users.create")
    app.router.add_get(USERS.item_path, get_user, name="api.users.get")
    app.router.add_put(USERS.item_path, replace_user, name="api.users.replace")
    app.router.add_patch(USERS.item_path, update_user, name="api.users.update")
    app.router.add_delete(USERS.item_path, delete_user, name="api.users.delete")
    app.router.add_post(
        f"{USERS.item_path}/password", reset_user_password, name="api.users.password"
    )
    _document(app)
