"""Every page, for every role that may open it, in Debian's chromium on an empty database: the
loading state while its content is on its way, then the content or the empty state; the error
state when the request it loads from fails; and on a form, the error message when the API it
writes to fails. Never a blank page, never a loading state that stays.

The pages come from the app itself: the navigation registry (each entry with its roles) and the
``…/new`` form routes (with the roles of their handler). A list page marks what it loads with the
``loading()`` macro inside an htmx container; the content arrives in that container, and a
failed load puts the ``error_state()`` there (``callcore.js``).
"""

import asyncio
import json
from collections.abc import Awaitable, Callable

import pytest
from _browser import PASSWORD, serving
from aiohttp import web
from aiohttp.web_urldispatcher import StaticResource
from playwright.async_api import Browser, Page, Route, expect

from callcore.db.users import ROLES
from callcore.web.app import create_app
from callcore.web.auth import access_rule
from callcore.web.nav import NAV

SERVER_RENDERED = {"/": "the node's live status, read while the page is rendered"}
"""Pages that load nothing after they arrive, so they have no loading state: what they show is
in the first answer. Any other page must load its content into a container with a loading state."""

LOADS = ("xhr", "fetch")
SERVER_FAILURE = "500 Internal Server Error\n\nServer got itself in trouble"
API_FAILURE = {
    "type": "about:blank",
    "title": "Internal Server Error",
    "status": 500,
    "detail": "An unexpected error occurred; it has been logged.",
}
WAIT_MS = 5000

Pages = dict[str, list[str]]
"""Role -> the pages (paths) it may open."""


def nav_pages(app: web.Application) -> Pages:
    """Each role's navigation entries: the pages a user of that role finds."""
    return {role: [entry.url for entry in app[NAV] if role in entry.roles] for role in ROLES}


def form_pages(app: web.Application) -> Pages:
    """Each role's ``…/new`` forms: GET routes whose handler lets that role in."""
    forms: Pages = {role: [] for role in ROLES}
    for route in app.router.routes():
        path = route.resource.canonical
        if route.method != "GET" or isinstance(route.resource, StaticResource):
            continue
        if path.endswith("/new"):
            rule = access_rule(route.handler)
            assert rule is not None and not rule.public, f"{path} is a form anyone may open"
            for role in rule.roles:
                forms[role].append(path)
    return forms


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    """A node whose only rows are one user per role (named after the role), and its app."""
    users = [(role, role) for role in ROLES]
    async with serving(aiohttp_server, callcore_settings, users) as (base, runtime):
        yield base, create_app(runtime)


async def logged_in(browser: Browser, base: str, username: str, errors: list[str]) -> Page:
    """A French page logged in as ``username``; its script errors go to ``errors``."""
    context = await browser.new_context(locale="fr-FR")
    page = await context.new_page()
    page.on("pageerror", lambda error: errors.append(f"{page.url}: {error}"))
    await page.goto(f"{base}/login")
    await page.get_by_label("Identifiant").fill(username)
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(lambda url: "/login" not in url)
    return page


async def routed(page: Page, url: str, handler: Callable[[Route], Awaitable[None]]) -> list[str]:
    """Open ``url`` with ``handler`` answering what the page loads after it arrived (htmx and
    fetch requests); the URLs it was asked for."""
    seen: list[str] = []

    async def route(route: Route) -> None:
        if route.request.resource_type in LOADS:
            seen.append(route.request.url)
            await handler(route)
        else:
            await route.continue_()

    await page.unroute("**/*")
    await page.route("**/*", route)
    await page.goto(url)
    return seen


async def mark_containers(page: Page) -> int:
    """Mark the containers still showing their loading state; how many there are. A container
    is an htmx target (``hx-get``) or an element a script fills (``data-loads``)."""
    return await page.evaluate(
        """() => {
            const loading = document.querySelectorAll(
                "main :is([hx-get], [data-loads]) [data-state=loading]");
            const containers = new Set(
                [...loading].map((state) => state.closest("[hx-get], [data-loads]")));
            containers.forEach((container) => container.setAttribute("data-walked", ""));
            return containers.size;
        }"""
    )


