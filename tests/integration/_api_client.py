"""The web app on a real socket, with users of each role holding real access tokens.

Shared by the API tests: a user row is inserted (no password needed: tokens are issued with the
app's own keys, exactly as login does) and requests carry ``Authorization: Bearer``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from callcore.auth.principal import Principal
from callcore.config import Settings
from callcore.runtime import Runtime, open_runtime
from callcore.web.app import create_app
from callcore.web.auth import TOKEN_KEYS


@attrs.define
class Api:
    client: TestClient
    app: web.Application
    runtime: Runtime

    async def user(self, role: str, username: str | None = None) -> Principal:
        name = username or f"{role}-user"
        row = await self.runtime.database.pool.fetchrow(
            "INSERT INTO users (username, role, password_hash) VALUES ($1, $2, 'unused') "
            "RETURNING id, username, role, language, token_version",
            name,
            role,
        )
        return Principal(
            row["id"], row["username"], row["role"], row["language"], row["token_version"]
        )

    def token(self, principal: Principal) -> str:
        return self.app[TOKEN_KEYS].issue_access(principal).token

    async def headers(self, role: str, username: str | None = None) -> dict[str, str]:
        """Bearer headers of a new user with ``role``."""
        return {"Authorization": f"Bearer {self.token(await self.user(role, username))}"}

    async def count(self, table: str) -> int:
        return await self.runtime.database.pool.fetchval(f"SELECT count(*) FROM {table}")

    async def snapshot(self) -> tuple[Any, ...]:
        """Everything a refused request must leave untouched."""
        pool = self.runtime.database.pool
        tables = ("disposition_groups", "dispositions", "audit_log")
        return tuple([await pool.fetch(f"SELECT * FROM {table} ORDER BY id") for table in tables])


ClientFactory = Callable[[web.Application], Awaitable[TestClient]]


@asynccontextmanager
async def open_api(
    aiohttp_client: ClientFactory,
    settings: Settings,
    prepare: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[Api]:
    """The app of a running node; ``prepare`` may add test-only routes before it starts."""
    async with open_runtime(settings) as runtime:
        app = create_app(runtime)
        if prepare is not None:
            prepare(app)
        yield Api(await aiohttp_client(app), app, runtime)


def if_match(headers: dict[str, str], row: dict[str, Any]) -> dict[str, str]:
    """``headers`` plus the If-Match of ``row``'s current version."""
    return {**headers, "If-Match": f'"{row["version"]}"'}


async def problem(response: ClientResponse, status: int) -> dict[str, Any]:
    """The problem+json body of ``response``, which must have ``status``."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    return await response.json()
