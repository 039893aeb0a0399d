"""The UI shell: pages rendered in the user's language inside the layout, login, logout, language.

Every HTML page goes through :func:`render`, which picks the request's language, builds the
navigation for the current principal and hands the layout what it needs (CSRF token, current
path). Pages register their navigation entry next to their route with
:func:`callcore.web.nav.register_nav`.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp_jinja2
import asyncpg
from aiohttp import hdrs, web

from callcore import audit
from callcore.auth import service
from callcore.auth.principal import Principal
from callcore.auth.refresh import RefreshRefused
from callcore.config import LANGUAGES
from callcore.status import collect_status
from callcore.web import auth
from callcore.web.auth import PRINCIPAL, public, requires
from callcore.web.i18n import (
    CATALOGS,
    LANGUAGE_COOKIE,
    N_,
    Language,
    activate,
    choose_language,
    install,
    load_catalogs,
)
from callcore.web.keys import RUNTIME
from callcore.web.nav import NavEntry, navigation_for, register_nav

if TYPE_CHECKING:
    from callcore.runtime import Runtime

_LANGUAGE_COOKIE_AGE = 365 * 24 * 3600


def _runtime(app: web.Application) -> Runtime:

    return app[RUNTIME]


def request_language(request: web.Request) -> Language:
    """The language this request is answered in (see :func:`callcore.web.i18n.choose_language`)."""
    principal: Principal | None = request.get(PRINCIPAL)
    code = choose_language(
        principal.language if principal is not None else None,
        request.cookies.get(LANGUAGE_COOKIE),
        request.headers.get(hdrs.ACCEPT_LANGUAGE, ""),
        _runtime(request.app).settings.language,
    )
    return request.app[CATALOGS][code]


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """Render a page that extends ``base.html``, in the request's language, for its principal."""
    language = request_language(request)
    principal: Principal | None = request.get(PRINCIPAL)
    shell = {
        "lang": language.code,
        "principal": principal,
        "nav": navigation_for(request.app, principal.role if principal is not None else None),
        "current_path": request.path,
        "next_url": request.path_qs,
        "csrf_token": request.cookies.get(auth.CSRF_COOKIE, ""),
    }
    with activate(language):
        response = aiohttp_jinja2.render_template(
            template, request, {**shell, **context}, status=status
        )
    response.headers[hdrs.CONTENT_LANGUAGE] = language.code
    response.headers[hdrs.VARY] = "Cookie, Accept-Language"
    return response


def safe_next(value: object) -> str | None:
    """``value`` if it is a path on this site, else None: a login never redirects elsewhere.

    Only ``/path?query`` is kept; ``//host``, ``/\\host``, schemes, and any whitespace or control
    character (browsers drop tabs and newlines, turning ``/\\t/host`` into ``//host``) are refused.
    """
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return None
    if "\\" in value or any(not "!" <= char <= "~" for char in value):
        return None
    return value


def landing_page(app: web.Application, principal: Principal) -> str:
    """Where a user lands after logging in when no page was asked for: their first nav entry."""
    sections = navigation_for(app, principal.role)
    return sections[0].entries[0].url if sections else "/"


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={hdrs.LOCATION: location})


async def _require_csrf(request: web.Request) -> None:
    """Refuse a form post that does not repeat its CSRF cookie, logged in or not.

    The middleware checks writes made with a session; these forms also serve anonymous
    visitors, whose pre-session token (set by the login page) a cross-site post cannot carry.
    """
    if not await auth.csrf_ok(request):
        raise web.HTTPForbidden(text="The CSRF token is missing or wrong; reload the page.")


