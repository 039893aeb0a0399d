"""The disposition pages (Settings): groups and their dispositions, and the forms that edit them.

The pages only read; every write goes from the browser to the JSON API
(``/api/v1/disposition-groups``, ``/api/v1/dispositions``) through ``api-form.js``, so the
rules, the If-Match check, the audit trail and the error messages are the API's, not a second
copy of them. Rows a plugin registered are shown read-only, naming the plugin, because the API
refuses to change them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from callcore.db.dispositions import ADMIN_SOURCE
from callcore.web.api.dispositions import DISPOSITION_GROUPS, DISPOSITIONS
from callcore.web.api.resources import Resource
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import done_notices, form_target, pool, row_or_404
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/settings/dispositions"


async def _groups(request: web.Request) -> list[asyncpg.Record]:
    return await pool(request).fetch(
        f"SELECT {DISPOSITION_GROUPS.select_list} FROM disposition_groups ORDER BY code"
    )


def _form(
    request: web.Request,
    template: str,
    resource: Resource,
    row: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> web.Response:
    """A create form (``row`` None: the schema's defaults) or the edit form of ``row``,
    read-only when a plugin registered the row."""
    context = {
        "row": row,
        "values": row if row is not None else {**resource.defaults, "label": {}},
        "target": form_target(resource, row, PAGE_URL),
        "read_only": row is not None and row["source"] != ADMIN_SOURCE,
    }
    return render(request, template, {**context, **extra})


@requires(*ROLES)
async def dispositions_page(request: web.Request) -> web.Response:
    """The list page; the groups load into it from :func:`dispositions_rows`."""
    return render(request, "admin/dispositions.html", {"notices": done_notices(request)})


@requires(*ROLES)
async def dispositions_rows(request: web.Request) -> web.Response:
    """Every group with its dispositions (an htmx fragment)."""
    dispositions = await pool(request).fetch(
        f"SELECT {DISPOSITIONS.select_list} FROM dispositions ORDER BY group_id, position, code"
    )
    groups = [
        {**dict(group), "dispositions": [d for d in dispositions if d["group_id"] == group["id"]]}
        for group in await _groups(request)
    ]
    return render(request, "admin/dispositions_rows.html", {"groups": groups})


@requires(*ROLES)
async def group_form(request: web.Request) -> web.Response:
    """``/groups/new`` or ``/groups/{id}``: the group's form, read-only for a plugin's group."""
    row = await row_or_404(request, DISPOSITION_GROUPS) if "id" in request.match_info else None
    return _form(request, "admin/dispositions_group_form.html", DISPOSITION_GROUPS, row, {})


@requires(*ROLES)
async def disposition_form(request: web.Request) -> web.Response:
    """``/new?group=`` or ``/{id}``: a disposition's form, read-only for a plugin's."""
    row = await row_or_404(request, DISPOSITIONS) if "id" in request.match_info else None
    groups = await _groups(request)
    if not groups:
        raise web.HTTPSeeOther(PAGE_URL)
    chosen = row["group_id"] if row is not None else request.query.get("group", "")
    return _form(
        request,
        "admin/dispositions_form.html",
        DISPOSITIONS,
        row,
        {"groups": groups, "chosen_group": str(chosen)},
    )


def setup_dispositions_pages(app: web.Application) -> None:
    """The disposition pages and their navigation entry (Settings)."""
    app.router.add_get(PAGE_URL, dispositions_page, name="dispositions")
    app.router.add_get(f"{PAGE_URL}/rows", dispositions_rows, name="dispositions.rows")
    app.router.add_get(f"{PAGE_URL}/groups/new", group_form, name="dispositions.group-new")
    app.router.add_get(PAGE_URL + r"/groups/{id:\d{1,19}}", group_form, name="dispositions.group")
    app.router.add_get(f"{PAGE_URL}/new", disposition_form, name="dispositions.new")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", disposition_form, name="dispositions.edit")
    register_nav(app, NavEntry("settings", N_("Dispositions"), PAGE_URL, ROLES, order=10))
