"""Helpers for the browser tests (a module of its own: test files cannot import a conftest).

Debian's chromium driven by Playwright, and a running node with users to log in as.
"""

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import attrs

from callcore.db.users import create_user
from callcore.runtime import Runtime, open_runtime
from callcore.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
# Headless as root, with none of the background traffic this closed network would refuse.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a long enough test password"


@asynccontextmanager
async def serving(
    aiohttp_server,
    settings,
    users: Iterable[tuple[str, str]],
    language: str = "fr",
    *,
    agi: bool = False,
) -> AsyncIterator[tuple[str, Runtime]]:
    """A node on a real socket with ``(username, role)`` users (password :data:`PASSWORD`);
    yields its base URL (no trailing slash) and its runtime. ``agi`` also starts its FastAGI
    server, on a free port (``runtime.agi.port``), for calls from the simulator."""
    if agi:
        settings = attrs.evolve(settings, agi=attrs.evolve(settings.agi, enabled=True))
    async with open_runtime(settings, agi_port=0 if agi else None) as runtime:
        async with runtime.database.pool.acquire() as conn:
            for username, role in users:
                await create_user(
                    conn,
                    username=username,
                    role=role,
                    password=PASSWORD,
                    actor_label="test",
                    language=language,
                )
        server = await aiohttp_server(create_app(runtime))
        yield str(server.make_url("/")).rstrip("/"), runtime


async def log_in(page, base: str) -> None:
    """Log in as ``admin`` through the real (French) login form and land on the status page."""
    await page.goto(f"{base}/login")
    await page.get_by_label("Identifiant").fill("admin")
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(f"{base}/")
