"""Authentication and authorization of every request, and the session endpoints of the API.

Deny by default: the middleware answers a route only if its handler is marked :func:`public` or
:func:`requires` (static files excepted). Credentials come either from an ``Authorization:
Bearer`` header (API clients, no CSRF check: a browser never adds that header by itself) or from
the ``callcore_access`` cookie (the UI), in which case every unsafe method must also carry the
``callcore_csrf`` cookie's value in the ``X-CSRF-Token`` header or the ``csrf_token`` form field
(double submit). Every request re-reads the user row, so a disabled user, a changed role or a
changed password stops old tokens on the very next request.

Cookies: ``callcore_access`` (HttpOnly, path ``/``, lives as long as the access token),
``callcore_refresh`` (HttpOnly, only sent to the paths in :data:`REFRESH_PATHS`: the auth API,
the login page and the logout form) and ``callcore_csrf`` (readable by scripts). All are
SameSite=Strict, and Secure when the request came over TLS.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.cookies import Morsel
from typing import Any, TypeVar
from urllib.parse import urlencode

import attrs
from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import StaticResource

from callcore.auth import service
from callcore.auth.principal import Principal, scope_clause
from callcore.auth.refresh import RefreshRefused
from callcore.auth.tokens import InvalidToken, TokenKeys
from callcore.db.users import ROLES
from callcore.runtime import Runtime
from callcore.web.keys import RUNTIME

log = logging.getLogger(__name__)

PRINCIPAL = web.RequestKey[Principal | None]("principal")
"""Request key: the :class:`Principal` of the request, or None when anonymous."""
CREDENTIALS = web.RequestKey[str | None]("credentials")
"""Request key: how the principal authenticated: "bearer", "cookie", or None."""


ACCESS_COOKIE = "callcore_access"
REFRESH_COOKIE = "callcore_refresh"
CSRF_COOKIE = "callcore_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
LOGIN_PATH = "/login"
REFRESH_PATHS = ("/api/v1/auth", LOGIN_PATH, "/logout")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_RULE = "__callcore_access__"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
H = TypeVar("H")


@attrs.frozen
class AccessRule:
    """Who may call a handler: anyone (``public``) or the listed roles."""

    public: bool
    roles: frozenset[str]


def public(handler: H) -> H:
    """Let anyone call ``handler``, logged in or not (the principal is still resolved)."""
    setattr(handler, _RULE, AccessRule(public=True, roles=frozenset()))
    return handler


def requires(*roles: str) -> Callable[[H], H]:
    """Let only logged-in users with one of ``roles`` call the handler: 401 anonymous, 403 else."""
    unknown = [role for role in roles if role not in ROLES]
    if not roles or unknown:
        raise ValueError(f"requires() takes roles from {ROLES}, got {roles!r}")

    def mark(handler: H) -> H:
        setattr(handler, _RULE, AccessRule(public=False, roles=frozenset(roles)))
        return handler

    return mark


def access_rule(handler: object) -> AccessRule | None:
    """The rule a handler declares, None when it declares none (and is therefore refused)."""
    return getattr(handler, _RULE, None)


# The API package imports the rules above (its resources declare them), and this module uses the
# API's problem responses: importing it only here lets either side be imported first.
from callcore.web.api.problems import API_PREFIX, ProblemError, problem  # noqa: E402
from callcore.web.api.validation import read_json  # noqa: E402

TOKEN_KEYS = web.AppKey("token_keys", TokenKeys)


def _runtime(app: web.Application) -> Runtime:
    # web.app imports this module to call setup_auth, so its key is looked up at call time.

    return app[RUNTIME]


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------


async def authenticate_token(app: web.Application, token: str) -> Principal | None:
    """The user an access token stands for, if it is valid and the user's rights are unchanged.

    Checks the signature and expiry, then the user row: still active, same token version and
    role. Any mismatch answers None, never an exception, so callers have one case to handle.
    """
    try:
        claims = app[TOKEN_KEYS].decode_access(token)
    except InvalidToken:
        return None
    row = await _runtime(app).database.pool.fetchrow(
        """
        SELECT id, username, role, language, token_version FROM users
        WHERE id = $1 AND is_active AND token_version = $2 AND role = $3
        """,
        claims.user_id,
        claims.token_version,
        claims.role,
    )
    if row is None:
        return None
    return Principal(
        user_id=row["id"],
        username=row["username"],
        role=row["role"],
        language=row["language"],
        token_version=row["token_version"],
    )


async def principal_from_cookies(request: web.Request) -> Principal | None:
    """The principal of the request's access cookie, for the WebSocket hub and the UI."""
    token = request.cookies.get(ACCESS_COOKIE)
    return None if not token else await authenticate_token(request.app, token)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


