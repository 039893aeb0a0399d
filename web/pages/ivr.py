"""The IVR flow pages (Inbound): the list of flows and the drag-and-drop editor of one flow.

Both pages are shells: their scripts (``ivr-flows.js``, ``ivr-editor.js``) read and write
everything through ``/api/v1/ivr-flows`` and ``/api/v1/ivr-nodes``, so the editor, the API and
any other client share one implementation of flows. The pages only render the layout, the
translated strings the scripts show, and whether the user may change anything: supervisors
see the flows and their graphs read-only (the API refuses them every write anyway).
"""

from __future__ import annotations

from aiohttp import web

from callcore.auth.principal import Principal
from callcore.web.api.validation import MAX_ID
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.i18n import N_
from callcore.web.nav import NavEntry, register_nav
from callcore.web.pages.api_forms import done_notices, pool
from callcore.web.ui import render

ROLES = ("admin", "supervisor")
EDITORS = ("admin",)
PAGE_URL = "/inbound/ivr-flows"


def _can_edit(request: web.Request) -> bool:
    principal: Principal = request[PRINCIPAL]
    return principal.role in EDITORS


@requires(*ROLES)
async def flows_page(request: web.Request) -> web.Response:
    """The list; its rows load from the API in the browser."""
    context = {"can_edit": _can_edit(request), "notices": done_notices(request)}
    return render(request, "ivr/flows.html", context)


@requires(*ROLES)
async def editor_page(request: web.Request) -> web.Response:
    """The editor of flow ``{id}``; 404 when there is no such flow."""
    flow_id = int(request.match_info["id"])  # the route only matches digits
    name = None
    if 0 < flow_id <= MAX_ID:
        name = await pool(request).fetchval("SELECT name FROM flows WHERE id = $1", flow_id)
    if name is None:
        raise web.HTTPNotFound()
    context = {"flow_id": flow_id, "flow_name": name, "can_edit": _can_edit(request)}
    return render(request, "ivr/editor.html", context)


def setup_ivr_pages(app: web.Application) -> None:
    """The IVR flow pages and their navigation entry (Inbound)."""
    app.router.add_get(PAGE_URL, flows_page, name="ivr-flows")
    app.router.add_get(PAGE_URL + r"/{id:\d{1,19}}", editor_page, name="ivr-flows.edit")
    register_nav(app, NavEntry("inbound", N_("IVR flows"), PAGE_URL, ROLES, order=10))
