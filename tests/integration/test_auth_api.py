"""The auth API over real sockets and a real PostgreSQL: sessions, tokens, CSRF, rate limits.

Rate-limit tests set up most failures directly in ``login_failures`` (argon2 makes each real
attempt cost ~50 ms) and make the decisive attempts through the API.
"""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from _auth_session import PASSWORD, Session, add_user, login
from aiohttp import DummyCookieJar, web

from callcore.auth import ratelimit, service
from callcore.auth.principal import Principal, scope_clause
from callcore.auth.refresh import hash_token
from callcore.errors import ValidationError
from callcore.runtime import open_runtime
from callcore.web.app import RUNTIME, create_app
from callcore.web.auth import TOKEN_KEYS, requires

ME = "/api/v1/auth/me"


@pytest.fixture
async def server(aiohttp_server, callcore_settings):
    async with open_runtime(callcore_settings) as runtime:
        yield await aiohttp_server(create_app(runtime))


@pytest.fixture
async def client(aiohttp_client, server):
    return await aiohttp_client(server, cookie_jar=DummyCookieJar())


@pytest.fixture
def pool(server):
    return server.app[RUNTIME].database.pool


@pytest.fixture
async def users(pool):
    return {
        "admin": await add_user(pool, "alice", "admin"),
        "supervisor": await add_user(pool, "sam", "supervisor"),
        "agent": await add_user(pool, "bob", "agent"),
    }


def _actor(user_id: int, role: str = "admin") -> Principal:
    return Principal(user_id, "alice", role, "fr", 1)


async def _me(client, headers):
    return await client.get(ME, headers=headers)


def _set_cookies(response) -> dict[tuple[str, str], str]:
    """Every Set-Cookie of a response, keyed by (name, path), as its raw header."""
    found = {}
    for header in response.headers.getall("Set-Cookie", []):
        name = header.split("=", 1)[0]
        path = next(p.split("=", 1)[1] for p in header.split("; ") if p.startswith("Path="))
        found[(name, path)] = header
    return found


# --- login, cookies, claims -------------------------------------------------------------------


async def test_login_returns_tokens_and_sets_strict_cookies(client, users, pool):
    response = await client.post(
        "/api/v1/auth/login", json={"username": "BOB", "password": PASSWORD}
    )
    assert response.status == 200
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["user"] == {
        "id": users["agent"],
        "username": "bob",
        "role": "agent",
        "language": "fr",
    }
    assert 0 < body["expires_in"] <= 900
    assert response.headers["Cache-Control"] == "no-store"

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert set(claims) == {"sub", "role", "tv", "exp", "iat", "jti"}
    assert claims["sub"] == str(users["agent"]) and claims["role"] == "agent"
    assert claims["exp"] - claims["iat"] == 900

    cookies = _set_cookies(response)
    assert set(cookies) == {
        ("callcore_access", "/"),
        ("callcore_csrf", "/"),
        ("callcore_refresh", "/api/v1/auth"),
        ("callcore_refresh", "/login"),
        ("callcore_refresh", "/logout"),
    }
    for (name, _), header in cookies.items():
        assert "SameSite=Strict" in header
        assert "Secure" not in header  # plain HTTP here; Secure comes with TLS
        assert ("HttpOnly" in header) is (name != "callcore_csrf")
    assert f"callcore_csrf={body['csrf_token']};" in cookies[("callcore_csrf", "/")]

    stored = await pool.fetchval(
        "SELECT count(*) FROM refresh_tokens WHERE token_hash = $1",
        hash_token(body["refresh_token"]),
    )
    assert stored == 1
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id "
            "WHERE f.user_id = $1 AND t.token_hash = convert_to($2, 'UTF8')",
            users["agent"],
            body["refresh_token"],
        )
        == 0
    )  # only the hash is stored
    assert await pool.fetchval("SELECT last_login_at FROM users WHERE id = $1", users["agent"])


