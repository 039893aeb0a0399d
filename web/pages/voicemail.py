"""The voicemail box pages (Settings): the list, and the form that creates, edits or deletes one.

The form offers the users and queues a box may belong to, by name. ``setup_voicemail`` also
registers the ``/api/v1/voicemail-boxes`` resource the form writes to.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from callcore.web.api.resources import register_resource
from callcore.web.api.voicemail import VOICEMAIL_BOXES
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import PAGE_SIZE, done_notices, form_target, pool, row_or_404
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/settings/voicemail"
MAX_OWNERS_OFFERED = 1000

# Keyset on (context, mailbox), which is unique; the page's ``after`` is "context/mailbox".
_ROWS = f"""
SELECT b.*, u.username, q.name AS queue_name
FROM (SELECT {VOICEMAIL_BOXES.select_list} FROM voicemail_boxes
      WHERE (context, mailbox) > ($1, $2) ORDER BY context, mailbox LIMIT $3) b
LEFT JOIN users u ON u.id = b.user_id
LEFT JOIN queues q ON q.id = b.queue_id
ORDER BY b.context, b.mailbox
"""


async def _owners(db: asyncpg.Pool) -> dict[str, list[tuple[int, str]]]:
    """The users and queues a box may belong to, by name."""
    users = await db.fetch(
        "SELECT id, username FROM users ORDER BY lower(username) LIMIT $1", MAX_OWNERS_OFFERED
    )
    queues = await db.fetch(
        "SELECT id, name FROM queues ORDER BY name LIMIT $1", MAX_OWNERS_OFFERED
    )
    return {
        "user_options": [(user["id"], user["username"]) for user in users],
        "queue_options": [(queue["id"], queue["name"]) for queue in queues],
    }


@requires(*ROLES)
async def voicemail_page(request: web.Request) -> web.Response:
    """The list page; the rows load into it from :func:`voicemail_rows`."""
    return render(request, "admin/voicemail.html", {"notices": done_notices(request)})


@requires(*ROLES)
async def voicemail_rows(request: web.Request) -> web.Response:
    """One page of boxes by context and number (an htmx fragment), naming their owner."""
    context_after, _, mailbox_after = request.query.get("after", "").partition("/")
    rows = await pool(request).fetch(_ROWS, context_after, mailbox_after, PAGE_SIZE + 1)
    last = rows[PAGE_SIZE - 1] if len(rows) > PAGE_SIZE else None
    context = {
        "boxes": rows[:PAGE_SIZE],
        "next_after": f"{last['context']}/{last['mailbox']}" if last else None,
    }
    return render(request, "admin/voicemail_rows.html", context)


async def _form(request: web.Request, row: dict[str, Any] | None) -> web.Response:
    context = {
        "row": row,
        "values": row if row is not None else {**VOICEMAIL_BOXES.defaults, "pin_set": False},
        "target": form_target(VOICEMAIL_BOXES, row, PAGE_URL),
        **await _owners(pool(request)),
    }
    return render(request, "admin/voicemail_form.html", context)


@requires(*ROLES)
async def new_box(request: web.Request) -> web.Response:
    return await _form(request, None)


@requires(*ROLES)
async def edit_box(request: web.Request) -> web.Response:
    return await _form(request, await row_or_404(request, VOICEMAIL_BOXES))


def setup_voicemail(app: web.Application) -> None:
    """``/api/v1/voicemail-boxes``, the voicemail pages and their navigation entry (Settings)."""
    register_resource(app, VOICEMAIL_BOXES)
    app.router.add_get(PAGE_URL, voicemail_page, name="voicemail")
    app.router.add_get(f"{PAGE_URL}/rows", voicemail_rows, name="voicemail.rows")
    app.router.add_get(f"{PAGE_URL}/new", new_box, name="voicemail.new")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", edit_box, name="voicemail.edit")
    register_nav(app, NavEntry("settings", N_("Voicemail"), PAGE_URL, ROLES, order=40))
