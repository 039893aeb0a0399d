"""Every route of the real app, called anonymously and as each role, both as an API client
(Bearer) and as a browser (cookies + CSRF): the answer must follow the rule the table states.

A decorator's presence proves nothing; this test calls the routes. A route missing from
``RULES`` fails the test, and so does a row whose route no longer exists: whoever adds a route
adds its rule here. For allowed callers the test only asserts "neither 401 nor 403 nor a server
error" (the body sent is usually incomplete, so 4xx validation answers are expected).
"""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest
from _auth_session import Session, add_user, login
from aiohttp import DummyCookieJar
from aiohttp.web_urldispatcher import StaticResource

from callcore.runtime import open_runtime
from callcore.web.app import RUNTIME, create_app
from callcore.web.auth import CSRF_COOKIE, CSRF_HEADER

ROLES = ("admin", "supervisor", "agent")
MODES = ("bearer", "cookie")
EVERYONE = ROLES
STAFF = ("admin", "supervisor")
ADMIN = ("admin",)
MISSING_ID = "987654321"


@attrs.frozen
class Rule:
    """Who may call a route (None: public) and how the test calls it."""

    roles: tuple[str, ...] | None
    path: str | None = None  # what the placeholders of the route stand for
    json: Any = None
    form: dict[str, str] | None = None
    consumes_session: bool = False  # ends or rotates the caller's session: log in afresh
    csrf: bool = False  # a form that wants the CSRF double submit even from anonymous visitors


PUBLIC = Rule(None)