async def csrf_ok(request: web.Request) -> bool:
    """True when the request repeats its CSRF cookie in the header or the form field."""
    expected = request.cookies.get(CSRF_COOKIE)
    if not expected:
        return False
    presented = request.headers.get(CSRF_HEADER)
    if presented is None and request.content_type in _FORM_TYPES:
        field = (await request.post()).get(CSRF_FIELD)
        presented = field if isinstance(field, str) else None
    return presented is not None and hmac.compare_digest(
        presented.encode("utf-8"), expected.encode("utf-8")
    )


def _refusal(request: web.Request, status: HTTPStatus, detail: str) -> web.StreamResponse:
    if (
        status == HTTPStatus.UNAUTHORIZED
        and request.method in ("GET", "HEAD")
        and not request.path.startswith(API_PREFIX)
    ):
        # A person opening a page: send them to log in (or to a silent refresh there) and back.
        raise web.HTTPSeeOther(f"{LOGIN_PATH}?{urlencode({'next': request.path_qs})}")
    headers = {}
    if status == HTTPStatus.UNAUTHORIZED:
        headers[hdrs.WWW_AUTHENTICATE] = 'Bearer realm="callcore"'
    if request.path.startswith(API_PREFIX):
        return problem(status, detail=detail, headers=headers)
    return web.Response(status=status, text=detail, headers=headers)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the principal, enforce CSRF on cookie-authenticated writes, then the route rule."""
    match_info = request.match_info
    if match_info.http_exception is not None or isinstance(
        match_info.route.resource, StaticResource
    ):
        return await handler(request)  # 404/405 as they are; static files are public
    rule = access_rule(match_info.handler)
    if rule is None:
        log.error("route %s %s declares no access rule; refused", request.method, request.path)
        return _refusal(request, HTTPStatus.FORBIDDEN, "This route is closed to everyone.")

    principal: Principal | None = None
    credentials: str | None = None
    bearer = _bearer(request)
    if bearer is not None:
        principal = await authenticate_token(request.app, bearer) if bearer else None
        credentials = "bearer" if principal else None
    elif request.cookies.get(ACCESS_COOKIE):
        principal = await principal_from_cookies(request)
        credentials = "cookie" if principal else None
        if principal and request.method not in SAFE_METHODS and not await csrf_ok(request):
            if not rule.public:
                return _refusal(
                    request,
                    HTTPStatus.FORBIDDEN,
                    f"The CSRF token is missing or wrong: send the {CSRF_COOKIE} cookie's "
                    f"value in the {CSRF_HEADER} header or the {CSRF_FIELD} form field.",
                )
            # A public route then runs anonymously: the cookie cannot act for its owner.
            principal = credentials = None

    if not rule.public:
        if principal is None:
            presented = bearer or request.cookies.get(ACCESS_COOKIE)
            return _refusal(
                request,
                HTTPStatus.UNAUTHORIZED,
                "The access token is missing, expired or invalid; log in or refresh it."
                if presented
                else "Log in first: this requires an access token.",
            )
        if principal.role not in rule.roles:
            return _refusal(
                request,
                HTTPStatus.FORBIDDEN,
                f"Your role ({principal.role}) may not use this; "
                f"it is for: {', '.join(sorted(rule.roles))}.",
            )
    request[PRINCIPAL] = principal
    request[CREDENTIALS] = credentials
    return await handler(request)


# ---------------------------------------------------------------------------------------------
# Cookies
# ---------------------------------------------------------------------------------------------


def _cookie(name: str, value: str, *, path: str, max_age: int, httponly: bool, secure: bool) -> str:
    morsel: Morsel[str] = Morsel()
    morsel.set(name, value, value)
    morsel["path"] = path
    morsel["max-age"] = str(max(0, max_age))
    morsel["samesite"] = "Strict"
    morsel["httponly"] = httponly
    morsel["secure"] = secure
    return morsel.OutputString()


def _seconds_until(moment: datetime) -> int:
    return int((moment - datetime.now(UTC)).total_seconds())


def _set_cookies(
    response: web.StreamResponse, values: dict[str, tuple[str, int]], secure: bool
) -> None:
    """Write ``{name: (value, max_age)}``, the refresh cookie once per path it is sent to."""
    for name, (value, max_age) in values.items():
        paths = REFRESH_PATHS if name == REFRESH_COOKIE else ("/",)
        for path in paths:
            response.headers.add(
                hdrs.SET_COOKIE,
                _cookie(
                    name,
                    value,
                    path=path,
                    max_age=max_age,
                    httponly=name != CSRF_COOKIE,
                    secure=secure,
                ),
            )


def set_session_cookies(
    response: web.StreamResponse, tokens: service.SessionTokens, request: web.Request
) -> None:
    """Hand a browser its session: access, refresh and CSRF cookies."""
    refresh_age = _seconds_until(tokens.refresh_expires_at)
    _set_cookies(
        response,
        {
            ACCESS_COOKIE: (tokens.access_token, _seconds_until(tokens.access_expires_at)),
            REFRESH_COOKIE: (tokens.refresh_token, refresh_age),
            CSRF_COOKIE: (tokens.csrf_token, refresh_age),
        },
        request.secure,
    )


def clear_session_cookies(response: web.StreamResponse) -> None:
    """Make the browser forget its session cookies (each on every path it was set on)."""
    _set_cookies(
        response, {name: ("", 0) for name in (ACCESS_COOKIE, REFRESH_COOKIE, CSRF_COOKIE)}, False
    )


async def end_session(request: web.Request) -> None:
    """Revoke the session of the request's refresh cookie (the UI's logout form).

    Needs the CSRF token like any cookie-authenticated write; without a refresh cookie there is
    nothing to end and nothing is refused.
    """
    token = request.cookies.get(REFRESH_COOKIE)
    if not token:
        return
    if not await csrf_ok(request):
        raise web.HTTPForbidden(text="The CSRF token is missing or wrong.")
    async with _runtime(request.app).database.pool.acquire() as conn:
        await service.logout(conn, refresh_token=token)


# ---------------------------------------------------------------------------------------------
# JSON endpoints
# ---------------------------------------------------------------------------------------------

_SECRET = {"type": "string", "minLength": 1, "maxLength": 1024}
LOGIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["username", "password"],
    "additionalProperties": False,
    "properties": {
        "username": {"type": "string", "minLength": 1, "maxLength": 256},
        "password": _SECRET,
    },
}
REFRESH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"refresh_token": _SECRET},
}
PASSWORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["current_password", "new_password"],
    "additionalProperties": False,
    "properties": {"current_password": _SECRET, "new_password": _SECRET},
}


def _tokens_json(tokens: service.SessionTokens) -> dict[str, Any]:
    return {
        "token_type": "Bearer",
        "access_token": tokens.access_token,
        "expires_in": _seconds_until(tokens.access_expires_at),
        "refresh_token": tokens.refresh_token,
        "refresh_expires_in": _seconds_until(tokens.refresh_expires_at),
        "csrf_token": tokens.csrf_token,
        "user": {
            "id": tokens.principal.user_id,
            "username": tokens.principal.username,
            "role": tokens.principal.role,
            "language": tokens.principal.language,
        },
    }


def _session_response(
    request: web.Request, tokens: service.SessionTokens, *, cookies: bool
) -> web.Response:
    response = web.json_response(_tokens_json(tokens), headers={hdrs.CACHE_CONTROL: "no-store"})
    if cookies:
        set_session_cookies(response, tokens, request)
    return response


def _refused_login(refused: service.LoginRefused) -> ProblemError:
    if refused.retry_after is not None:
        return ProblemError(
            HTTPStatus.TOO_MANY_REQUESTS,
            detail=refused.message,
            headers={hdrs.RETRY_AFTER: str(refused.retry_after)},
            retry_after=refused.retry_after,
        )
    return ProblemError(HTTPStatus.UNAUTHORIZED, detail=refused.message)


async def _optional_body(request: web.Request, schema: dict[str, Any]) -> dict[str, Any]:
    return await read_json(request, schema) if request.body_exists else {}


async def _refresh_token(request: web.Request, body: dict[str, Any]) -> tuple[str | None, bool]:
    """The refresh token from the body (API client) or the cookie (browser, CSRF checked)."""
    if "refresh_token" in body:
        return body["refresh_token"], False
    token = request.cookies.get(REFRESH_COOKIE)
    if token and not await csrf_ok(request):
        raise ProblemError(
            HTTPStatus.FORBIDDEN,
            detail=f"The CSRF token is missing or wrong: send the {CSRF_COOKIE} cookie's value "
            f"in the {CSRF_HEADER} header.",
        )
    return token, bool(token)


@public
async def login_endpoint(request: web.Request) -> web.Response:
    body = await read_json(request, LOGIN_SCHEMA)
    try:
        async with _runtime(request.app).database.pool.acquire() as conn:
            tokens = await service.login(
                conn,
                username=body["username"],
                password=body["password"],
                ip=request.remote,
                user_agent=request.headers.get(hdrs.USER_AGENT, ""),
                keys=request.app[TOKEN_KEYS],
                replaces=request.cookies.get(REFRESH_COOKIE),
            )
    except service.LoginRefused as refused:
        raise _refused_login(refused) from None
    return _session_response(request, tokens, cookies=True)


@public
async def refresh_endpoint(request: web.Request) -> web.Response:
    token, from_cookie = await _refresh_token(
        request, await _optional_body(request, REFRESH_SCHEMA)
    )
    if not token:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST,
            detail=f'No refresh token: send {{"refresh_token": ...}} or the {REFRESH_COOKIE} '
            "cookie.",
        )
    try:
        async with _runtime(request.app).database.pool.acquire() as conn:
            tokens = await service.refresh_session(
                conn, refresh_token=token, keys=request.app[TOKEN_KEYS]
            )
    except RefreshRefused as refused:
        raise ProblemError(
            HTTPStatus.UNAUTHORIZED,
            detail=str(refused),
            headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="callcore"'},
        ) from None
    return _session_response(request, tokens, cookies=from_cookie)


@public
async def logout_endpoint(request: web.Request) -> web.Response:
    token, _ = await _refresh_token(request, await _optional_body(request, REFRESH_SCHEMA))
    async with _runtime(request.app).database.pool.acquire() as conn:
        await service.logout(conn, refresh_token=token)
    response = web.Response(status=HTTPStatus.NO_CONTENT)
    clear_session_cookies(response)
    return response


@requires("admin", "supervisor", "agent")
async def password_endpoint(request: web.Request) -> web.Response:
    body = await read_json(request, PASSWORD_SCHEMA)
    try:
        async with _runtime(request.app).database.pool.acquire() as conn:
            tokens = await service.change_password(
                conn,
                principal=request[PRINCIPAL],
                current_password=body["current_password"],
                new_password=body["new_password"],
                ip=request.remote,
                user_agent=request.headers.get(hdrs.USER_AGENT, ""),
                keys=request.app[TOKEN_KEYS],
            )
    except service.PasswordRejected as rejected:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail=rejected.message,
            errors=[{"field": f"/{rejected.field}", "message": rejected.message}],
        ) from None
    except service.LoginRefused as refused:
        raise _refused_login(refused) from None
    return _session_response(request, tokens, cookies=request[CREDENTIALS] == "cookie")


@requires("admin", "supervisor", "agent")
async def me_endpoint(request: web.Request) -> web.Response:
    """The caller's own user row, read through the row scope every role gets here."""
    scope = scope_clause(request[PRINCIPAL], "id", unscoped_roles=())
    row = await _runtime(request.app).database.pool.fetchrow(
        f"""
        SELECT id, username, display_name, email, role, language, last_login_at
        FROM users WHERE {scope.sql}
        """,
        *scope.args,
    )
    if row is None:  # deleted between the middleware's check and now
        raise ProblemError(HTTPStatus.UNAUTHORIZED, detail="This user no longer exists.")
    user = dict(row)
    last_login = user.pop("last_login_at")
    user["last_login_at"] = None if last_login is None else last_login.isoformat()
    return web.json_response(user, headers={hdrs.CACHE_CONTROL: "no-store"})


