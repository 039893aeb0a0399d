"""Running the web application on a socket, for ``callcore serve`` and ``callcore demo``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from callcore.errors import ConfigError
from callcore.runtime import Runtime
from callcore.web.app import create_app


@asynccontextmanager
async def running_web(runtime: Runtime, host: str, port: int) -> AsyncIterator[str]:
    """Listen on host:port until the block exits, then drain requests and close; yields the URL."""
    runner = web.AppRunner(create_app(runtime), access_log=None, shutdown_timeout=10)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}/"
    finally:
        await runner.cleanup()
