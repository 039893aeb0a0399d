"""The aiohttp application: app state lives in typed ``web.AppKey`` slots, never in globals."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from callcore import __version__
from callcore.runtime import Runtime
from callcore.status import collect_status
from callcore.web.admin_users import setup_admin_users
from callcore.web.api import setup_api
from callcore.web.auth import public, setup_auth
from callcore.web.keys import RUNTIME
from callcore.web.live_topics import setup_live_topics
from callcore.web.pages.audit import setup_audit
from callcore.web.pages.dids import setup_dids
from callcore.web.pages.dispositions import setup_dispositions_pages
from callcore.web.pages.ivr import setup_ivr_pages
from callcore.web.pages.phones import setup_phones
from callcore.web.pages.queues import setup_queues
from callcore.web.pages.trunks import setup_trunks
from callcore.web.pages.voicemail import setup_voicemail
from callcore.web.ui import setup_ui
from callcore.web.ws import setup_ws

HERE = Path(__file__).parent


@public
async def healthz(request: web.Request) -> web.Response:
    """Liveness and readiness for load balancers and `make demo`'s wait loop."""
    report = await collect_status(request.app[RUNTIME])
    return web.json_response(report.to_json(), status=200 if report.healthy else 503)


def create_app(runtime: Runtime) -> web.Application:
    """Build the web application around a running node; the web layer only uses the core."""
    app = web.Application()
    app[RUNTIME] = runtime
    setup_auth(app)
    setup_api(app)
    setup_ws(app)
    setup_live_topics(app)
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(default=True),
    )
    env.globals["version"] = __version__
    app[aiohttp_jinja2.static_root_key] = "/static"
    setup_ui(app)
    setup_admin_users(app)
    setup_dispositions_pages(app)
    setup_audit(app)
    setup_trunks(app)
    setup_dids(app)
    setup_queues(app)
    setup_phones(app)
    setup_voicemail(app)
    setup_ivr_pages(app)
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_static("/static/", HERE / "static", name="static")
    return app
