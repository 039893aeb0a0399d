"""Groups: ``/api/v1/groups``. Admins write, supervisors read.

A group's members and campaigns are id lists on the group (``member_ids``, ``campaign_ids``);
the same memberships show on each user as ``group_ids``, and either side's change moves both
sides' versions. A group still worked by a campaign cannot be deleted: the 409 names the
campaigns; unassign it from them first.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.db import groups as db
from callcore.web.api.etags import check_version, if_match_tags, require_if_match
from callcore.web.api.openapi import OPENAPI
from callcore.web.api.pagination import Filter, SortKey
from callcore.web.api.problems import ProblemError
from callcore.web.api.resources import Resource, jsonable, read_write_roles
from callcore.web.api.users import (
    ID_SCHEMA,
    READ_ONLY,
    SEARCH_SCHEMA,
    Condition,
    audit_change,
    check_links,
    ids_schema,
    like_pattern,
    list_page,
    not_found,
    patched_input,
    replaced_input,
    respond,
    row_id,
    save_links,
    validated_input,
    write_transaction,
)
from callcore.web.api.validation import read_body
from callcore.web.auth import requires
from callcore.web.keys import RUNTIME

GROUP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Group",
    "description": "A team of users, assigned to campaigns as a whole.",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "id": READ_ONLY["id"],
        "name": {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"\S"},
        "description": {"type": "string", "maxLength": 1000, "default": ""},
        "member_ids": ids_schema("The users in the group."),
        "campaign_ids": ids_schema("The campaigns the group's members work."),
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
}

GROUPS = Resource(
    name="groups",
    entity="group",
    table="groups",
    schema=GROUP_SCHEMA,
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
        "member_id": Filter("member_id", ID_SCHEMA),
    },
    label_field="name",
)
_GROUP_LINKS = {"member_ids": db.GROUP_MEMBERS, "campaign_ids": db.GROUP_CAMPAIGNS}
_UNIQUE = {"groups_name_key": "name"}
GROUP_CONDITIONS: dict[str, Condition] = {
    "q": lambda p, v: (
        f"(g.name ILIKE {p(like_pattern(v))} OR g.description ILIKE {p(like_pattern(v))})"
    ),
    "member_id": lambda p, v: (
        f"EXISTS (SELECT FROM group_members gm WHERE gm.group_id = g.id AND gm.user_id = {p(v)})"
    ),
}


async def _group_row(conn: asyncpg.Connection, group_id: int, *, lock: bool = False) -> dict:
    row = await db.get_group(conn, group_id, lock=lock)
    if row is None:
        raise not_found("group", group_id)
    return jsonable(row)


@requires("admin", "supervisor")
async def list_groups(request: web.Request) -> web.Response:
    return await list_page(request, GROUPS, db.list_groups, GROUP_CONDITIONS)


@requires("admin", "supervisor")
async def get_group(request: web.Request) -> web.Response:
    group_id = row_id(request, "group")
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        return respond(await _group_row(conn, group_id))


@requires("admin")
async def create_group(request: web.Request) -> web.Response:
    values = validated_input(await read_body(request), GROUPS)
    async with write_transaction(request, _UNIQUE) as write:
        await check_links(write.conn, values, _GROUP_LINKS)
        group_id = await db.insert_group(
            write.conn, name=values["name"], description=values["description"]
        )
        await save_links(write, group_id, _GROUP_LINKS, None, values)
        after = await _group_row(write.conn, group_id)
        await audit_change(write, request, "create", "group", group_id, None, after)
    return respond(after, HTTPStatus.CREATED, f"{GROUPS.path}/{group_id}")


async def _edit(request: web.Request, new_values: Callable[[Any], Any]) -> web.Response:
    group_id = row_id(request, "group")
    async with write_transaction(request, _UNIQUE) as write:
        conn = write.conn
        before = await _group_row(conn, group_id, lock=True)
        tags = if_match_tags(request)
        values = new_values(before)
        check_version(tags, before["version"])
        await check_links(conn, values, _GROUP_LINKS)
        columns = {k: values[k] for k in ("name", "description") if values[k] != before[k]}
        await db.update_group(conn, group_id, columns)
        links = await save_links(write, group_id, _GROUP_LINKS, before, values)
        if links and not columns:
            await db.touch(conn, "groups", [group_id])
        changed = sorted([*columns, *links])
        if changed:
            await audit_change(
                write,
                request,
                "update",
                "group",
                group_id,
                {k: before[k] for k in changed},
                {k: values[k] for k in changed},
            )
        after = await _group_row(conn, group_id)
    return respond(after)


@requires("admin")
async def update_group(request: web.Request) -> web.Response:
    return await _edit(request, await patched_input(request, GROUPS))


@requires("admin")
async def replace_group(request: web.Request) -> web.Response:
    return await _edit(request, await replaced_input(request, GROUPS))


@requires("admin")
async def delete_group(request: web.Request) -> web.Response:
    group_id = row_id(request, "group")
    async with write_transaction(request, _UNIQUE) as write:
        before = await _group_row(write.conn, group_id, lock=True)
        require_if_match(request, before["version"])
        campaigns = await db.campaigns_using(write.conn, group_id)
        if campaigns:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"Group {before['name']!r} cannot be deleted: it is still used by "
                f"campaigns ({', '.join(campaigns)}).",
            )
        await db.delete_group(write.conn, group_id)
        await audit_change(write, request, "delete", "group", group_id, before, None)
    return web.Response(status=HTTPStatus.NO_CONTENT)


def setup_groups_api(app: web.Application) -> None:
    """Add the groups routes and their OpenAPI description."""
    app.router.add_get(GROUPS.path, list_groups, name="api.groups.list")
    app.router.add_post(GROUPS.path, create_group, name="api.groups.create")
    app.router.add_get(GROUPS.item_path, get_group, name="api.groups.get")
    app.router.add_put(GROUPS.item_path, replace_group, name="api.groups.replace")
    app.router.add_patch(GROUPS.item_path, update_group, name="api.groups.update")
    app.router.add_delete(GROUPS.item_path, delete_group, name="api.groups.delete")
    app[OPENAPI].resources.append(GROUPS)
