"""The SIP trunks pages (Settings): the list, and the form that creates, edits or deletes one.

``setup_trunks`` also registers the ``/api/v1/trunks`` resource the form writes to, so the
pages and their API come and go together.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcore.web.api.resources import register_resource
from callcore.web.api.trunks import CODECS, TRANSPORTS, TRUNKS
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import done_notices, form_target, page_of_rows, row_or_404
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/settings/trunks"


@requires(*ROLES)
async def trunks_page(request: web.Request) -> web.Response:
    """The list page; the rows load into it from :func:`trunk_rows`."""
    return render(request, "admin/trunks.html", {"notices": done_notices(request)})


@requires(*ROLES)
async def trunk_rows(request: web.Request) -> web.Response:
    """One page of trunks by name (an htmx fragment), with a link to the next one."""
    rows, next_after = await page_of_rows(request, TRUNKS, "name")
    return render(request, "admin/trunks_rows.html", {"trunks": rows, "next_after": next_after})


def _form(request: web.Request, row: dict[str, Any] | None) -> web.Response:
    values = row if row is not None else {**TRUNKS.defaults, "password_set": False}
    context = {
        "row": row,
        "values": values,
        "target": form_target(TRUNKS, row, PAGE_URL),
        "codecs": CODECS,
        "transports": [(transport, transport.upper()) for transport in TRANSPORTS],
    }
    return render(request, "admin/trunks_form.html", context)


@requires(*ROLES)
async def new_trunk(request: web.Request) -> web.Response:
    return _form(request, None)


@requires(*ROLES)
async def edit_trunk(request: web.Request) -> web.Response:
    return _form(request, await row_or_404(request, TRUNKS))


def setup_trunks(app: web.Application) -> None:
    """``/api/v1/trunks``, the trunk pages and their navigation entry (Settings)."""
    register_resource(app, TRUNKS)
    app.router.add_get(PAGE_URL, trunks_page, name="trunks")
    app.router.add_get(f"{PAGE_URL}/rows", trunk_rows, name="trunks.rows")
    app.router.add_get(f"{PAGE_URL}/new", new_trunk, name="trunks.new")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", edit_trunk, name="trunks.edit")
    register_nav(app, NavEntry("settings", N_("SIP trunks"), PAGE_URL, ROLES, order=20))
