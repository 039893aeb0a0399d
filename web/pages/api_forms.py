"""What an admin page over one API resource needs: its rows, one row, and its form's target.

The pages only read, through the resource's own ``select_list`` so they show exactly what the
API serves (never a write-only secret); every write goes from the browser to the JSON API
through ``api-form.js``, which sends the form to the target built here and, once the API
accepted it, comes back to the list page with ``?done=`` naming what happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from callcore.web.api.etags import etag
from callcore.web.api.resources import Resource
from callcore.web.api.validation import MAX_ID
from callcore.web.i18n import N_, activate, gettext
from callcore.web.keys import RUNTIME
from callcore.web.ui import request_language

PAGE_SIZE = 100

DONE_MESSAGES = {
    "created": N_("Created."),
    "saved": N_("Changes saved."),
    "deleted": N_("Deleted."),
}
"""``?done=`` on a list page -> the toast it shows."""


def pool(request: web.Request) -> asyncpg.Pool:
    return request.app[RUNTIME].database.pool


def done_notices(request: web.Request) -> list[tuple[str, str]]:
    """The toast for the list page a form came back to, in the page's language."""
    message = DONE_MESSAGES.get(request.query.get("done", ""))
    if message is None:
        return []
    with activate(request_language(request)):
        return [("info", gettext(message))]


async def page_of_rows(
    request: web.Request, resource: Resource, order_by: str
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to :data:`PAGE_SIZE` rows after ``?after=`` in ``order_by`` (a unique text column,
    named in code), and the ``after`` value of the next page (None on the last)."""
    after = request.query.get("after", "")
    rows = await pool(request).fetch(
        f"SELECT {resource.select_list} FROM {resource.table} WHERE {order_by} > $1 "
        f"ORDER BY {order_by} LIMIT $2",
        after,
        PAGE_SIZE + 1,
    )
    more = len(rows) > PAGE_SIZE
    return [dict(row) for row in rows[:PAGE_SIZE]], rows[PAGE_SIZE - 1][order_by] if more else None


async def row_or_404(request: web.Request, resource: Resource) -> dict[str, Any]:
    """The row ``{id}`` of the route names, as the API serves it; 404 when there is none."""
    row_id = int(request.match_info["id"])  # the route only matches digits
    row = None
    if 0 < row_id <= MAX_ID:
        row = await pool(request).fetchrow(
            f"SELECT {resource.select_list} FROM {resource.table} WHERE id = $1", row_id
        )
    if row is None:
        raise web.HTTPNotFound()
    return dict(row)


def form_target(resource: Resource, row: Mapping[str, Any] | None, list_url: str) -> dict[str, str]:
    """Where ``api-form.js`` sends a create form (``row`` None) or an edit form, with which
    method and If-Match, and where it goes afterwards."""
    if row is None:
        return {
            "method": "POST",
            "url": resource.path,
            "etag": "",
            "done": f"{list_url}?done=created",
        }
    return {
        "method": "PUT",
        "url": f"{resource.path}/{row['id']}",
        "etag": etag(row["version"]),
        "done": f"{list_url}?done=saved",
        "deleted": f"{list_url}?done=deleted",
    }
