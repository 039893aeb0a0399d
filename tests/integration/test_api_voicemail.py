"""/api/v1/voicemail-boxes on a real database: CRUD with the audit trail, the write-only PIN
(digits, encrypted, never served nor audited in clear), one owner at most, what voicemail.conf
needs, If-Match and roles."""

import pytest
from _api_client import if_match, problem

from callcore.config import AmiServerSettings, Secret
from callcore.dialplan.render import render_dialplan

BOXES = "/api/v1/voicemail-boxes"
PIN = "246813"
AMI = AmiServerSettings(id="pbx1", username="callcore", secret=Secret("ami secret"))


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def new_box(api, admin, mailbox="100", **fields):
    document = {"mailbox": mailbox, "pin": PIN, **fields}
    return await created(await api.client.post(BOXES, json=document, headers=admin))


async def test_admin_creates_edits_and_deletes_a_box_with_an_audit_trail(api, admin):
    owner = await api.user("agent", "alice")
    box = await new_box(api, admin, user_id=owner.user_id, email="alice@example.com")
    assert box["pin_set"] is True and "pin" not in box and "pin_encrypted" not in box
    assert box["context"] == "default" and box["user_id"] == owner.user_id
    pool = api.runtime.database.pool
    stored = await pool.fetchval("SELECT pin_encrypted FROM voicemail_boxes")
    assert api.runtime.cipher.decrypt(stored).value == PIN
    url = f"{BOXES}/{box['id']}"
    response = await api.client.patch(url, json={"name": "Alice"}, headers=if_match(admin, box))
    patched = await response.json()
    assert patched["name"] == "Alice" and patched["pin_set"] is True
    assert await pool.fetchval("SELECT pin_encrypted FROM voicemail_boxes") == stored
    response = await api.client.patch(url, json={"pin": "9999"}, headers=if_match(admin, patched))
    patched = await response.json()
    stored = await pool.fetchval("SELECT pin_encrypted FROM voicemail_boxes")
    assert api.runtime.cipher.decrypt(stored).value == "9999"
    assert (await api.client.delete(url, headers=if_match(admin, patched))).status == 204
    rows = await pool.fetch(
        "SELECT action, coalesce(before::text, '') || coalesce(after::text, '') AS text "
        "FROM audit_log WHERE entity_type = 'voicemail_box' ORDER BY id"
    )
    assert [row["action"] for row in rows] == ["create", "update", "update", "delete"]
    assert not any(PIN in row["text"] or "9999" in row["text"] for row in rows)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mailbox", "1"),
        ("mailbox", "12a"),
        ("context", "Default"),
        ("context", "a]\n[b"),
        ("name", "Smith, John"),
        ("name", "two\nlines"),
        ("email", "a,b@example.com"),
        ("email", "not an address"),
        ("pin", "123"),
        ("pin", "12ab"),
        ("pin", "1234567890123"),
        ("max_message_seconds", 5),
        ("user_id", "x"),
    ],
)
async def test_bad_fields_are_refused_by_name_and_nothing_is_written(api, admin, field, value):
    document = {"mailbox": "100", "pin": PIN, field: value}
    body = await problem(await api.client.post(BOXES, json=document, headers=admin), 422)
    assert any(error["field"] == f"/{field}" for error in body["errors"]), body
    assert await api.count("voicemail_boxes") == 0 and await api.count("audit_log") == 0


async def test_rules_across_fields(api, admin):
    owner = await api.user("agent", "bob")
    queue = await api.runtime.database.pool.fetchval(
        "INSERT INTO queues (name) VALUES ('sales') RETURNING id"
    )
    both = {"mailbox": "100", "pin": PIN, "user_id": owner.user_id, "queue_id": queue}
    body = await problem(await api.client.post(BOXES, json=both, headers=admin), 422)
    assert body["errors"][0]["field"] == "/queue_id"
    body = await problem(await api.client.post(BOXES, json={"mailbox": "100"}, headers=admin), 422)
    assert body["errors"][0]["field"] == "/pin"
    document = {"mailbox": "100", "pin": PIN, "delete_after_email": True}
    body = await problem(await api.client.post(BOXES, json=document, headers=admin), 422)
    assert body["errors"][0]["field"] == "/email"
    await new_box(api, admin, queue_id=queue)
    body = await problem(
        await api.client.post(BOXES, json={"mailbox": "100", "pin": PIN}, headers=admin), 409
    )
    assert body["detail"] == "Mailbox 100@default already exists."
    await new_box(api, admin, context="sales")
    body = await problem(
        await api.client.post(
            BOXES, json={"mailbox": "101", "pin": PIN, "user_id": 98765}, headers=admin
        ),
        422,
    )
    assert body["errors"][0]["field"] == "/user_id"


async def test_writes_need_the_current_version_and_roles_hold(api, admin):
    box = await new_box(api, admin)
    url = f"{BOXES}/{box['id']}"
    await problem(await api.client.patch(url, json={"name": "x"}, headers=admin), 428)
    stale = {**box, "version": 7}
    await problem(
        await api.client.patch(url, json={"name": "x"}, headers=if_match(admin, stale)), 412
    )
    supervisor = await api.headers("supervisor")
    listing = await (await api.client.get(BOXES, headers=supervisor)).json()
    assert [item["mailbox"] for item in listing["items"]] == ["100"]
    assert PIN not in str(listing)
    await problem(await api.client.delete(url, headers=if_match(supervisor, box)), 403)
    agent = await api.headers("agent")
    await problem(await api.client.get(BOXES, headers=agent), 403)
    await problem(await api.client.get(BOXES), 401)


async def test_the_dialplan_renders_what_the_api_saved(api, admin):
    owner = await api.user("agent", "erin")
    await created(
        await api.client.post(
            "/api/v1/phones",
            json={"endpoint": "erin-desk", "password": "phone secret", "user_id": owner.user_id},
            headers=admin,
        )
    )
    await new_box(
        api, admin, "204", name="Erin; desk", email="erin@example.com", user_id=owner.user_id
    )
    await new_box(api, admin, "205", active=False, pin=None)
    async with api.runtime.database.pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    voicemail = files["voicemail.conf"]
    assert "[default]" in voicemail
    assert (
        f"204 => {PIN},Erin\\; desk,erin@example.com,,attach=yes|delete=no|maxsecs=180" in voicemail
    )
    assert "205 =>" not in voicemail
    for name, content in files.items():
        if name != "voicemail.conf":
            assert PIN not in content, name