TOKENS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["token_type", "access_token", "expires_in", "refresh_token", "csrf_token", "user"],
    "properties": {
        "token_type": {"const": "Bearer"},
        "access_token": {"type": "string", "description": "JWT, HS256, valid 15 minutes."},
        "expires_in": {"type": "integer", "description": "Seconds the access token lives."},
        "refresh_token": {"type": "string", "description": "Single use: spend it once."},
        "refresh_expires_in": {"type": "integer"},
        "csrf_token": {"type": "string", "description": "X-CSRF-Token for cookie sessions."},
        "user": {
            "type": "object",
            "required": ["id", "username", "role", "language"],
            "properties": {
                "id": {"type": "integer"},
                "username": {"type": "string"},
                "role": {"enum": list(ROLES)},
                "language": {"type": "string"},
            },
        },
    },
}
ME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "username", "display_name", "role", "language"],
    "properties": {
        "id": {"type": "integer"},
        "username": {"type": "string"},
        "display_name": {"type": "string"},
        "email": {"type": ["string", "null"]},
        "role": {"enum": list(ROLES)},
        "language": {"type": "string"},
        "last_login_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


@attrs.frozen
class _Endpoint:
    """One session endpoint: its route and what the OpenAPI document says of it."""

    method: str
    path: str
    handler: Handler
    summary: str
    ok: tuple[str, dict[str, Any] | None]
    errors: tuple[int, ...]
    body: dict[str, Any] | None = None
    body_required: bool = True

    def operation(self, error_responses: dict[str, Any]) -> dict[str, Any]:
        status, schema = self.ok
        answer: dict[str, Any] = {"description": "Done."}
        if schema is not None:
            answer["content"] = _json_content(schema)
        operation: dict[str, Any] = {
            "operationId": self.handler.__name__.removesuffix("_endpoint"),
            "summary": self.summary,
            "tags": ["auth"],
            "responses": {status: answer, **error_responses},
        }
        if self.body is not None:
            operation["requestBody"] = {
                "required": self.body_required,
                "content": _json_content(self.body),
            }
        rule = access_rule(self.handler)
        if rule is not None and rule.public:
            operation["security"] = []
        return operation


_TOKENS = ("200", TOKENS_SCHEMA)
_ENDPOINTS = (
    _Endpoint(
        "POST",
        "/api/v1/auth/login",
        login_endpoint,
        "Log in: tokens for API clients, cookies for browsers",
        _TOKENS,
        (400, 401, 413, 415, 422, 429),
        LOGIN_SCHEMA,
    ),
    _Endpoint(
        "POST",
        "/api/v1/auth/refresh",
        refresh_endpoint,
        "Spend a refresh token (body, or cookie with the CSRF header) for new tokens",
        _TOKENS,
        (400, 401, 403, 413, 415, 422),
        REFRESH_SCHEMA,
        body_required=False,
    ),
    _Endpoint(
        "POST",
        "/api/v1/auth/logout",
        logout_endpoint,
        "End the session of a refresh token (body, or cookie with the CSRF header)",
        ("204", None),
        (400, 403, 413, 415, 422),
        REFRESH_SCHEMA,
        body_required=False,
    ),
    _Endpoint(
        "POST",
        "/api/v1/auth/password",
        password_endpoint,
        "Change one's own password: other sessions end, this one gets new tokens",
        _TOKENS,
        (400, 401, 403, 413, 415, 422, 429),
        PASSWORD_SCHEMA,
    ),
    _Endpoint(
        "GET", "/api/v1/auth/me", me_endpoint, "The caller's own user", ("200", ME_SCHEMA), (401,)
    ),
)


async def _document_endpoints(app: web.Application) -> None:
    """Describe the session endpoints in the OpenAPI document (at start-up: setup order free)."""
    # The OpenAPI module imports the API resources, which import this module's rules.
    from callcore.web.api.openapi import document_operation, problem_responses

    for endpoint in _ENDPOINTS:
        operation = endpoint.operation(problem_responses(*endpoint.errors))
        document_operation(app, endpoint.method, endpoint.path, operation)


def setup_auth(app: web.Application) -> None:
    """Install the auth middleware (first, so nothing runs before it) and the auth endpoints."""
    app[TOKEN_KEYS] = TokenKeys.from_settings(_runtime(app).settings)
    app.middlewares.insert(0, auth_middleware)
    app.on_startup.append(_document_endpoints)
    for endpoint in _ENDPOINTS:
        app.router.add_route(endpoint.method, endpoint.path, endpoint.handler)