async def test_login_does_not_bump_the_users_version(client, users, pool):
    before = await pool.fetchval("SELECT version FROM users WHERE id = $1", users["agent"])
    await login(client, "bob")
    assert await pool.fetchval("SELECT version FROM users WHERE id = $1", users["agent"]) == before


@pytest.mark.parametrize(
    "username, password", [("bob", "wrong password!"), ("nobody", PASSWORD), ("bob", "")]
)
async def test_bad_credentials_are_one_401_or_422(client, users, username, password):
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    body = await response.json()
    assert response.headers["Content-Type"].startswith("application/problem+json")
    if password:
        assert response.status == 401
        assert body["detail"] == "invalid username or password"
    else:
        assert response.status == 422
        assert body["errors"][0]["field"] == "/password"


async def test_a_disabled_user_cannot_log_in(client, users, pool):
    await pool.execute("UPDATE users SET is_active = false WHERE id = $1", users["agent"])
    response = await client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": PASSWORD}
    )
    assert response.status == 401


# --- access tokens ------------------------------------------------------------------------------


async def test_me_by_bearer_and_by_cookie(client, users):
    session = await login(client, "sam")
    for headers in (session.bearer(), session.cookie(csrf=False)):
        response = await _me(client, headers)
        assert response.status == 200
        me = await response.json()
        assert me["id"] == users["supervisor"] and me["username"] == "sam"
        assert me["role"] == "supervisor" and me["last_login_at"]


def _sign(claims: dict, key: bytes, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_expired_forged_tampered_and_unsigned_tokens_get_401(client, server, users):
    session = await login(client, "bob")
    keys = server.app[TOKEN_KEYS]
    principal = Principal(users["agent"], "bob", "agent", "fr", 1)
    expired = keys.issue_access(principal, now=datetime.now(UTC) - timedelta(minutes=16)).token
    header, payload, signature = session.access.split(".")
    claims = jwt.decode(session.access, options={"verify_signature": False})
    tampered = ".".join([header, _b64({**claims, "role": "admin"}), signature])
    unsigned = ".".join([_b64({"alg": "none", "typ": "JWT"}), _b64(claims), ""])
    forged = _sign(claims, b"x" * 32)
    bad_signature = ".".join([header, payload, signature[:-4] + "AAAA"])
    old_version = keys.issue_access(Principal(users["agent"], "bob", "agent", "fr", 0)).token

    assert (await _me(client, session.bearer())).status == 200
    for token in (expired, tampered, unsigned, forged, bad_signature, old_version, "garbage"):
        for headers in (
            {"Authorization": f"Bearer {token}"},
            {"Cookie": f"callcore_access={token}"},
        ):
            response = await _me(client, headers)
            assert response.status == 401, token
            assert response.headers["Content-Type"].startswith("application/problem+json")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await _me(client, {"Authorization": f"Basic {session.access}"})).status == 401
    anonymous = await _me(client, {})
    assert anonymous.status == 401
    assert "Log in first" in (await anonymous.json())["detail"]


async def test_disabling_or_demoting_a_user_stops_their_token_on_the_next_request(
    client, pool, users
):
    agent = await login(client, "bob")
    supervisor = await login(client, "sam")
    assert (await _me(client, agent.bearer())).status == 200
    version = await pool.fetchval("SELECT version FROM users WHERE id = $1", users["agent"])
    async with pool.acquire() as conn:
        await service.set_active(
            conn, actor=_actor(users["admin"]), user_id=users["agent"], active=False, ip=None
        )
        await service.set_role(
            conn, actor=_actor(users["admin"]), user_id=users["supervisor"], role="agent", ip=None
        )
    assert (await _me(client, agent.bearer())).status == 401
    assert (await _me(client, agent.cookie())).status == 401
    assert (
        await pool.fetchval(  # a real change: the ETag moves
            "SELECT version FROM users WHERE id = $1", users["agent"]
        )
        == version + 1
    )
    assert (await _me(client, supervisor.bearer())).status == 401
    for session in (agent, supervisor):
        refreshed = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": session.refresh}
        )
        assert refreshed.status == 401
    again = await login(client, "sam")
    assert again.role == "agent"
    assert (await (await _me(client, again.bearer())).json())["role"] == "agent"

    audit = await pool.fetch(
        "SELECT action, entity_id, before, after FROM audit_log "
        "WHERE action IN ('disable', 'change_role') ORDER BY id"
    )
    assert [(r["action"], r["before"], r["after"]) for r in audit] == [
        ("disable", {"is_active": True}, {"is_active": False}),
        ("change_role", {"role": "supervisor"}, {"role": "agent"}),
    ]


