"""The "Agents" pages: users and groups, listed, created, edited, disabled or deleted.

The pages are server-rendered; their forms write through the JSON API (``/api/v1/users``,
``/api/v1/groups``) with ``static/admin_users.js``, so the browser gets the API's rules as they
are: If-Match with the version the page was rendered at (a stale page gets the conflict message),
problem+json field errors placed on the form, the generated password shown once. Lists filter and
page with htmx through the same allowlisted, keyset-paged query as the API. Admins edit;
supervisors see the same pages read-only.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import asyncpg
from aiohttp import web

from callcore.config import LANGUAGES
from callcore.db import groups as groups_db
from callcore.db import users as users_db
from callcore.db.users import ROLES
from callcore.web.api.groups import GROUP_CONDITIONS, GROUPS, setup_groups_api
from callcore.web.api.problems import ProblemError
from callcore.web.api.resources import Resource
from callcore.web.api.users import (
    USER_CONDITIONS,
    USERS,
    Condition,
    Fetch,
    query_page,
    setup_users_api,
)
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.i18n import N_
from callcore.web.keys import RUNTIME
from callcore.web.nav import NavEntry, register_nav
from callcore.web.ui import render

STAFF = ("admin", "supervisor")
USERS_URL = "/agents/users"
GROUPS_URL = "/agents/groups"
ROLE_LABELS = {"admin": N_("Administrator"), "supervisor": N_("Supervisor"), "agent": N_("Agent")}
LANGUAGE_LABELS = {"fr": "Français", "en": "English"}
_LIST_PARAMETERS = ("q", "role", "is_active", "cursor")


def _list_request(request: web.Request) -> web.Request:
    """The rows request without its empty fields: an untouched filter input means no filter."""
    query = {k: v for k, v in request.query.items() if k in _LIST_PARAMETERS and v}
    return request.clone(rel_url=request.rel_url.with_query(query))


async def _rows(
    request: web.Request,
    template: str,
    resource: Resource,
    fetch: Fetch,
    conditions: Mapping[str, Condition],
) -> web.Response:
    """A page of rows for an htmx list, or the error state naming what is wrong with it."""
    listed = _list_request(request)
    try:
        rows, cursor = await query_page(listed, resource, fetch, conditions)
    except ProblemError as error:
        problem = {"title": error.title, "detail": error.detail}
        return render(request, template, {"problem": problem}, status=error.status)
    filters = {k: v for k, v in listed.query.items() if k != "cursor"}
    return render(
        request,
        template,
        {
            "rows": rows,
            "next_query": {**filters, "cursor": cursor} if cursor else None,
            "first_query": filters if "cursor" in listed.query else None,
            "problem": None,
            "can_edit": request[PRINCIPAL].role == "admin",
            "role_labels": ROLE_LABELS,
        },
    )


async def _choices(conn: asyncpg.Connection, table: str, label: str) -> list[tuple[int, str]]:
    """Every row of a picker (groups, users, campaigns) as (id, label); names come from code."""
    rows = await conn.fetch(f"SELECT id, {label} FROM {table} ORDER BY {label}, id")
    return [(row["id"], row[label]) for row in rows]


def _not_found(request: web.Request, template: str, message: str) -> web.Response:
    problem = {"title": HTTPStatus.NOT_FOUND.phrase, "detail": message}
    return render(request, template, {"problem": problem}, status=HTTPStatus.NOT_FOUND)


def _page_id(request: web.Request) -> int | None:
    raw = request.match_info["id"]
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**63 else None


# --- users ------------------------------------------------------------------------------------


@requires(*STAFF)
async def users_page(request: web.Request) -> web.Response:
    return render(
        request,
        "admin/users.html",
        {
            "roles": ROLES,
            "role_labels": ROLE_LABELS,
            "can_edit": request[PRINCIPAL].role == "admin",
        },
    )


@requires(*STAFF)
async def user_rows(request: web.Request) -> web.Response:
    return await _rows(
        request, "admin/users_rows.html", USERS, users_db.list_users, USER_CONDITIONS
    )


async def _user_form(request: web.Request, user: Mapping[str, Any] | None) -> web.Response:
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        groups = await _choices(conn, "groups", "name")
        campaigns = await _choices(conn, "campaigns", "name")
    return render(
        request,
        "admin/users_form.html",
        {
            "user": user,
            "group_choices": groups,
            "campaign_choices": campaigns,
            "role_choices": [(role, ROLE_LABELS[role]) for role in ROLES],
            "language_choices": [(code, LANGUAGE_LABELS[code]) for code in LANGUAGES],
            "can_edit": request[PRINCIPAL].role == "admin",
            "problem": None,
        },
    )


@requires("admin")
async def new_user_page(request: web.Request) -> web.Response:
    return await _user_form(request, None)


@requires(*STAFF)
async def user_page(request: web.Request) -> web.Response:
    user_id = _page_id(request)
    user = None
    if user_id is not None:
        async with request.app[RUNTIME].database.pool.acquire() as conn:
            user = await users_db.get_user(conn, user_id)
    if user is None:
        return _not_found(request, "admin/users_form.html", request.match_info["id"])
    return await _user_form(request, user)


# --- groups -----------------------------------------------------------------------------------


@requires(*STAFF)
async def groups_page(request: web.Request) -> web.Response:
    return render(request, "admin/groups.html", {"can_edit": request[PRINCIPAL].role == "admin"})


@requires(*STAFF)
async def group_rows(request: web.Request) -> web.Response:
    return await _rows(
        request, "admin/groups_rows.html", GROUPS, groups_db.list_groups, GROUP_CONDITIONS
    )


async def _group_form(request: web.Request, group: Mapping[str, Any] | None) -> web.Response:
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        users = await _choices(conn, "users", "username")
        campaigns = await _choices(conn, "campaigns", "name")
    return render(
        request,
        "admin/groups_form.html",
        {
            "group": group,
            "user_choices": users,
            "campaign_choices": campaigns,
            "can_edit": request[PRINCIPAL].role == "admin",
            "problem": None,
        },
    )


@requires("admin")
async def new_group_page(request: web.Request) -> web.Response:
    return await _group_form(request, None)


@requires(*STAFF)
async def group_page(request: web.Request) -> web.Response:
    group_id = _page_id(request)
    group = None
    if group_id is not None:
        async with request.app[RUNTIME].database.pool.acquire() as conn:
            group = await groups_db.get_group(conn, group_id)
    if group is None:
        return _not_found(request, "admin/groups_form.html", request.match_info["id"])
    return await _group_form(request, group)


def setup_admin_users(app: web.Application) -> None:
    """The users and groups API, their pages and their entries in the Agents section."""
    setup_users_api(app)
    setup_groups_api(app)
    router = app.router
    router.add_get(USERS_URL, users_page, name="admin.users")
    router.add_get(f"{USERS_URL}/rows", user_rows, name="admin.users.rows")
    router.add_get(f"{USERS_URL}/new", new_user_page, name="admin.users.new")
    router.add_get(USERS_URL + "/{id}", user_page, name="admin.users.edit")
    router.add_get(GROUPS_URL, groups_page, name="admin.groups")
    router.add_get(f"{GROUPS_URL}/rows", group_rows, name="admin.groups.rows")
    router.add_get(f"{GROUPS_URL}/new", new_group_page, name="admin.groups.new")
    router.add_get(GROUPS_URL + "/{id}", group_page, name="admin.groups.edit")
    register_nav(app, NavEntry("agents", N_("Users"), USERS_URL, STAFF, order=10))
    register_nav(app, NavEntry("agents", N_("Groups"), GROUPS_URL, STAFF, order=20))
