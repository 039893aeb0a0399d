"""Browser fixtures: Debian's chromium driven by Playwright, and a French page in it."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from _browser import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Browser, Page, async_playwright


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def page(browser: Browser) -> Page:
    """A page in a French browser that says yes to confirmations (the delete buttons ask)."""
    context = await browser.new_context(locale="fr-FR")
    page = await context.new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    return page