async def test_the_last_active_admin_cannot_be_disabled_or_demoted(pool, users):
    async with pool.acquire() as conn:
        with pytest.raises(ValidationError, match="'alice' is the last active admin"):
            await service.set_active(
                conn, actor=_actor(users["admin"]), user_id=users["admin"], active=False, ip=None
            )
        with pytest.raises(ValidationError, match="last active admin"):
            await service.set_role(
                conn, actor=_actor(users["admin"]), user_id=users["admin"], role="agent", ip=None
            )
        with pytest.raises(ValidationError, match="'root' is not one of"):
            await service.set_role(
                conn, actor=_actor(users["admin"]), user_id=users["agent"], role="root", ip=None
            )
    assert await pool.fetchval("SELECT role FROM users WHERE id = $1", users["admin"]) == "admin"


# --- CSRF --------------------------------------------------------------------------------------


async def test_a_cookie_post_without_csrf_is_refused_and_writes_nothing(client, pool, users):
    session = await login(client, "bob")
    body = {"current_password": PASSWORD, "new_password": "a brand new passphrase"}
    stored = await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", users["agent"])
    audit_rows = await pool.fetchval("SELECT count(*) FROM audit_log")

    for headers in (
        session.cookie(csrf=False),
        {**session.cookie(csrf=False), "X-CSRF-Token": "not-the-token"},
        {"Cookie": f"callcore_access={session.access}", "X-CSRF-Token": session.csrf},
    ):
        response = await client.post("/api/v1/auth/password", json=body, headers=headers)
        assert response.status == 403
        assert "CSRF" in (await response.json())["detail"]
    form = await client.post(
        "/api/v1/auth/password", data={"other": "x"}, headers=session.cookie(csrf=False)
    )
    assert form.status == 403

    assert (
        await pool.fetchval("SELECT password_hash FROM users WHERE id = $1", users["agent"])
        == stored
    )
    assert await pool.fetchval("SELECT count(*) FROM audit_log") == audit_rows
    # The form field is accepted in place of the header (then the JSON endpoint wants JSON).
    form = await client.post(
        "/api/v1/auth/password",
        data={"csrf_token": session.csrf},
        headers=session.cookie(csrf=False),
    )
    assert form.status == 415
    # Bearer clients need no CSRF token, even with the cookies present.
    bearer = await client.post(
        "/api/v1/auth/password",
        json=body,
        headers={**session.cookie(csrf=False), **session.bearer()},
    )
    assert bearer.status == 200


async def test_cookie_refresh_and_logout_need_the_csrf_token(client, pool):
    await add_user(pool, "carol", "agent")
    session = await login(client, "carol")
    for path in ("/api/v1/auth/refresh", "/api/v1/auth/logout"):
        response = await client.post(path, headers=session.cookie(csrf=False))
        assert response.status == 403, path
    assert (
        await pool.fetchval("SELECT count(*) FROM refresh_families WHERE revoked_at IS NOT NULL")
        == 0
    )
    refreshed = await client.post("/api/v1/auth/refresh", headers=session.cookie())
    assert refreshed.status == 200
    assert ("callcore_access", "/") in _set_cookies(refreshed)
    assert (await refreshed.json())["csrf_token"] == session.csrf  # stable for the session


# --- refresh rotation, logout, login rotation ------------------------------------------------


