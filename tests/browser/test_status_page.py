"""The status page in a real browser (Debian's chromium driven by Playwright)."""

import pytest
from playwright.async_api import async_playwright

from callcore.runtime import open_runtime
from callcore.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
async def base_url(aiohttp_server, callcore_settings):
    async with open_runtime(callcore_settings) as runtime:
        server = await aiohttp_server(create_app(runtime))
        yield str(server.make_url("/"))


async def test_status_page_shows_database_and_plugins_styled(base_url):
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            response = await page.goto(base_url)
            assert response is not None and response.status == 200
            assert await page.title() == "État du service — callcore"
            assert "PostgreSQL" in await page.get_by_test_id("database-ok").inner_text()
            await page.get_by_role("cell", name="callcore.plugins.dispositions").wait_for()
            # Pico CSS really loaded: it sets the page font, which the browser default does not.
            font = await page.evaluate("getComputedStyle(document.body).fontFamily")
            assert "system-ui" in font
            assert failed == []
        finally:
            await browser.close()