@public
async def login_page(request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"))
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is not None:
        return _see_other(target or landing_page(request.app, principal))
    refreshed = await _silent_refresh(request, target)
    if refreshed is not None:
        return refreshed
    context: dict[str, Any] = {
        "next": target or "",
        "username": "",
        "logged_out": "logged_out" in request.query,
    }
    fresh_token = None
    if not request.cookies.get(auth.CSRF_COOKIE):
        # A pre-session token, so the login form itself cannot be posted from another site
        # (login CSRF); the session's own token replaces it at login.
        fresh_token = context["csrf_token"] = secrets.token_urlsafe(32)
    response = render(request, "login.html", context)
    if fresh_token is not None:
        response.set_cookie(
            auth.CSRF_COOKIE, fresh_token, path="/", samesite="Strict", secure=request.secure
        )
    return response


async def _silent_refresh(request: web.Request, target: str | None) -> web.Response | None:
    """A browser whose access token expired still holds its refresh cookie (sent only to the
    login paths): rotate it and go back to the page, instead of asking for the password again."""
    token = request.cookies.get(auth.REFRESH_COOKIE)
    if not token:
        return None
    try:
        async with _runtime(request.app).database.pool.acquire() as conn:
            tokens = await service.refresh_session(
                conn, refresh_token=token, keys=request.app[auth.TOKEN_KEYS]
            )
    except RefreshRefused:
        return None
    response = _see_other(target or landing_page(request.app, tokens.principal))
    auth.set_session_cookies(response, tokens, request)
    return response


@public
async def login_submit(request: web.Request) -> web.Response:
    await _require_csrf(request)
    form = await request.post()
    username = form.get("username")
    password = form.get("password")
    target = safe_next(form.get("next"))
    if not isinstance(username, str) or not isinstance(password, str):
        username = password = ""
    username = username.strip()
    context: dict[str, Any] = {"next": target or "", "username": username}
    if not username or not password:
        return render(request, "login.html", {**context, "error": "missing"}, status=400)
    try:
        async with _runtime(request.app).database.pool.acquire() as conn:
            tokens = await service.login(
                conn,
                username=username,
                password=password,
                ip=request.remote,
                user_agent=request.headers.get(hdrs.USER_AGENT, ""),
                keys=request.app[auth.TOKEN_KEYS],
                replaces=request.cookies.get(auth.REFRESH_COOKIE),
            )
    except service.LoginRefused as refused:
        if refused.retry_after is None:
            return render(request, "login.html", {**context, "error": "refused"}, status=401)
        minutes = max(1, math.ceil(refused.retry_after / 60))
        response = render(
            request, "login.html", {**context, "retry_after_minutes": minutes}, status=429
        )
        response.headers[hdrs.RETRY_AFTER] = str(refused.retry_after)
        return response
    response = _see_other(target or landing_page(request.app, tokens.principal))
    auth.set_session_cookies(response, tokens, request)
    return response


@public
async def logout(request: web.Request) -> web.Response:
    """End the session (its refresh family is revoked) and forget the cookies, logged in or not."""
    await auth.end_session(request)
    response = _see_other("/login?logged_out")
    auth.clear_session_cookies(response)
    return response


@public
async def change_language(request: web.Request) -> web.Response:
    """Switch the UI language: saved on the user when logged in, in a cookie in any case."""
    await _require_csrf(request)
    form = await request.post()
    code = form.get("language")
    if not isinstance(code, str) or code not in LANGUAGES:
        raise web.HTTPBadRequest(text=f"language must be one of {', '.join(LANGUAGES)}")
    principal: Principal | None = request.get(PRINCIPAL)
    if principal is not None and principal.language != code:
        async with _runtime(request.app).database.pool.acquire() as conn:
            await _save_language(conn, principal, code, request.remote)
    response = _see_other(safe_next(form.get("next")) or "/")
    response.set_cookie(
        LANGUAGE_COOKIE,
        code,
        max_age=_LANGUAGE_COOKIE_AGE,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def _save_language(
    conn: asyncpg.Connection, principal: Principal, code: str, ip: str | None
) -> None:
    """The user's own preference: no rights change, so the session and token version stay."""
    async with conn.transaction():
        await conn.execute("UPDATE users SET language = $1 WHERE id = $2", code, principal.user_id)
        await audit.record(
            conn,
            actor_id=principal.user_id,
            actor_label=principal.username,
            action="update",
            entity_type="user",
            entity_id=principal.user_id,
            before={"language": principal.language},
            after={"language": code},
            ip=ip,
        )


@requires("admin", "supervisor")
async def status_page(request: web.Request) -> web.Response:
    report = await collect_status(_runtime(request.app))
    return render(request, "status.html", {"report": report}, status=200 if report.healthy else 503)


def setup_ui(app: web.Application) -> None:
    """Translations, the shell's routes and the status page; call after aiohttp_jinja2.setup."""
    install(aiohttp_jinja2.get_env(app))
    app[CATALOGS] = load_catalogs()
    app.router.add_get("/", status_page, name="home")
    app.router.add_get("/login", login_page, name="login")
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_post("/account/language", change_language, name="account-language")
    register_nav(
        app, NavEntry("monitoring", N_("Service status"), "/", ("admin", "supervisor"), order=10)
    )
