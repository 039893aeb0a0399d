"""The ``browser`` fixture: Debian's chromium driven by Playwright, closed after the test."""

from collections.abc import AsyncIterator

import pytest
from _browser import CHROMIUM, CHROMIUM_ARGS
from playwright.async_api import Browser, async_playwright


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
