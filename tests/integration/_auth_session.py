"""Test helpers for logged-in clients: users created in the database, sessions from the real API.

A :class:`Session` holds what a login returned and builds the headers of either kind of client:
an API client (``Authorization: Bearer``) or a browser (the cookies plus the CSRF header).
Clients are made with a ``DummyCookieJar`` so a response never changes what the next request
sends: every request states its credentials itself.
"""

from __future__ import annotations

import asyncpg
import attrs
from aiohttp.test_utils import TestClient

from callcore.db.users import create_user
from callcore.web.auth import ACCESS_COOKIE, CSRF_COOKIE, CSRF_HEADER, REFRESH_COOKIE

PASSWORD = "correct horse battery staple"


async def add_user(pool: asyncpg.Pool, username: str, role: str, password: str = PASSWORD) -> int:
    async with pool.acquire() as conn:
        user = await create_user(
            conn, username=username, role=role, password=password, actor_label="test"
        )
    return user.id


@attrs.frozen
class Session:
    user_id: int
    role: str
    access: str
    refresh: str
    csrf: str

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}

    def cookie(self, *, csrf: bool = True) -> dict[str, str]:
        headers = {
            "Cookie": f"{ACCESS_COOKIE}={self.access}; {REFRESH_COOKIE}={self.refresh}; "
            f"{CSRF_COOKIE}={self.csrf}"
        }
        if csrf:
            headers[CSRF_HEADER] = self.csrf
        return headers

    def headers(self, mode: str) -> dict[str, str]:
        return self.bearer() if mode == "bearer" else self.cookie()


async def login(client: TestClient, username: str, password: str = PASSWORD) -> Session:
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200, await response.text()
    body = await response.json()
    return Session(
        user_id=body["user"]["id"],
        role=body["user"]["role"],
        access=body["access_token"],
        refresh=body["refresh_token"],
        csrf=body["csrf_token"],
    )
