"""The users and groups pages in Debian's chromium: an admin creates, edits and disables a user
and a group and finds the edits in the audit log; two sessions editing one user, the second
gets the conflict message; supervisors read only, agents are refused."""

import re

import pytest
from _browser import PASSWORD, serving
from playwright.async_api import expect

XSS = "<img src=x onerror=window.pwned=1>"


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    users = (("admin", "admin"), ("sup", "supervisor"), ("agent", "agent"))
    async with serving(aiohttp_server, callcore_settings, users, language="en") as site:
        yield site


async def logged_in(browser, base, username):
    """A fresh browser context (its own cookies) logged in as ``username``, in English."""
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    await page.goto(f"{base}/login")
    await page.get_by_label("Username", exact=True).fill(username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
    page.errors = errors
    return page


async def test_admin_manages_users_and_groups_and_sees_the_audit_log(site, browser):
    base, runtime = site
    page = await logged_in(browser, base, "admin")

    # A group first, so the user can join it.
    await page.goto(f"{base}/agents/groups")
    await page.get_by_test_id("new-group").click()
    await page.get_by_label("Name", exact=True).fill(f"Night shift {XSS}")
    await page.get_by_role("button", name="Create the group").click()
    await page.wait_for_url(re.compile(r".*/agents/groups/\d+$"))
    assert await page.locator("h1").inner_text() == f"Night shift {XSS}"

    # Create a user: the password shows once.
    await page.goto(f"{base}/agents/users")
    await page.get_by_test_id("user-row").first.wait_for()
    await page.get_by_test_id("new-user").click()
    form = page.get_by_test_id("user-form")
    await form.get_by_label("Username", exact=True).fill("zoe")
    await form.get_by_label("Name", exact=True).fill(XSS)
    await form.get_by_label("Email").fill("not an email")
    await form.get_by_label("Groups").select_option(label=f"Night shift {XSS}")
    await page.get_by_role("button", name="Create the user").click()
    error = form.locator('[data-field-error="/email"]')
    await error.get_by_text("must be a valid email").wait_for()
    await form.get_by_label("Email").fill("zoe@example.org")
    await page.get_by_role("button", name="Create the user").click()
    await page.get_by_test_id("password-panel").wait_for()
    password = await page.get_by_test_id("new-password").inner_text()
    assert len(password) >= 16
    await page.get_by_role("link", name="Open the new user").click()
    await page.wait_for_url(re.compile(r".*/agents/users/\d+$"))
    assert "never logged in" in await page.get_by_test_id("user-status").inner_text()
    user_url = page.url

    # Edit it, then disable it.
    await page.get_by_label("Name", exact=True).fill("Zoé Martin")
    await page.get_by_label("Role").select_option("supervisor")
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("Changes saved.").wait_for()
    await page.get_by_test_id("toggle-active").click()
    await page.get_by_test_id("toggle-active").get_by_text("Enable the user").wait_for()
    assert (await page.get_by_test_id("user-status").inner_text()).startswith("Disabled")
    row = await runtime.database.pool.fetchrow("SELECT * FROM users WHERE username = 'zoe'")
    assert (row["display_name"], row["role"], row["is_active"]) == (
        "Zoé Martin",
        "supervisor",
        False,
    )

    # The list filters with htmx and escapes what users typed.
    await page.goto(f"{base}/agents/users")
    await page.get_by_role("searchbox").fill("zoé")
    await expect(page.get_by_test_id("user-row")).to_have_count(1)
    await expect(page.get_by_test_id("user-row")).to_contain_text("Zoé Martin")
    await page.get_by_label("Status").select_option("true")
    await page.locator("[data-state=empty]").wait_for()

    # Edit the group's description and add a member; it cannot be deleted by an agent, only
    # by an admin, and it goes.
    await page.goto(f"{base}/agents/groups")
    await page.get_by_role("link", name=f"Night shift {XSS}").click()
    await page.get_by_label("Description").fill("Evenings")
    await page.get_by_label("Members").select_option(label="agent")
    await page.get_by_role("button", name="Save").click()
    await page.get_by_text("Changes saved.").wait_for()
    await page.get_by_test_id("delete-group").click()
    await page.wait_for_url(f"{base}/agents/groups")
    await page.locator("[data-state=empty]").wait_for()

    # The audit log shows each of those changes.
    await page.goto(f"{base}/settings/audit")
    await page.get_by_test_id("audit-entry").first.wait_for()
    actions = await page.locator("[data-testid=audit-entry] td[data-action]").evaluate_all(
        "cells => cells.map(cell => cell.dataset.action)"
    )
    for action in ("create", "update", "change_role", "disable", "delete"):
        assert action in actions
    assert await page.evaluate("window.pwned") is None
    assert page.errors == []
    assert user_url.startswith(f"{base}/agents/users/")


async def test_two_sessions_editing_one_user_the_second_gets_the_conflict(site, browser):
    base, runtime = site
    user_id = await runtime.database.pool.fetchval("SELECT id FROM users WHERE username = 'agent'")
    first = await logged_in(browser, base, "admin")
    second = await logged_in(browser, base, "admin")
    for page in (first, second):
        await page.goto(f"{base}/agents/users/{user_id}")
    await first.get_by_label("Name", exact=True).fill("First edit")
    await first.get_by_role("button", name="Save").click()
    await first.get_by_text("Changes saved.").wait_for()
    await second.get_by_label("Name", exact=True).fill("Second edit")
    await second.get_by_role("button", name="Save").click()
    alert = second.get_by_test_id("user-form").locator("[data-form-error]")
    await alert.get_by_text("Someone else changed this user").wait_for()
    name = await runtime.database.pool.fetchval(
        "SELECT display_name FROM users WHERE id = $1", user_id
    )
    assert name == "First edit"


async def test_supervisors_read_only_and_agents_are_refused(site, browser):
    base, runtime = site
    user_id = await runtime.database.pool.fetchval("SELECT id FROM users WHERE username = 'agent'")
    supervisor = await logged_in(browser, base, "sup")
    await supervisor.goto(f"{base}/agents/users/{user_id}")
    assert await supervisor.get_by_label("Name", exact=True).is_disabled()
    assert await supervisor.get_by_role("button", name="Save").count() == 0
    assert await supervisor.get_by_test_id("delete-user").count() == 0
    response = await supervisor.goto(f"{base}/agents/users/new")
    assert response.status == 403
    refused = await supervisor.evaluate(
        """async (id) => {
          const shell = await import("/static/callcore.js");
          const r = await fetch(`/api/v1/users/${id}`, {method: "PATCH",
            headers: {"Content-Type": "application/json", "If-Match": '"1"',
                      "X-CSRF-Token": shell.csrfToken()},
            body: JSON.stringify({role: "admin"})});
          return r.status;
        }""",
        user_id,
    )
    assert refused == 403

    agent = await logged_in(browser, base, "agent")
    for url in ("/agents/users", "/agents/groups", f"/agents/users/{user_id}"):
        response = await agent.goto(f"{base}{url}")
        assert response.status == 403, url
    assert (await agent.goto(f"{base}/api/v1/users")).status == 403
    assert (await agent.goto(f"{base}/api/v1/users/{user_id}")).status == 200
    row = await runtime.database.pool.fetchrow("SELECT * FROM users WHERE id = $1", user_id)
    assert row["role"] == "agent"
