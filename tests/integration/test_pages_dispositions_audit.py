"""The disposition pages and the audit log page, rendered by the real app over a real socket:
what they show, in French, escaped; plugin rows read-only; the form targets api-form.js needs;
the audit filters, paging and diff; the states (empty, error)."""

import html
import re

import pytest

GROUPS = "/api/v1/disposition-groups"
DISPOSITIONS = "/api/v1/dispositions"
SCRIPT = "<script>alert(1)</script>"
PLUGIN = "callcore.plugins.dispositions"


@pytest.fixture
async def admin(api):
    return await api.headers("admin", "alice")


async def page(api, headers, url, status=200):
    response = await api.client.get(url, headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return text


async def sales(api, admin):
    """An admin group with a hostile label, and one disposition in it, changed once."""
    response = await api.client.post(
        GROUPS, json={"code": "sales", "label": {"en": "Sales", "fr": SCRIPT}}, headers=admin
    )
    group = await response.json()
    document = {"group_id": group["id"], "code": "deal", "label": {"en": "Sale", "fr": "Vente"}}
    response = await api.client.post(DISPOSITIONS, json=document, headers=admin)
    created = await response.json()
    response = await api.client.patch(
        f"{DISPOSITIONS}/{created['id']}",
        json={"label": {"fr": f"Vendu {SCRIPT}"}, "is_success": True},
        headers={**admin, "If-Match": response.headers["ETag"]},
    )
    assert response.status == 200
    return group, await response.json()


def form_attribute(text, name):
    return html.unescape(re.search(rf'{name}="([^"]*)"', text)[1])


async def test_the_list_shows_groups_and_flags_escaped_and_names_plugins(api, admin):
    await sales(api, admin)
    text = await page(api, admin, "/settings/dispositions")
    assert 'hx-get="/settings/dispositions/rows"' in text and 'data-state="loading"' in text
    rows = await page(api, admin, "/settings/dispositions/rows")
    assert SCRIPT not in rows and "&lt;script&gt;alert(1)&lt;/script&gt;" in rows
    deal = re.search(r'<tr data-testid="disposition-deal">(.*?)</tr>', rows, re.S)[1]
    cells = [html.unescape(cell.strip()) for cell in re.findall(r"<td>(.*?)</td>", deal, re.S)]
    assert cells[1:] == [
        f"Vendu {SCRIPT}",
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
    busy = re.search(r'<tr data-testid="disposition-busy">(.*?)</tr>', rows, re.S)[1]
    assert re.findall(r"<td>(.*?)</td>", busy, re.S)[7:9] == ["900 s", "5"]
    system = re.search(r'<article data-testid="group-system">(.*?)</article>', rows, re.S)[1]
    assert f"Extension {PLUGIN}" in system and "Voir le groupe" in system
    assert "Modifier le groupe" in rows  # the admin's own group


async def test_the_list_has_an_empty_state(api, admin):
    pool = api.runtime.database.pool
    await pool.execute("DELETE FROM dispositions; DELETE FROM disposition_groups")
    rows = await page(api, admin, "/settings/dispositions/rows")
    assert 'data-state="empty"' in rows and "Aucun groupe de qualifications" in rows


async def test_an_edit_form_targets_the_current_version(api, admin):
    group, deal = await sales(api, admin)
    text = await page(api, admin, f"/settings/dispositions/{deal['id']}")
    assert form_attribute(text, "data-method") == "PUT"
    assert form_attribute(text, "data-url") == f"{DISPOSITIONS}/{deal['id']}"
    assert form_attribute(text, "data-etag") == f'"{deal["version"]}"' == '"2"'
    assert form_attribute(text, "data-deleted") == "/settings/dispositions?done=deleted"
    assert SCRIPT not in text and 'value="Vendu &lt;script&gt;alert(1)&lt;/script&gt;"' in text
    assert re.search(r'name="is_success" data-field="/is_success"[^>]* checked', text)
    assert not re.search(r'name="is_callback"[^>]* checked', text)
    assert f'<option value="{group["id"]}" selected>' in text
    assert 'data-testid="delete"' in text and "<fieldset disabled" not in text
    assert "Quelqu’un d’autre a modifié cet élément" in form_attribute(text, "data-conflict")


async def test_the_retry_fields_are_listed_and_in_the_form(api, admin):
    group, _ = await sales(api, admin)
    document = {
        "group_id": group["id"],
        "code": "line_busy",
        "label": {"en": "Busy", "fr": "Occupé"},
        "is_final": False,
        "max_retries": 7,
    }
    response = await api.client.post(DISPOSITIONS, json=document, headers=admin)
    busy = await response.json()
    rows = await page(api, admin, "/settings/dispositions/rows")
    row = re.search(r'<tr data-testid="disposition-line_busy">(.*?)</tr>', rows, re.S)[1]
    assert re.findall(r"<td>(.*?)</td>", row, re.S)[7:9] == ["selon la campagne", "7"]
    form = await page(api, admin, f"/settings/dispositions/{busy['id']}")
    assert 'name="max_retries" value="7" data-field="/max_retries"' in form
    assert 'name="retry_delay_seconds" value="" data-field="/retry_delay_seconds"' in form


async def test_a_plugin_row_is_shown_read_only_with_its_plugin(api, admin):
    busy = await api.runtime.database.pool.fetchval(
        "SELECT id FROM dispositions WHERE code = 'busy'"
    )
    text = await page(api, admin, f"/settings/dispositions/{busy}")
    notice = re.search(r'data-testid="read-only-notice">(.*?)</article>', text, re.S)[1]
    assert f"Enregistré par l’extension {PLUGIN}" in notice
    assert "<fieldset disabled>" in text
    assert 'data-testid="save"' not in text and 'data-testid="delete"' not in text
    system = await api.runtime.database.pool.fetchval(
        "SELECT id FROM disposition_groups WHERE code = 'system'"
    )
    text = await page(api, admin, f"/settings/dispositions/groups/{system}")
    assert 'data-testid="read-only-notice"' in text and "<fieldset disabled>" in text


async def test_create_forms_start_from_the_schema_defaults(api, admin):
    group, _ = await sales(api, admin)
    text = await page(api, admin, f"/settings/dispositions/new?group={group['id']}")
    assert form_attribute(text, "data-method") == "POST"
    assert form_attribute(text, "data-url") == DISPOSITIONS
    assert form_attribute(text, "data-etag") == ""
    assert f'<option value="{group["id"]}" selected>' in text
    assert re.search(r'name="is_final"[^>]* checked', text)
    assert re.search(r'name="active"[^>]* checked', text)
    assert 'data-testid="delete"' not in text
    text = await page(api, admin, "/settings/dispositions/groups/new")
    assert form_attribute(text, "data-url") == GROUPS and 'data-testid="save"' in text


async def test_missing_rows_are_404_and_done_notices_show(api, admin):
    await page(api, admin, "/settings/dispositions/987654321", 404)
    await page(api, admin, "/settings/dispositions/groups/987654321", 404)
    text = await page(api, admin, "/settings/dispositions?done=deleted")
    assert re.search(r'class="toast toast-info" role="status">[^<]+</p>', text)
    text = await page(api, admin, "/settings/dispositions?done=<b>")
    assert "toast-info" not in text


async def test_supervisors_and_agents_are_refused_both_pages(api):
    for role in ("supervisor", "agent"):
        headers = await api.headers(role)
        for url in ("/settings/dispositions", "/settings/audit", "/settings/audit/rows"):
            await page(api, headers, url, 403)


async def test_the_audit_page_shows_entries_with_their_diff_in_french(api, admin):
    _, deal = await sales(api, admin)
    text = await page(api, admin, "/settings/audit")
    assert "Journal d’audit" in text and 'hx-get="/settings/audit/rows"' in text
    assert 'data-paged="false"' in text
    rows = await page(api, admin, "/settings/audit/rows?entity_type=disposition")
    entries = re.findall(
        r'<tr data-testid="audit-entry" data-entry-id="(\d+)">(.*?)</tr>'
        r"\s*\n\s*(?=<tr data-testid|</tbody>)",
        rows,
        re.S,
    )
    assert len(entries) == 2
    (update_id, update), (_, create) = entries
    assert re.search(rf'data-newest-id="{update_id}"', rows)
    assert (
        "Modification" in update and f"Qualification #{deal['id']}" in update and "alice" in update
    )
    assert "Création" in create
    assert SCRIPT not in rows
    diff = dict(
        (field, (html.unescape(before), html.unescape(after)))
        for field, before, after in re.findall(
            r"<code>([^<]+)</code></th>\s*<td>(?:<del>)?(.*?)(?:</del>)?</td>\s*"
            r"<td>(?:<ins>)?(.*?)(?:</ins>)?</td>",
            update,
            re.S,
        )
    )
    assert diff["label.fr"] == ("Vente", f"Vendu {SCRIPT}")
    assert diff["is_success"] == ("false", "true")
    assert diff["version"] == ("1", "2")
    assert "label.en" not in diff and "code" not in diff


async def test_audit_filters_are_kept_checked_and_cleaned(api, admin):
    await sales(api, admin)
    text = await page(api, admin, "/settings/audit?actor=alice&action=create")
    assert 'name="actor" value="alice"' in text and '<option value="create" selected>' in text
    assert 'hx-get="/settings/audit/rows?actor=alice&amp;action=create"' in text
    rows = await page(api, admin, "/settings/audit/rows?actor=alice&action=create")
    assert rows.count('data-testid="audit-entry"') == 2
    rows = await page(api, admin, "/settings/audit/rows?actor=nobody")
    assert 'data-state="empty"' in rows
    # The form sends empty fields: the page drops them from the URL.
    response = await api.client.get(
        "/settings/audit?actor=&action=update&since=", headers=admin, allow_redirects=False
    )
    assert (
        response.status == 303 and response.headers["Location"] == "/settings/audit?action=update"
    )
    # A bad filter is shown next to its input, and the table is not loaded.
    text = await page(api, admin, "/settings/audit?since=tomorrow%3Cb%3E", 400)
    assert 'aria-invalid="true"' in text and "since must be a date and time" in text
    assert 'value="tomorrow&lt;b&gt;"' in text and 'id="audit-rows"' not in text
    rows = await page(api, admin, "/settings/audit/rows?since=tomorrow", 400)
    assert 'data-state="error"' in rows


async def test_audit_pages_link_to_older_entries(api, admin):
    await sales(api, admin)  # three entries
    rows = await page(api, admin, "/settings/audit/rows?limit=2")
    assert rows.count('data-testid="audit-entry"') == 2
    older = html.unescape(re.search(r'href="([^"]+)"[^>]*data-testid="older"', rows)[1])
    assert older.startswith("/settings/audit?limit=2&cursor=")
    text = await page(api, admin, older)
    assert 'data-paged="true"' in text
    assert 'href="/settings/audit?limit=2" data-testid="newest"' in text
    rows = await page(api, admin, older.replace("/settings/audit?", "/settings/audit/rows?"))
    assert rows.count('data-testid="audit-entry"') == 1 and 'data-testid="older"' not in rows
