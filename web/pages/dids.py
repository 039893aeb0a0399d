"""The DID pages (Settings): the list, and the form that creates, edits or deletes one.

The form offers the trunks by name, and the IVR flows through ``flow-picker.js`` (the flows API,
saying which are published); with no flow chosen the number runs the fallback flow.
``setup_dids`` also registers the ``/api/v1/dids`` resource the form writes to.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from aiohttp import web

from callcore.web.api.dids import DIDS
from callcore.web.api.resources import register_resource
from callcore.web.auth import requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import done_notices, form_target, page_of_rows, pool, row_or_404
from callcore.web.ui import render

ROLES = ("admin",)
PAGE_URL = "/settings/dids"


async def _choices(db: asyncpg.Pool) -> dict[str, list[asyncpg.Record]]:
    """The trunks and flows a DID may point to, by name."""
    return {
        "trunks": await db.fetch("SELECT id, name FROM sip_trunks ORDER BY name"),
        "flows": await db.fetch("SELECT id, name FROM flows ORDER BY name"),
    }


@requires(*ROLES)
async def dids_page(request: web.Request) -> web.Response:
    """The list page; the rows load into it from :func:`did_rows`."""
    return render(request, "admin/dids.html", {"notices": done_notices(request)})


@requires(*ROLES)
async def did_rows(request: web.Request) -> web.Response:
    """One page of DIDs by number (an htmx fragment), naming their trunk and flow."""
    rows, next_after = await page_of_rows(request, DIDS, "number")
    choices = await _choices(pool(request))
    context = {
        "dids": rows,
        "next_after": next_after,
        "trunk_names": {trunk["id"]: trunk["name"] for trunk in choices["trunks"]},
        "flow_names": {flow["id"]: flow["name"] for flow in choices["flows"]},
    }
    return render(request, "admin/dids_rows.html", context)


async def _form(request: web.Request, row: dict[str, Any] | None) -> web.Response:
    choices = await _choices(pool(request))
    context = {
        "row": row,
        "values": row if row is not None else DIDS.defaults,
        "target": form_target(DIDS, row, PAGE_URL),
        "trunk_options": [(trunk["id"], trunk["name"]) for trunk in choices["trunks"]],
        # The DID's own flow; flow-picker.js lists the others from the API.
        "flow_options": [
            (flow["id"], flow["name"])
            for flow in choices["flows"]
            if row is not None and flow["id"] == row["flow_id"]
        ],
    }
    return render(request, "admin/dids_form.html", context)


@requires(*ROLES)
async def new_did(request: web.Request) -> web.Response:
    return await _form(request, None)


@requires(*ROLES)
async def edit_did(request: web.Request) -> web.Response:
    return await _form(request, await row_or_404(request, DIDS))


def setup_dids(app: web.Application) -> None:
    """``/api/v1/dids``, the DID pages and their navigation entry (Settings)."""
    register_resource(app, DIDS)
    app.router.add_get(PAGE_URL, dids_page, name="dids")
    app.router.add_get(f"{PAGE_URL}/rows", did_rows, name="dids.rows")
    app.router.add_get(f"{PAGE_URL}/new", new_did, name="dids.new")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", edit_did, name="dids.edit")
    register_nav(app, NavEntry("settings", N_("DIDs"), PAGE_URL, ROLES, order=30))