async def _refresh(client, token):
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def test_refresh_rotates_and_reuse_revokes_the_whole_family(client, pool, users):
    first = await login(client, "bob")
    response = await _refresh(client, first.refresh)
    assert response.status == 200
    second = await response.json()
    assert second["refresh_token"] != first.refresh
    assert set(_set_cookies(response)) == set()  # an API client gets no cookies
    assert (await _me(client, {"Authorization": f"Bearer {second['access_token']}"})).status == 200
    third = await (await _refresh(client, second["refresh_token"])).json()

    reused = await _refresh(client, first.refresh)
    assert reused.status == 401
    assert "already used" in (await reused.json())["detail"]
    assert (await _refresh(client, third["refresh_token"])).status == 401
    assert (
        await pool.fetchval(
            "SELECT revoked_reason FROM refresh_families WHERE user_id = $1", users["agent"]
        )
        == "reuse"
    )
    unknown = await _refresh(client, "x" * 43)
    assert unknown.status == 401
    assert (await client.post("/api/v1/auth/refresh")).status == 400


async def test_an_expired_refresh_token_is_refused(client, pool, users):
    session = await login(client, "bob")
    await pool.execute("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
    response = await _refresh(client, session.refresh)
    assert response.status == 401
    assert "expired" in (await response.json())["detail"]


async def test_logout_ends_the_session_and_clears_cookies(client, users):
    session = await login(client, "bob")
    response = await client.post("/api/v1/auth/logout", headers=session.cookie())
    assert response.status == 204
    cleared = _set_cookies(response)
    assert len(cleared) == 5 and all("Max-Age=0" in header for header in cleared.values())
    assert (await _refresh(client, session.refresh)).status == 401
    api = await login(client, "bob")
    logout = await client.post("/api/v1/auth/logout", json={"refresh_token": api.refresh})
    assert logout.status == 204
    assert (await _refresh(client, api.refresh)).status == 401
    assert (await client.post("/api/v1/auth/logout")).status == 204


async def test_login_starts_a_new_family_and_ends_the_one_it_replaces(client, pool, users):
    before = await login(client, "bob")
    response = await client.post(
        "/api/v1/auth/login",
        json={"username": "bob", "password": PASSWORD},
        headers={"Cookie": f"callcore_refresh={before.refresh}"},
    )
    after = await response.json()
    assert after["csrf_token"] != before.csrf
    assert (await _refresh(client, before.refresh)).status == 401
    assert (await _refresh(client, after["refresh_token"])).status == 200
    reasons = await pool.fetch(
        "SELECT revoked_reason FROM refresh_families WHERE user_id = $1 ORDER BY created_at",
        users["agent"],
    )
    assert [row["revoked_reason"] for row in reasons] == ["login", None]


# --- passwords ---------------------------------------------------------------------------------


async def _change(client, session: Session, current: str, new: str):
    return await client.post(
        "/api/v1/auth/password",
        json={"current_password": current, "new_password": new},
        headers=session.cookie(),
    )


async def test_password_change_rules_and_effects(client, pool, users):
    session = await login(client, "bob")
    other_device = await login(client, "bob")
    for current, new, field, message in (
        (PASSWORD, "short", "/new_password", "at least 12 characters"),
        (PASSWORD, "  BOB  ", "/new_password", "at least 12"),
        (PASSWORD, "Bob" + " " * 10, "/new_password", "not be the username"),
        ("wrong current pw", "a brand new passphrase", "/current_password", "is wrong"),
    ):
        response = await _change(client, session, current, new)
        assert response.status == 422
        error = (await response.json())["errors"][0]
        assert error["field"] == field and message in error["message"]
    # The wrong current password counted as a failed login.
    assert await pool.fetchval("SELECT count(*) FROM login_failures WHERE account = 'bob'") == 1

    response = await _change(client, session, PASSWORD, "a brand new passphrase")
    assert response.status == 200
    fresh = await response.json()
    assert ("callcore_access", "/") in _set_cookies(response)
    assert (await _me(client, session.bearer())).status == 401
    assert (await _refresh(client, other_device.refresh)).status == 401
    assert (await _me(client, {"Authorization": f"Bearer {fresh['access_token']}"})).status == 200
    assert (await _refresh(client, fresh["refresh_token"])).status == 200
    await login(client, "bob", "a brand new passphrase")
    refused = await client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": PASSWORD}
    )
    assert refused.status == 401
    audit = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'change_password'")
    assert audit["actor_id"] == users["agent"] and audit["entity_id"] == str(users["agent"])
    assert "passphrase" not in json.dumps([audit["before"], audit["after"]])


