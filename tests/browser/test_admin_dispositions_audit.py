"""An admin manages dispositions through the real UI in Debian's chromium (field errors from the
API, the conflict message on a stale version, hostile text shown as text) and finds the changes
in the audit log, which updates itself live; a supervisor cannot open the audit log."""

import asyncio

import pytest
from _browser import PASSWORD, serving

HOSTILE = "<script>window.hacked = 1</script>"


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    users = (("admin", "admin"), ("supervisor", "supervisor"))
    async with serving(aiohttp_server, callcore_settings, users) as site:
        yield site


async def new_page(browser, base, username, next_url):
    """A French browser, logged in as ``username``, on ``next_url``; it accepts confirmations."""
    page = await (await browser.new_context(locale="fr-FR")).new_page()
    page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.goto(f"{base}/login?next={next_url}")
    await page.get_by_label("Identifiant").fill(username)
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    await page.get_by_role("button", name="Se connecter").click()
    await page.wait_for_url(f"{base}{next_url}")
    return page


async def toast(page):
    return await page.get_by_test_id("toasts").locator(".toast-info").inner_text()


async def test_admin_creates_edits_deletes_a_disposition_and_audits_it(site, browser):
    base, runtime = site
    pool = runtime.database.pool
    page = await new_page(browser, base, "admin", "/")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    nav = page.get_by_test_id("main-nav")
    await nav.get_by_text("Paramètres").click()
    await nav.get_by_role("link", name="Qualifications").click()
    await page.wait_for_url(f"{base}/settings/dispositions")
    await page.get_by_test_id("group-system").wait_for()  # the core plugin's, read-only
    assert (
        "Extension callcore.plugins.dispositions"
        in await page.get_by_test_id("group-system").inner_text()
    )

    # A group whose French label is a script: shown as text, never run.
    await page.get_by_test_id("new-group").click()
    await page.get_by_label("Code").fill("sales")
    await page.get_by_label("Libellé (français)").fill(HOSTILE)
    await page.get_by_label("Libellé (anglais)").fill("Sales")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/dispositions?done=created")
    group = page.get_by_test_id("group-sales")
    assert HOSTILE in await group.inner_text()

    # A callback that is also final: the API's message appears on the "final" checkbox.
    await page.get_by_test_id("add-to-sales").click()
    await page.wait_for_url(f"{base}/settings/dispositions/new?group=*")
    await page.get_by_label("Code").fill("deal")
    await page.get_by_label("Libellé (français)").fill("Vente")
    await page.get_by_label("Libellé (anglais)").fill("Sale")
    await page.locator("input[name=is_callback]").check()
    await page.get_by_test_id("save").click()
    final_error = page.locator('[data-field-error="/is_final"]')
    await final_error.filter(has_text="a callback cannot be final").wait_for()
    assert await page.locator("input[name=is_final]").get_attribute("aria-invalid") == "true"
    assert await pool.fetchval("SELECT count(*) FROM dispositions WHERE code = 'deal'") == 0
    await page.locator("input[name=is_callback]").uncheck()
    await page.locator("input[name=is_success]").check()
    # A final outcome with a retry cap: refused on that field, nothing written.
    await page.locator("input[name=max_retries]").fill("3")
    await page.get_by_test_id("save").click()
    retries_error = page.locator('[data-field-error="/max_retries"]')
    await retries_error.filter(has_text="a final outcome is never retried").wait_for()
    assert await pool.fetchval("SELECT count(*) FROM dispositions WHERE code = 'deal'") == 0
    await page.locator("input[name=max_retries]").fill("")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/dispositions?done=created")
    row = page.get_by_test_id("disposition-deal")
    await row.wait_for()  # the list loads with htmx after the page
    assert (await row.locator("td").all_inner_texts())[1:] == [
        "Vente",
        "Sale",
        "oui",
        "non",
        "non",
        "oui",
        "—",
        "—",
        "oui",
        "Administration",
    ]

    # Someone changes it meanwhile: saving the stale version shows the conflict message.
    await row.get_by_role("link", name="deal").click()
    await page.get_by_label("Libellé (français)").fill("Vendu")
    await pool.execute("UPDATE dispositions SET position = 5 WHERE code = 'deal'")
    await page.get_by_test_id("save").click()
    alert = page.locator("[data-form-error]")
    await alert.filter(has_text="Quelqu’un d’autre a modifié cet élément").wait_for()
    assert await pool.fetchval("SELECT label->>'fr' FROM dispositions WHERE code = 'deal'") == (
        "Vente"
    )
    await page.reload()
    assert await page.get_by_label("Position dans le groupe").input_value() == "5"
    await page.get_by_label("Libellé (français)").fill("Vendu")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/dispositions?done=saved")
    assert await toast(page) == "Modifications enregistrées."
    assert "Vendu" in await page.get_by_test_id("disposition-deal").inner_text()

    await page.get_by_test_id("disposition-deal").get_by_role("link", name="deal").click()
    await page.get_by_test_id("delete").click()
    await page.wait_for_url(f"{base}/settings/dispositions?done=deleted")
    await page.get_by_test_id("group-sales").wait_for()
    assert await page.get_by_test_id("disposition-deal").count() == 0

    # The audit log shows the three changes to the disposition, newest first.
    await page.goto(f"{base}/settings/audit")
    await page.get_by_label("Type d’objet").select_option("disposition")
    await page.get_by_test_id("apply-filters").click()
    await page.wait_for_url(f"{base}/settings/audit?entity_type=disposition")
    entries = page.get_by_test_id("audit-entry")
    await entries.first.wait_for()
    actions = await entries.locator(":scope > td:nth-child(3)").all_inner_texts()
    assert actions == ["Suppression", "Modification", "Création"]
    assert all(
        "admin" in who
        for who in await entries.locator(":scope > td:nth-child(2)").all_inner_texts()
    )
    update = entries.nth(1)
    await update.locator("summary").click()
    changed = await update.locator(".audit-diff tbody tr").all_inner_texts()
    assert any(line.split("\t") == ["label.fr", "Vente", "Vendu"] for line in changed), changed

    # Live: a change made elsewhere appears without reloading.
    await page.goto(f"{base}/settings/audit")
    await page.get_by_test_id("audit-live").filter(has_text="En direct").wait_for()
    before = await page.get_by_test_id("audit-entry").count()
    await page.evaluate(
        """async () => {
            const { fetchJSON } = await import("/static/callcore.js");
            await fetchJSON("/api/v1/disposition-groups", {
                method: "POST", body: { code: "live_group", label: { en: "Live", fr: "Direct" } },
            });
        }"""
    )
    await page.get_by_test_id("audit-entry").nth(before).wait_for()
    newest = page.get_by_test_id("audit-entry").first
    assert await newest.locator(":scope > td:nth-child(3)").inner_text() == "Création"
    assert (
        "Groupe de qualifications" in await newest.locator(":scope > td:nth-child(4)").inner_text()
    )

    assert await page.evaluate("window.hacked") is None
    assert errors == []


async def test_a_supervisor_cannot_open_the_audit_log(site, browser):
    base, _ = site
    page = await new_page(browser, base, "supervisor", "/")
    assert (
        await page.get_by_test_id("main-nav").get_by_role("link", name="Journal d’audit").count()
        == 0
    )
    for url in ("/settings/audit", "/settings/audit/rows", "/settings/dispositions"):
        response = await page.goto(f"{base}{url}")
        assert response.status == 403, url
    response = await page.request.get(f"{base}/api/v1/audit-log")
    assert response.status == 403
