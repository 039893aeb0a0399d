"""An admin manages agent phones and voicemail boxes through the real UI in Debian's chromium:
a phone assigned to an agent, a box, field errors from the API, secrets never sent back and
kept when left empty, deleting, and hostile text shown as text."""

import pytest
from _browser import log_in, serving

SIP_PASSWORD = "phone pass;word"
PIN = "482916"
HOSTILE = '<img src=x onerror="window.hacked=1">'


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    users = [("admin", "admin"), ("alice", "agent")]
    async with serving(aiohttp_server, callcore_settings, users) as site:
        yield site


async def test_admin_manages_a_phone_and_a_voicemail_box(site, page):
    base, runtime = site
    pool = runtime.database.pool
    alice = await pool.fetchval("SELECT id FROM users WHERE username = 'alice'")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, base)

    nav = page.get_by_test_id("main-nav")
    await nav.get_by_text("Agents").click()
    await nav.get_by_role("link", name="Postes").click()
    await page.wait_for_url(f"{base}/agents/phones")
    await page.get_by_test_id("phones").locator("[data-state=empty]").wait_for()

    # A phone for alice; a bad endpoint is refused on its field, nothing written.
    await page.get_by_test_id("new-phone").click()
    form = page.get_by_test_id("phone-form")
    await form.locator('[name="endpoint"]').fill("Alice Desk")
    await form.locator('[name="password"]').fill(SIP_PASSWORD)
    await form.locator('[name="label"]').fill(HOSTILE)
    await form.locator('[name="extension"]').fill("201")
    await form.locator('[name="user_id"]').select_option(str(alice))
    await page.get_by_test_id("save").click()
    await page.locator('[name="endpoint"][aria-invalid="true"]').wait_for()
    assert await pool.fetchval("SELECT count(*) FROM phones") == 0
    await form.locator('[name="endpoint"]').fill("alice-desk")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/agents/phones?done=created")
    row = page.get_by_test_id("phone-alice-desk")
    await row.wait_for()
    assert HOSTILE in await row.inner_text() and "alice" in await row.inner_text()
    phone = await pool.fetchrow("SELECT * FROM phones")
    assert runtime.cipher.decrypt(phone["password_encrypted"]).value == SIP_PASSWORD
    assert await pool.fetchval("SELECT user_id FROM phone_assignments") == alice

    # Edit: the password never comes back, left empty it is kept.
    await row.get_by_role("link", name="alice-desk").click()
    await page.wait_for_url(f"{base}/agents/phones/{phone['id']}")
    assert SIP_PASSWORD not in await page.content()
    assert await form.locator('[name="password"]').input_value() == ""
    await form.locator('[name="max_contacts"]').fill("2")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/agents/phones?done=saved")
    edited = await pool.fetchrow("SELECT * FROM phones")
    assert (
        edited["max_contacts"] == 2 and edited["password_encrypted"] == phone["password_encrypted"]
    )
    assert await pool.fetchval("SELECT user_id FROM phone_assignments") == alice

    # A voicemail box for alice.
    await nav.get_by_text("Paramètres").click()
    await nav.get_by_role("link", name="Messagerie vocale").click()
    await page.wait_for_url(f"{base}/settings/voicemail")
    await page.get_by_test_id("voicemail").locator("[data-state=empty]").wait_for()
    await page.get_by_test_id("new-voicemail").click()
    form = page.get_by_test_id("voicemail-form")
    await form.locator('[name="mailbox"]').fill("201")
    await form.locator('[name="pin"]').fill("12")
    await form.locator('[name="name"]').fill(HOSTILE)
    await form.locator('[name="email"]').fill("alice@example.com")
    await form.locator('[name="user_id"]').select_option(str(alice))
    await page.get_by_test_id("save").click()
    await page.locator('[data-field-error="/pin"]:not(:empty)').wait_for()
    assert await pool.fetchval("SELECT count(*) FROM voicemail_boxes") == 0
    await form.locator('[name="pin"]').fill(PIN)
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/voicemail?done=created")
    row = page.get_by_test_id("voicemail-201@default")
    await row.wait_for()
    assert HOSTILE in await row.inner_text() and "alice" in await row.inner_text()
    box = await pool.fetchrow("SELECT * FROM voicemail_boxes")
    assert runtime.cipher.decrypt(box["pin_encrypted"]).value == PIN

    await row.get_by_role("link", name="201@default").click()
    await page.wait_for_url(f"{base}/settings/voicemail/{box['id']}")
    assert PIN not in await page.content()
    await form.locator('[name="max_message_seconds"]').fill("60")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/voicemail?done=saved")
    edited = await pool.fetchrow("SELECT * FROM voicemail_boxes")
    assert edited["max_message_seconds"] == 60 and edited["pin_encrypted"] == box["pin_encrypted"]

    # Both are deleted from their forms.
    await page.goto(f"{base}/settings/voicemail/{box['id']}")
    await page.get_by_test_id("delete").click()
    await page.wait_for_url(f"{base}/settings/voicemail?done=deleted")
    await page.goto(f"{base}/agents/phones/{phone['id']}")
    await page.get_by_test_id("delete").click()
    await page.wait_for_url(f"{base}/agents/phones?done=deleted")
    await page.get_by_test_id("phones").locator("[data-state=empty]").wait_for()
    assert await pool.fetchval("SELECT count(*) FROM voicemail_boxes") == 0
    assert await pool.fetchval("SELECT count(*) FROM phones") == 0
    assert not await page.evaluate("window.hacked === 1") and errors == []