async def test_admin_reset_gives_a_strong_password_once(client, pool, users):
    old = await login(client, "bob")
    async with pool.acquire() as conn:
        password = await service.reset_password(
            conn, actor=_actor(users["admin"]), user_id=users["agent"], ip="10.1.2.3"
        )
        second = await service.reset_password(  # from the command line: no user acts
            conn, actor=None, user_id=users["agent"], ip="10.1.2.3"
        )
        with pytest.raises(ValidationError, match="no user with id 999"):
            await service.reset_password(conn, actor=_actor(users["admin"]), user_id=999, ip=None)
    assert password != second
    assert len(second) >= 20
    assert any(c.isdigit() for c in second) and any(c.isalpha() for c in second)
    assert (await _me(client, old.bearer())).status == 401
    assert (await _refresh(client, old.refresh)).status == 401
    refused = await client.post(
        "/api/v1/auth/login", json={"username": "bob", "password": password}
    )
    assert refused.status == 401
    await login(client, "bob", second)
    dump = await pool.fetchval(
        "SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), ' ') "
        "FROM audit_log WHERE action = 'reset_password'"
    )
    assert second not in (dump or "")
    actors = await pool.fetch(
        "SELECT actor_id, actor_label FROM audit_log "
        "WHERE action = 'reset_password' AND ip = '10.1.2.3' ORDER BY id"
    )
    assert [tuple(row) for row in actors] == [(users["admin"], "alice"), (None, "system")]
    assert second not in await pool.fetchval(
        "SELECT password_hash FROM users WHERE id = $1", users["agent"]
    )


# --- rate limiting ---------------------------------------------------------------------------


async def _fail(pool, account: str, count: int, ip: str = "127.0.0.1"):
    await pool.executemany(
        "INSERT INTO login_failures (account, ip) VALUES ($1, $2)", [(account, ip)] * count
    )


async def _attempt(client, username: str, password: str = PASSWORD):
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def test_the_fifth_failure_locks_the_pair_for_fifteen_minutes(client, pool, users):
    await _fail(pool, "bob", 4)
    assert (await _attempt(client, "bob")).status == 200  # 4 failures: not locked
    await pool.execute("DELETE FROM login_failures")  # (the success forgave them anyway)
    await _fail(pool, "bob", 4)
    assert (await _attempt(client, "bob", "wrong password!")).status == 401  # the 5th

    locked = await _attempt(client, "bob")  # even the right password is not checked now
    assert locked.status == 429
    retry = int(locked.headers["Retry-After"])
    assert 890 <= retry <= 900
    body = await locked.json()
    assert body["retry_after"] == retry and "minute" in body["detail"]
    assert locked.headers["Content-Type"].startswith("application/problem+json")
    assert await pool.fetchval("SELECT count(*) FROM login_failures") == 5  # not counted

    # Another account from the same IP, and the same account from another IP, are not locked.
    assert (await _attempt(client, "sam")).status == 200
    async with pool.acquire() as conn:
        assert await ratelimit.current_lock(conn, "bob", "10.9.9.9") is None
        # 14:59 after the 5th failure: still locked for a second; at 15:00 free.
        await conn.execute("UPDATE login_failures SET at = at - interval '14 min 59 s'")
        lock = await ratelimit.current_lock(conn, "Bob ", "127.0.0.1")
        assert lock is not None and lock.scope == "account" and lock.retry_after <= 2
        await conn.execute("UPDATE login_failures SET at = at - interval '1 s'")
    assert (await _attempt(client, "bob")).status == 200
    assert await pool.fetchval("SELECT count(*) FROM login_failures WHERE account = 'bob'") == 0