RULES: dict[tuple[str, str], Rule] = {
    # Health and the UI shell
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/"): Rule(STAFF),
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): Rule(None, form={}, csrf=True),
    ("POST", "/logout"): Rule(None, form={}, consumes_session=True),
    ("POST", "/account/language"): Rule(None, form={}, csrf=True),
    # Sessions
    ("POST", "/api/v1/auth/login"): Rule(None, json={}),
    ("POST", "/api/v1/auth/refresh"): Rule(None, consumes_session=True),
    ("POST", "/api/v1/auth/logout"): Rule(None, consumes_session=True),
    ("POST", "/api/v1/auth/password"): Rule(EVERYONE, json={}),
    ("GET", "/api/v1/auth/me"): Rule(EVERYONE),
    # API machinery and the WebSocket hub (which authenticates in its own protocol)
    ("GET", "/api/v1/openapi.json"): PUBLIC,
    ("GET", "/api/v1/ws"): PUBLIC,
    # Dispositions: everyone reads them (agents pick one after each call), admins edit them
    ("GET", "/api/v1/disposition-groups"): Rule(EVERYONE),
    ("POST", "/api/v1/disposition-groups"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/disposition-groups/{id}"): Rule(EVERYONE, path=MISSING_ID),
    ("PUT", "/api/v1/disposition-groups/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/disposition-groups/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/disposition-groups/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/api/v1/dispositions"): Rule(EVERYONE),
    ("POST", "/api/v1/dispositions"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/dispositions/{id}"): Rule(EVERYONE, path=MISSING_ID),
    ("PUT", "/api/v1/dispositions/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/dispositions/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/dispositions/{id}"): Rule(ADMIN, path=MISSING_ID),
    # Users and groups: admins write, supervisors read; an agent reads only their own user
    # (another id, like this missing one, is a 404)
    ("GET", "/api/v1/users"): Rule(STAFF),
    ("POST", "/api/v1/users"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/users/{id}"): Rule(EVERYONE, path=MISSING_ID),
    ("PUT", "/api/v1/users/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/users/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/users/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("POST", "/api/v1/users/{id}/password"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/api/v1/groups"): Rule(STAFF),
    ("POST", "/api/v1/groups"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/groups/{id}"): Rule(STAFF, path=MISSING_ID),
    ("PUT", "/api/v1/groups/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/groups/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/groups/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/agents/users"): Rule(STAFF),
    ("GET", "/agents/users/rows"): Rule(STAFF),
    ("GET", "/agents/users/new"): Rule(ADMIN),
    ("GET", "/agents/users/{id}"): Rule(STAFF, path=MISSING_ID),
    ("GET", "/agents/groups"): Rule(STAFF),
    ("GET", "/agents/groups/rows"): Rule(STAFF),
    ("GET", "/agents/groups/new"): Rule(ADMIN),
    ("GET", "/agents/groups/{id}"): Rule(STAFF, path=MISSING_ID),
    # Disposition pages (the writes go through the API above)
    ("GET", "/settings/dispositions"): Rule(ADMIN),
    ("GET", "/settings/dispositions/rows"): Rule(ADMIN),
    ("GET", "/settings/dispositions/groups/new"): Rule(ADMIN),
    ("GET", "/settings/dispositions/groups/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/settings/dispositions/new"): Rule(ADMIN),
    ("GET", "/settings/dispositions/{id}"): Rule(ADMIN, path=MISSING_ID),
    # The audit log: the before/after of every change, so admins only
    ("GET", "/api/v1/audit-log"): Rule(ADMIN),
    ("GET", "/settings/audit"): Rule(ADMIN),
    ("GET", "/settings/audit/rows"): Rule(ADMIN),
    # SIP trunks and DIDs: admins write, supervisors read the API, the pages are admins'
    ("GET", "/api/v1/trunks"): Rule(STAFF),
    ("POST", "/api/v1/trunks"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/trunks/{id}"): Rule(STAFF, path=MISSING_ID),
    ("PUT", "/api/v1/trunks/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/trunks/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/trunks/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/api/v1/dids"): Rule(STAFF),
    ("POST", "/api/v1/dids"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/dids/{id}"): Rule(STAFF, path=MISSING_ID),
    ("PUT", "/api/v1/dids/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/dids/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/dids/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/settings/trunks"): Rule(ADMIN),
    ("GET", "/settings/trunks/rows"): Rule(ADMIN),
    ("GET", "/settings/trunks/new"): Rule(ADMIN),
    ("GET", "/settings/trunks/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/settings/dids"): Rule(ADMIN),
    ("GET", "/settings/dids/rows"): Rule(ADMIN),
    ("GET", "/settings/dids/new"): Rule(ADMIN),
    ("GET", "/settings/dids/{id}"): Rule(ADMIN, path=MISSING_ID),
    # IVR flow pages: supervisors see flows read-only (the writes go through the API)
    ("GET", "/inbound/ivr-flows"): Rule(STAFF),
    ("GET", "/inbound/ivr-flows/{id}"): Rule(STAFF, path=MISSING_ID),
    # IVR flows API: admins write, supervisors read (and validate, export, dry-run: no change)
    ("GET", "/api/v1/ivr-flows"): Rule(STAFF),
    ("POST", "/api/v1/ivr-flows"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/ivr-flows/{id}"): Rule(STAFF, path=MISSING_ID),
    ("PUT", "/api/v1/ivr-flows/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/ivr-flows/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/ivr-flows/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("PUT", "/api/v1/ivr-flows/{id}/draft"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("POST", "/api/v1/ivr-flows/{id}/validate"): Rule(STAFF, path=MISSING_ID, json={}),
    ("POST", "/api/v1/ivr-flows/{id}/publish"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("GET", "/api/v1/ivr-flows/{id}/versions"): Rule(STAFF, path=MISSING_ID),
    ("GET", "/api/v1/ivr-flows/{id}/versions/{number}"): Rule(STAFF, path=MISSING_ID),
    ("POST", "/api/v1/ivr-flows/{id}/rollback"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("GET", "/api/v1/ivr-flows/{id}/export"): Rule(STAFF, path=MISSING_ID),
    ("POST", "/api/v1/ivr-flows/import"): Rule(ADMIN, json={}),
    ("POST", "/api/v1/ivr-flows/{id}/dry-run"): Rule(STAFF, path=MISSING_ID, json={}),
    ("GET", "/api/v1/ivr-nodes"): Rule(STAFF),
    ("POST", "/api/v1/ivr-nodes/{name}/exits"): Rule(STAFF, path="nope", json={}),
    ("GET", "/api/v1/ivr-emergency"): Rule(STAFF),
    ("PUT", "/api/v1/ivr-emergency"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/audio-files"): Rule(STAFF),
    ("POST", "/api/v1/audio-files"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/audio-files/{id}"): Rule(STAFF, path=MISSING_ID),
    ("DELETE", "/api/v1/audio-files/{id}"): Rule(ADMIN, path=MISSING_ID),
    # Agent phones: admins write, supervisors read, an agent reads only their own phone (the
    # list is scoped, another id is a 404); voicemail boxes: admins write, supervisors read
    ("GET", "/api/v1/phones"): Rule(EVERYONE),
    ("POST", "/api/v1/phones"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/phones/{id}"): Rule(EVERYONE, path=MISSING_ID),
    ("PUT", "/api/v1/phones/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/phones/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/phones/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/agents/phones"): Rule(ADMIN),
    ("GET", "/agents/phones/rows"): Rule(ADMIN),
    ("GET", "/agents/phones/new"): Rule(ADMIN),
    ("GET", "/agents/phones/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/api/v1/voicemail-boxes"): Rule(STAFF),
    ("POST", "/api/v1/voicemail-boxes"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/voicemail-boxes/{id}"): Rule(STAFF, path=MISSING_ID),
    ("PUT", "/api/v1/voicemail-boxes/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/voicemail-boxes/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/voicemail-boxes/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/settings/voicemail"): Rule(ADMIN),
    ("GET", "/settings/voicemail/rows"): Rule(ADMIN),
    ("GET", "/settings/voicemail/new"): Rule(ADMIN),
    ("GET", "/settings/voicemail/{id}"): Rule(ADMIN, path=MISSING_ID),
    # Queues: admins write, supervisors read the API, the pages are admins'
    ("GET", "/api/v1/queues"): Rule(STAFF),
    ("POST", "/api/v1/queues"): Rule(ADMIN, json={}),
    ("GET", "/api/v1/queues/{id}"): Rule(STAFF, path=MISSING_ID),
    ("PUT", "/api/v1/queues/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("PATCH", "/api/v1/queues/{id}"): Rule(ADMIN, path=MISSING_ID, json={}),
    ("DELETE", "/api/v1/queues/{id}"): Rule(ADMIN, path=MISSING_ID),
    ("GET", "/settings/queues"): Rule(ADMIN),
    ("GET", "/settings/queues/rows"): Rule(ADMIN),
    ("GET", "/settings/queues/new"): Rule(ADMIN),
    ("GET", "/settings/queues/members"): Rule(ADMIN),
    ("GET", "/settings/queues/{id}"): Rule(ADMIN, path=MISSING_ID),
}


def _app_routes(app) -> set[tuple[str, str]]:
    """(method, path template) of every route but static files; HEAD follows its GET."""
    return {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if not isinstance(route.resource, StaticResource)
    }


def _rule_of(method: str, template: str) -> Rule:
    return RULES["GET" if method == "HEAD" else method, template]


def _url(template: str, rule: Rule) -> str:
    """The concrete path: every placeholder ({id}, {number}, {name}) is ``rule.path``."""
    return template if rule.path is None else re.sub(r"\{\w+\}", rule.path, template)


@pytest.fixture
async def app_client(aiohttp_client, callcore_settings):
    async with open_runtime(callcore_settings) as runtime:
        app = create_app(runtime)
        client = await aiohttp_client(app, cookie_jar=DummyCookieJar())
        for role in ROLES:
            await add_user(runtime.database.pool, f"{role}-user", role)
        yield app, client


async def _call(client, method: str, template: str, rule: Rule, headers: dict[str, str]):
    if rule.csrf and "Cookie" not in headers:
        headers = {**headers, "Cookie": f"{CSRF_COOKIE}=pre-session", CSRF_HEADER: "pre-session"}
    kwargs: dict[str, Any] = {"headers": headers, "allow_redirects": False}
    if rule.json is not None:
        kwargs["json"] = rule.json
    elif rule.form is not None:
        kwargs["data"] = rule.form
    async with client.request(method, _url(template, rule), **kwargs) as response:
        await response.read()
        if response.status == 303 and response.headers["Location"].startswith("/login?next="):
            return "to-login"
        return response.status


def _is_page(method: str, template: str) -> bool:
    """A person's browser opening a page: refused anonymously with a redirect to log in."""
    return method in ("GET", "HEAD") and not template.startswith("/api/")


def _check(status: int | str, allowed: bool, anonymous: bool, where: str) -> str | None:
    if allowed:
        ok = status not in (401, 403, "to-login") and isinstance(status, int) and status < 500
        expected = "neither 401, 403, a redirect to log in, nor 5xx"
    else:
        expected = "403" if not anonymous else "to-login" if where.startswith("page ") else "401"
        ok = str(status) == expected
    return None if ok else f"{where}: got {status}, expected {expected}"


async def test_every_route_follows_its_rule_for_every_caller(app_client):
    app, client = app_client
    routes = _app_routes(app)
    table = set(RULES) | {("HEAD", template) for method, template in RULES if method == "GET"}
    assert routes - table == set(), "routes without a rule: add them to RULES"
    assert {key for key in RULES if key not in routes} == set(), "rules for routes that are gone"

    sessions: dict[tuple[str, str], Session] = {
        (role, mode): await login(client, f"{role}-user") for role in ROLES for mode in MODES
    }
    failures: list[str] = []
    for method, template in sorted(routes):
        rule = _rule_of(method, template)
        status = await _call(client, method, template, rule, {})
        kind = "page " if _is_page(method, template) else ""
        failure = _check(status, rule.roles is None, True, f"{kind}{method} {template} anonymous")
        failures += [failure] if failure else []
        for (role, mode), session in sessions.items():
            if rule.consumes_session:
                session = await login(client, f"{role}-user")
            allowed = rule.roles is None or role in rule.roles
            status = await _call(client, method, template, rule, session.headers(mode))
            failure = _check(status, allowed, False, f"{method} {template} as {role} ({mode})")
            failures += [failure] if failure else []
    assert "\n".join(failures) == ""


async def test_every_protected_write_refuses_a_cookie_without_csrf(app_client):
    """Cookie-authenticated writes without the CSRF token are refused before any handler runs."""
    app, client = app_client
    admin = await login(client, "admin-user")
    pool = app[RUNTIME].database.pool
    audit_rows = await pool.fetchval("SELECT count(*) FROM audit_log")
    writes = sorted(
        (method, template)
        for method, template in _app_routes(app)
        if method not in ("GET", "HEAD") and _rule_of(method, template).roles is not None
    )
    assert writes, "no protected write route to check"
    for method, template in writes:
        status = await _call(
            client, method, template, _rule_of(method, template), admin.cookie(csrf=False)
        )
        assert status == 403, f"{method} {template}"
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audit_rows
