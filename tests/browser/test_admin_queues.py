"""An admin manages a queue through the real UI in Debian's chromium: members added and removed
in the htmx editor, field errors from the API, a penalty edited, the conflict message on a stale
version, deleting, and hostile text shown as text."""

import pytest
from _browser import log_in, serving

HOSTILE = '<img src=x onerror="window.hacked=1">'


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    users = [("admin", "admin"), ("ann", "agent"), ("sam", "supervisor"), ("zoe", "agent")]
    async with serving(aiohttp_server, callcore_settings, users) as site:
        yield site


async def add_member(page, username):
    members = page.get_by_test_id("members")
    await members.get_by_test_id("member-choice").select_option(label=username)
    await members.get_by_test_id("add-member").click()
    await page.get_by_test_id(f"member-{username}").wait_for()


async def members(pool):
    rows = await pool.fetch(
        "SELECT u.username, m.penalty FROM queue_members m JOIN users u ON u.id = m.user_id "
        "ORDER BY u.username"
    )
    return {row["username"]: row["penalty"] for row in rows}


async def test_admin_creates_a_queue_with_two_members_edits_a_penalty_and_deletes_it(site, page):
    base, runtime = site
    pool = runtime.database.pool
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, base)

    nav = page.get_by_test_id("main-nav")
    await nav.get_by_text("Paramètres").click()
    await nav.get_by_role("link", name="Files d’attente").click()
    await page.wait_for_url(f"{base}/settings/queues")
    await page.get_by_test_id("queues").locator("[data-state=empty]").wait_for()

    # New queue: three members added, one removed again; a bad name is refused on its field.
    await page.get_by_test_id("new-queue").click()
    form = page.get_by_test_id("queue-form")
    await form.locator("[data-state=empty]").wait_for()
    assert await form.locator('[name="add"] option').all_inner_texts() == ["ann", "sam", "zoe"]
    await form.locator('[name="name"]').fill("Sales Line")
    await form.locator('[name="label"]').fill(HOSTILE)
    await form.locator('[name="strategy"]').select_option("leastrecent")
    await form.locator('[name="max_wait_seconds"]').fill("120")
    await add_member(page, "ann")
    await page.get_by_test_id("member-ann").locator('[name="penalty"]').fill("2")
    await add_member(page, "zoe")
    await add_member(page, "sam")
    # What was typed survives the editor's round trips.
    assert await page.get_by_test_id("member-ann").locator('[name="penalty"]').input_value() == "2"
    await page.get_by_test_id("member-zoe").get_by_test_id("remove-member").click()
    await page.get_by_test_id("member-zoe").wait_for(state="detached")
    await page.get_by_test_id("member-sam").locator('[name="penalty"]').fill("5")
    await page.get_by_test_id("save").click()
    await page.locator('[name="name"][aria-invalid="true"]').wait_for()
    assert "/name" in await page.locator('[data-field-error="/name"]').inner_text()
    assert await pool.fetchval("SELECT count(*) FROM queues") == 0

    await form.locator('[name="name"]').fill("sales")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/queues?done=created")
    row = page.get_by_test_id("queue-sales")
    await row.wait_for()
    assert HOSTILE in await row.inner_text()  # shown as text, never run
    queue = await pool.fetchrow("SELECT * FROM queues")
    assert queue["strategy"] == "leastrecent" and queue["max_wait_seconds"] == 120
    assert await members(pool) == {"ann": 2, "sam": 5}

    # Editing a penalty.
    await row.get_by_role("link", name="sales").click()
    await page.wait_for_url(f"{base}/settings/queues/{queue['id']}")
    await page.get_by_test_id("member-sam").locator('[name="penalty"]').fill("40")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/queues?done=saved")
    await page.get_by_test_id("queue-sales").wait_for()
    assert await members(pool) == {"ann": 2, "sam": 40}

    # Someone else saves while the form is open: the conflict message, nothing overwritten.
    await page.goto(f"{base}/settings/queues/{queue['id']}")
    await pool.execute("UPDATE queues SET label = 'changed elsewhere'")
    await page.get_by_test_id("member-ann").locator('[name="penalty"]').fill("99")
    await page.get_by_test_id("save").click()
    conflict = form.locator("[data-form-error]")
    await conflict.wait_for()
    assert (await conflict.inner_text()).startswith("Quelqu’un d’autre a modifié cet élément")
    assert await members(pool) == {"ann": 2, "sam": 40}

    # Reloaded, the admin deletes it.
    await page.reload()
    assert await form.locator('[name="label"]').input_value() == "changed elsewhere"
    await page.get_by_test_id("delete").click()
    await page.wait_for_url(f"{base}/settings/queues?done=deleted")
    await page.get_by_test_id("queues").locator("[data-state=empty]").wait_for()
    assert await pool.fetchval("SELECT count(*) FROM queues") == 0
    assert await members(pool) == {}

    actions = await pool.fetch(
        "SELECT action FROM audit_log WHERE entity_type = 'queue' ORDER BY id"
    )
    assert [row["action"] for row in actions] == ["create", "update", "delete"]
    assert await page.evaluate("window.hacked") is None
    assert errors == []