async def test_fifty_failures_from_one_ip_lock_every_account(client, pool, users):
    for index in range(7):
        await _fail(pool, f"guess{index}", 7)  # 49 failures, none reaching 5 per account... yet
    await pool.execute("DELETE FROM login_failures WHERE account = 'guess0'")
    await _fail(pool, "guess0", 3)
    assert await pool.fetchval("SELECT count(*) FROM login_failures") == 45
    await _fail(pool, "guess7", 4)
    assert (await _attempt(client, "sam")).status == 200  # 49: still open
    assert (await _attempt(client, "guess8", "nope nope")).status == 401  # the 50th

    locked = await _attempt(client, "sam")
    assert locked.status == 429
    assert 890 <= int(locked.headers["Retry-After"]) <= 900
    async with pool.acquire() as conn:
        assert (await ratelimit.current_lock(conn, "sam", "127.0.0.1")).scope == "ip"
        assert await ratelimit.current_lock(conn, "sam", "10.0.0.1") is None


async def test_concurrent_attempts_cannot_slip_past_the_fifth_failure(client, users, pool):
    statuses = await asyncio.gather(*(_attempt(client, "bob", "wrong password!") for _ in range(8)))
    assert sorted(response.status for response in statuses) == [401] * 5 + [429] * 3
    assert await pool.fetchval("SELECT count(*) FROM login_failures") == 5


async def test_a_wrong_current_password_is_rate_limited_too(client, pool, users):
    session = await login(client, "bob")
    await _fail(pool, "bob", 5)
    response = await _change(client, session, PASSWORD, "a brand new passphrase")
    assert response.status == 429
    assert int(response.headers["Retry-After"]) > 0


# --- row scoping, deny by default -------------------------------------------------------------


async def test_row_scope_gives_agents_their_rows_only(client, pool, users):
    for role, user_id in users.items():
        principal = Principal(user_id, role, role, "fr", 1)
        scope = scope_clause(principal, "id", param=2)
        rows = await pool.fetch(
            f"SELECT id FROM users WHERE role <> $1 AND {scope.sql} ORDER BY id",
            "nobody",
            *scope.args,
        )
        expected = [users["agent"]] if role == "agent" else sorted(users.values())
        assert [row["id"] for row in rows] == expected, role
        own = scope_clause(principal, "users.id", unscoped_roles=())
        assert [
            r["id"]
            for r in await pool.fetch(f"SELECT users.id FROM users WHERE {own.sql}", *own.args)
        ] == [user_id]
    for column in ("id; DROP TABLE users", "ID", "a.b.c", ""):
        with pytest.raises(ValueError, match="not a plain SQL identifier"):
            scope_clause(principal, column)


async def test_me_is_scoped_to_the_callers_own_row(client, users):
    for username, role in (("alice", "admin"), ("sam", "supervisor"), ("bob", "agent")):
        session = await login(client, username)
        me = await (await _me(client, session.bearer())).json()
        assert (me["id"], me["username"]) == (users[role], username)


async def test_a_route_without_a_rule_is_refused_to_everyone(aiohttp_client, callcore_settings):
    async def undeclared(request: web.Request) -> web.Response:
        return web.json_response({"leaked": True})

    async with open_runtime(callcore_settings) as runtime:
        app = create_app(runtime)
        app.router.add_get("/api/v1/undeclared", undeclared)
        client = await aiohttp_client(app, cookie_jar=DummyCookieJar())
        await add_user(runtime.database.pool, "root", "admin")
        session = await login(client, "root")
        for headers in ({}, session.bearer(), session.cookie()):
            response = await client.get("/api/v1/undeclared", headers=headers)
            assert response.status == 403
            assert "leaked" not in await response.text()


def test_requires_refuses_unknown_roles():
    with pytest.raises(ValueError, match="'root'"):
        requires("admin", "root")
    with pytest.raises(ValueError):
        requires()
