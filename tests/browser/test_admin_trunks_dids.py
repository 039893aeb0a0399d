"""An admin manages SIP trunks and DIDs through the real UI in Debian's chromium: field errors
from the API, the write-only password, the conflict message on a stale version, disabling,
deleting, and hostile text shown as text."""

import pytest
from _browser import log_in, serving

TRUNK_PASSWORD = "carrier pass;word"
HOSTILE = '<img src=x onerror="window.hacked=1">'


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    async with serving(aiohttp_server, callcore_settings, [("admin", "admin")]) as site:
        yield site


async def field_error(page, pointer):
    return await page.locator(f'[data-field-error="{pointer}"]').inner_text()


async def test_admin_creates_edits_disables_and_deletes_a_trunk_and_a_did(site, page):
    base, runtime = site
    pool = runtime.database.pool
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await log_in(page, base)

    # The navigation leads to the trunks, which are empty at first.
    nav = page.get_by_test_id("main-nav")
    await nav.get_by_text("Paramètres").click()
    await nav.get_by_role("link", name="Trunks SIP").click()
    await page.wait_for_url(f"{base}/settings/trunks")
    await page.get_by_test_id("trunks").locator("[data-state=empty]").wait_for()

    # A bad name is refused on its field by the API; nothing is written.
    await page.get_by_test_id("new-trunk").click()
    form = page.get_by_test_id("trunk-form")
    await form.locator('[name="name"]').fill("Bad Name")
    await form.locator('[name="host"]').fill("sip.carrier.example")
    await form.locator('[name="username"]').fill("acct-1")
    await form.locator('[name="password"]').fill(TRUNK_PASSWORD)
    await form.locator('[name="allowed_prefixes"]').fill("+33, +32")
    await form.locator('[name="label"]').fill(HOSTILE)
    await form.locator('[name="codecs"][value="g722"]').check()
    await page.get_by_test_id("save").click()
    await page.locator('[name="name"][aria-invalid="true"]').wait_for()
    assert "/name" in await field_error(page, "/name")
    assert await pool.fetchval("SELECT count(*) FROM sip_trunks") == 0

    await form.locator('[name="name"]').fill("carrier-1")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/trunks?done=created")
    row = page.get_by_test_id("trunk-carrier-1")
    await row.wait_for()
    assert HOSTILE in await row.inner_text()  # shown as text, never run
    assert "+33, +32" in await row.inner_text()
    trunk = await pool.fetchrow("SELECT * FROM sip_trunks")
    assert trunk["codecs"] == ["alaw", "ulaw", "g722"] and trunk["username"] == "acct-1"
    assert runtime.cipher.decrypt(trunk["password_encrypted"]).value == TRUNK_PASSWORD

    # Editing: the password is never sent back to the browser, and left empty it is kept.
    await row.get_by_role("link", name="carrier-1").click()
    await page.wait_for_url(f"{base}/settings/trunks/{trunk['id']}")
    assert TRUNK_PASSWORD not in await page.content()
    assert await form.locator('[name="password"]').input_value() == ""
    await form.locator('[name="max_concurrent_calls"]').fill("5")
    # Source addresses: a network with host bits set is refused on its field, then fixed.
    await form.locator('[name="match_addresses"]').fill("192.0.2.10, 198.51.100.7/24")
    await page.get_by_test_id("save").click()
    # An item's pointer has no input of its own: the message, naming it, is the form's.
    await form.locator("[data-form-error]").filter(has_text="/match_addresses/1 is not").wait_for()
    assert await pool.fetchval("SELECT max_concurrent_calls FROM sip_trunks") != 5
    await form.locator('[name="match_addresses"]').fill("192.0.2.10, 198.51.100.0/24")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/trunks?done=saved")
    await page.get_by_test_id("trunk-carrier-1").wait_for()
    edited = await pool.fetchrow("SELECT *, match_addresses::text[] AS sources FROM sip_trunks")
    assert edited["max_concurrent_calls"] == 5
    assert edited["sources"] == ["192.0.2.10/32", "198.51.100.0/24"]
    assert runtime.cipher.decrypt(edited["password_encrypted"]).value == TRUNK_PASSWORD

    # Someone else saves while the form is open: the conflict message, nothing overwritten.
    await page.goto(f"{base}/settings/trunks/{trunk['id']}")
    sources = await form.locator('[name="match_addresses"]').input_value()
    assert sources == "192.0.2.10/32, 198.51.100.0/24"
    await pool.execute("UPDATE sip_trunks SET label = 'changed elsewhere'")
    await form.locator('[name="enabled"]').uncheck()
    await page.get_by_test_id("save").click()
    conflict = form.locator("[data-form-error]")
    await conflict.wait_for()
    assert (await conflict.inner_text()).startswith("Quelqu’un d’autre a modifié cet élément")
    assert await pool.fetchval("SELECT enabled FROM sip_trunks") is True

    # Reloaded, the admin disables it.
    await page.reload()
    assert await form.locator('[name="label"]').input_value() == "changed elsewhere"
    await form.locator('[name="enabled"]').uncheck()
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/trunks?done=saved")
    await page.get_by_test_id("trunk-carrier-1").wait_for()
    assert await pool.fetchval("SELECT enabled FROM sip_trunks") is False

    # A DID: a French number typed nationally, on that trunk, to the fallback flow.
    await page.goto(f"{base}/settings/dids")
    await page.get_by_test_id("dids").locator("[data-state=empty]").wait_for()
    await page.get_by_test_id("new-did").click()
    did_form = page.get_by_test_id("did-form")
    assert await did_form.locator('[name="flow_id"] option').all_inner_texts() == [
        "flux de secours"
    ]
    await did_form.locator('[name="number"]').fill("01 23")
    await page.get_by_test_id("save").click()
    await page.locator('[name="number"][aria-invalid="true"]').wait_for()
    assert "'01 23'" in await field_error(page, "/number")
    await did_form.locator('[name="number"]').fill("01 23 45 67 89")
    await did_form.locator('[name="trunk_id"]').select_option(label="carrier-1")
    await did_form.locator('[name="label"]').fill("Ventes")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/dids?done=created")
    did_row = page.get_by_test_id("did-+33123456789")
    await did_row.wait_for()
    assert "carrier-1" in await did_row.inner_text()
    assert "flux de secours" in await did_row.inner_text()

    # The trunk cannot go while the DID uses it: the API's message says why.
    await page.goto(f"{base}/settings/trunks/{trunk['id']}")
    await page.get_by_test_id("delete").click()
    refusal = form.locator("[data-form-error]")
    await refusal.wait_for()
    assert "+33123456789" in await refusal.inner_text()

    # Edit then delete the DID, then the trunk.
    await page.goto(f"{base}/settings/dids")
    await page.get_by_test_id("did-+33123456789").get_by_role("link").click()
    await did_form.locator('[name="label"]').fill("Ventes France")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/dids?done=saved")
    assert "Ventes France" in await page.get_by_test_id("did-+33123456789").inner_text()
    await page.get_by_test_id("did-+33123456789").get_by_role("link").click()
    await page.get_by_test_id("delete").click()
    await page.wait_for_url(f"{base}/settings/dids?done=deleted")
    await page.get_by_test_id("dids").locator("[data-state=empty]").wait_for()

    await page.goto(f"{base}/settings/trunks/{trunk['id']}")
    await page.get_by_test_id("delete").click()
    await page.wait_for_url(f"{base}/settings/trunks?done=deleted")
    await page.get_by_test_id("trunks").locator("[data-state=empty]").wait_for()
    assert await pool.fetchval("SELECT count(*) FROM sip_trunks") == 0

    actions = await pool.fetch(
        "SELECT entity_type, action FROM audit_log WHERE entity_type IN ('trunk', 'DID') "
        "ORDER BY id"
    )
    assert [tuple(row) for row in actions] == [
        ("trunk", "create"),
        ("trunk", "update"),
        ("trunk", "update"),
        ("DID", "create"),
        ("DID", "update"),
        ("DID", "delete"),
        ("trunk", "delete"),
    ]
    audit_text = await pool.fetchval(
        "SELECT string_agg(coalesce(before::text, '') || coalesce(after::text, ''), '') "
        "FROM audit_log"
    )
    assert TRUNK_PASSWORD not in audit_text
    assert await page.evaluate("window.hacked") is None
    assert errors == []