async def check_loading_then_content(page: Page, url: str) -> list[str]:
    """The loading state while the content is held back, then the content or the empty state:
    what each container ended with ("content" or "empty")."""
    release, arrived = asyncio.Event(), asyncio.Event()

    async def hold(route: Route) -> None:
        arrived.set()
        await release.wait()
        await route.continue_()

    loads = await routed(page, url, hold)
    containers = await mark_containers(page)
    for index in range(containers):
        container = page.locator("[data-walked]").nth(index)
        await expect(container.locator("[data-state=loading]")).to_be_visible()
    async with asyncio.timeout(WAIT_MS / 1000):
        while len(loads) < containers:
            await arrived.wait()
            arrived.clear()
    release.set()
    if not containers:
        assert loads == [], f"{url} loads {loads} without showing a loading state"
        return []
    await expect(page.locator("main [data-state=loading]")).to_have_count(0, timeout=WAIT_MS)
    endings = []
    for index in range(containers):
        container = page.locator("[data-walked]").nth(index)
        assert await container.locator("[data-state=error]").count() == 0, f"{url}: error state"
        if await container.locator("[data-state=empty]").count():
            endings.append("empty")
        else:
            assert (await container.inner_text()).strip(), f"{url}: a blank container"
            endings.append("content")
    return endings


async def check_error_state(page: Page, url: str, containers: int) -> None:
    """Every load failing: each container shows the error state instead of its loading state,
    and a toast says so."""

    async def fail(route: Route) -> None:
        await route.fulfill(status=500, content_type="text/plain", body=SERVER_FAILURE)

    await routed(page, url, fail)
    assert await mark_containers(page) in (0, containers)  # the failures may be in already
    errors = page.locator("main :is([hx-get], [data-loads]) [data-state=error]")
    await expect(errors).to_have_count(containers, timeout=WAIT_MS)
    await expect(page.locator("main [data-state=loading]")).to_have_count(0)
    await expect(page.locator("#toasts .toast-error").first).to_be_visible()


async def check_form_error(page: Page, url: str) -> None:
    """The form as it arrives (nothing loading), then its error message when the API fails."""

    async def fail_writes(route: Route) -> None:
        if route.request.method == "GET" or "/api/" not in route.request.url:
            await route.continue_()
        else:
            body = json.dumps(API_FAILURE)
            await route.fulfill(status=500, content_type="application/problem+json", body=body)

    await routed(page, url, fail_writes)
    await expect(page.locator("main [data-state=loading]")).to_have_count(0)
    form = page.locator("main form:has([data-form-error])").first
    await expect(form).to_be_visible()
    # The browser's own checks (required fields) would stop the click before the API is asked.
    await form.evaluate("(form) => { form.noValidate = true; }")
    await form.locator("button[type=submit]").first.click()
    message = form.locator("[data-form-error]")
    await expect(message).to_be_visible(timeout=WAIT_MS)
    await expect(message).to_contain_text(API_FAILURE["detail"])
    await expect(form.locator("button[type=submit]").first).to_be_enabled()


async def test_every_page_shows_its_loading_content_empty_and_error_states(site, browser):
    base, app = site
    pages, forms = nav_pages(app), form_pages(app)
    assert pages["admin"] and forms["admin"], "the walk found no page"
    walked: dict[str, list[str]] = {}
    errors: list[str] = []
    for role in ROLES:
        if not pages[role] and not forms[role]:
            continue
        page = await logged_in(browser, base, role, errors)
        for path in pages[role]:
            endings = await check_loading_then_content(page, f"{base}{path}")
            if not endings:
                assert path in SERVER_RENDERED, f"{path} has no loading state: add one"
                assert await page.locator("main h1").count() == 1
            else:
                await check_error_state(page, f"{base}{path}", len(endings))
            walked[f"{role} {path}"] = endings
        for path in forms[role]:
            await check_form_error(page, f"{base}{path}")
            walked[f"{role} {path}"] = ["form"]
        await page.context.close()
    # On an empty database the lists of configuration are empty; the users list is not.
    assert walked["admin /settings/trunks"] == ["empty"]
    assert walked["supervisor /agents/groups"] == ["empty"]
    assert walked["supervisor /agents/users"] == ["content"]
    assert walked["admin /"] == [] and walked["supervisor /"] == []
    assert errors == []
