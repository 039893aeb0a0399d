"""The queue pages (Settings): the list, and the form that creates, edits or deletes a queue.

Queues sit in Settings beside the trunks and DIDs: like them they are telephony configuration
rendered into Asterisk's files, written by admins. The form's members editor needs no script of
its own: adding or removing a member asks :func:`members_editor` for the editor again (htmx),
sending the members and penalties being edited, so what was typed survives; the form then
writes the whole queue, members included, through ``api-form.js``, each penalty input being the
``/members/<user id>`` pointer of the body. ``setup_queues`` also registers ``/api/v1/queues``.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from callcore.web.api.queues import (
    MAX_PENALTY,
    MEMBER_ROLES,
    QUEUES,
    STRATEGIES,
    fetch_queues,
    get_queue_row,
    setup_queues_api,
)
from callcore.web.api.validation import MAX_ID
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import PAGE_SIZE, done_notices, form_target, pool
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/settings/queues"
MEMBERS_URL = f"{PAGE_URL}/members"


async def _candidates(db: asyncpg.Pool) -> list[dict[str, Any]]:
    """The users who may answer a queue, by user name."""
    rows = await db.fetch(
        "SELECT id, username, display_name, role, is_active FROM users "
        "WHERE role = ANY($1::text[]) ORDER BY lower(username), id",
        list(MEMBER_ROLES),
    )
    return [dict(row) for row in rows]


def _editor_context(
    candidates: list[dict[str, Any]], members: list[tuple[int, str]]
) -> dict[str, Any]:
    """The members editor: the members (user row, penalty as typed) and who may still join."""
    by_id = {user["id"]: user for user in candidates}
    rows = [(by_id[user_id], penalty) for user_id, penalty in members if user_id in by_id]
    listed = {user["id"] for user, _ in rows}
    return {
        "members": rows,
        "addable": [user for user in candidates if user["id"] not in listed],
        "max_penalty": MAX_PENALTY,
        "members_url": MEMBERS_URL,
    }


@requires(*ROLES)
async def queues_page(request: web.Request) -> web.Response:
    """The list page; the rows load into it from :func:`queue_rows`."""
    return render(request, "admin/queues.html", {"notices": done_notices(request)})


@requires(*ROLES)
async def queue_rows(request: web.Request) -> web.Response:
    """One page of queues by name (an htmx fragment), with a link to the next one."""
    async with pool(request).acquire() as conn:
        rows = await fetch_queues(
            conn,
            where="q.name > $1",
            args=[request.query.get("after", "")],
            order="q.name",
            limit=PAGE_SIZE + 1,
        )
        flows = dict(await conn.fetch("SELECT id, name FROM flows ORDER BY name"))
    next_after = rows[PAGE_SIZE - 1]["name"] if len(rows) > PAGE_SIZE else None
    context = {"queues": rows[:PAGE_SIZE], "next_after": next_after, "flow_names": flows}
    return render(request, "admin/queues_rows.html", context)


async def _form(request: web.Request, row: dict[str, Any] | None) -> web.Response:
    db = pool(request)
    values = row if row is not None else QUEUES.defaults
    members = [(int(user_id), str(penalty)) for user_id, penalty in values["members"].items()]
    flows = await db.fetch("SELECT id, name FROM flows ORDER BY name")
    context = {
        "row": row,
        "values": values,
        "target": form_target(QUEUES, row, PAGE_URL),
        "strategies": [(strategy, strategy) for strategy in STRATEGIES],
        "flow_options": [(flow["id"], flow["name"]) for flow in flows],
        **_editor_context(await _candidates(db), members),
    }
    return render(request, "admin/queues_form.html", context)


@requires(*ROLES)
async def new_queue(request: web.Request) -> web.Response:
    return await _form(request, None)


@requires(*ROLES)
async def edit_queue(request: web.Request) -> web.Response:
    queue_id = int(request.match_info["id"])  # the route only matches digits
    row = None
    if 0 < queue_id <= MAX_ID:
        async with pool(request).acquire() as conn:
            row = await get_queue_row(conn, queue_id)
    if row is None:
        raise web.HTTPNotFound()
    return await _form(request, row)


def _user_id(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_ID else None


@requires(*ROLES)
async def members_editor(request: web.Request) -> web.Response:
    """The members editor again (an htmx fragment), from the members being edited
    (``member`` and ``penalty`` pairs) plus ``add`` or minus ``remove``. It only reads: the
    form's save writes the members through the API, which checks them."""
    pairs = zip(
        request.query.getall("member", []), request.query.getall("penalty", []), strict=False
    )
    removed = _user_id(request.query.get("remove", ""))
    members = [
        (user_id, penalty)
        for user_id, penalty in ((_user_id(raw), penalty) for raw, penalty in pairs)
        if user_id is not None and user_id != removed
    ]
    added = _user_id(request.query.get("add", ""))
    if added is not None and added not in {user_id for user_id, _ in members}:
        members.append((added, "0"))
    context = _editor_context(await _candidates(pool(request)), members)
    return render(request, "admin/queues_members.html", context)


def setup_queues(app: web.Application) -> None:
    """``/api/v1/queues``, the queue pages and their navigation entry (Settings)."""
    setup_queues_api(app)
    app.router.add_get(PAGE_URL, queues_page, name="queues")
    app.router.add_get(f"{PAGE_URL}/rows", queue_rows, name="queues.rows")
    app.router.add_get(f"{PAGE_URL}/new", new_queue, name="queues.new")
    app.router.add_get(MEMBERS_URL, members_editor, name="queues.members")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", edit_queue, name="queues.edit")
    register_nav(app, NavEntry("settings", N_("Queues"), PAGE_URL, ROLES, order=40))
