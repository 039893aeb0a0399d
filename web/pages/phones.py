"""The agent phones pages (Agents): the list, and the form that creates, edits or deletes one.

The form offers the users by name, each with the phone they already use, so the admin sees who
is free; the API refuses a user who has a phone (409 naming it). ``setup_phones`` also adds the
``/api/v1/phones`` routes the form writes to, so the pages and their API come and go together.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcore.web.api.phones import PHONES, SELECT, TRANSPORTS, phone_row, setup_phones_api
from callcore.web.api.problems import ProblemError
from callcore.web.api.trunks import CODECS
from callcore.web.api.validation import MAX_ID
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import PAGE_SIZE, done_notices, form_target, pool
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/agents/phones"
MAX_USERS_OFFERED = 1000

_ROWS = f"""
SELECT q.*, u.username FROM ({SELECT} WHERE p.endpoint > $1 ORDER BY p.endpoint LIMIT $2) q
LEFT JOIN users u ON u.id = q.user_id ORDER BY q.endpoint
"""
_USERS = """
SELECT u.id, u.username, u.display_name, p.endpoint FROM users u
LEFT JOIN phone_assignments a ON a.user_id = u.id LEFT JOIN phones p ON p.id = a.phone_id
ORDER BY lower(u.username) LIMIT $1
"""


@requires(*ROLES)
async def phones_page(request: web.Request) -> web.Response:
    """The list page; the rows load into it from :func:`phone_rows`."""
    return render(request, "admin/phones.html", {"notices": done_notices(request)})


@requires(*ROLES)
async def phone_rows(request: web.Request) -> web.Response:
    """One page of phones by endpoint (an htmx fragment), naming their user."""
    rows = await pool(request).fetch(_ROWS, request.query.get("after", ""), PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    context = {
        "phones": rows[:PAGE_SIZE],
        "next_after": rows[PAGE_SIZE - 1]["endpoint"] if more else None,
    }
    return render(request, "admin/phones_rows.html", context)


async def _form(request: web.Request, row: dict[str, Any] | None) -> web.Response:
    users = await pool(request).fetch(_USERS, MAX_USERS_OFFERED)
    user_options = [
        (
            user["id"],
            user["username"]
            + (f" ({user['display_name']})" if user["display_name"] else "")
            + (f" — {user['endpoint']}" if user["endpoint"] else ""),
        )
        for user in users
    ]
    context = {
        "row": row,
        "values": row if row is not None else {**PHONES.defaults, "password_set": False},
        "target": form_target(PHONES, row, PAGE_URL),
        "codecs": CODECS,
        "transports": [(transport, transport.upper()) for transport in TRANSPORTS],
        "user_options": user_options,
    }
    return render(request, "admin/phones_form.html", context)


@requires(*ROLES)
async def new_phone(request: web.Request) -> web.Response:
    return await _form(request, None)


@requires(*ROLES)
async def edit_phone(request: web.Request) -> web.Response:
    phone_id = int(request.match_info["id"])  # the route only matches digits
    if not 0 < phone_id <= MAX_ID:
        raise web.HTTPNotFound()
    async with pool(request).acquire() as conn:
        try:
            row = await phone_row(conn, request, phone_id)
        except ProblemError:
            raise web.HTTPNotFound() from None
    return await _form(request, row)


def setup_phones(app: web.Application) -> None:
    """``/api/v1/phones``, the phone pages and their navigation entry (Agents)."""
    setup_phones_api(app)
    app.router.add_get(PAGE_URL, phones_page, name="phones")
    app.router.add_get(f"{PAGE_URL}/rows", phone_rows, name="phones.rows")
    app.router.add_get(f"{PAGE_URL}/new", new_phone, name="phones.new")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", edit_phone, name="phones.edit")
    register_nav(app, NavEntry("agents", N_("Phones"), PAGE_URL, ROLES, order=30))
