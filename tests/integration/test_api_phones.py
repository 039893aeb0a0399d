"""/api/v1/phones on a real database: CRUD with the audit trail, the write-only SIP password
(encrypted, never served nor audited in clear), the one-phone-per-user assignment, what
pjsip.conf needs, If-Match, roles with an agent's row scope, and deletes refused by history."""

import pytest
from _api_client import if_match, problem

from callcore.config import AmiServerSettings, Secret
from callcore.dialplan.render import render_dialplan

PHONES = "/api/v1/phones"
PASSWORD = "ph0ne;secret"
AMI = AmiServerSettings(id="pbx1", username="callcore", secret=Secret("ami secret"))


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def new_phone(api, admin, endpoint="desk-1", **fields):
    document = {"endpoint": endpoint, "password": PASSWORD, **fields}
    return await created(await api.client.post(PHONES, json=document, headers=admin))


async def ciphertext(api, phone_id):
    return await api.runtime.database.pool.fetchval(
        "SELECT password_encrypted FROM phones WHERE id = $1", phone_id
    )


async def test_admin_creates_edits_and_deletes_a_phone_with_an_audit_trail(api, admin):
    agent = await api.user("agent", "alice")
    phone = await new_phone(api, admin, user_id=agent.user_id, codecs=["g722", "alaw"])
    assert phone["password_set"] is True and "password" not in phone
    assert phone["user_id"] == agent.user_id and phone["codecs"] == ["g722", "alaw"]
    assert phone["transport"] == "udp" and phone["active"] is True and phone["version"] == 1
    stored = await ciphertext(api, phone["id"])
    assert api.runtime.cipher.decrypt(stored).value == PASSWORD
    url = f"{PHONES}/{phone['id']}"
    response = await api.client.get(url, headers=admin)
    assert response.headers["ETag"] == '"1"' and await response.json() == phone

    # Omitting the password keeps it; freeing the user moves the version.
    response = await api.client.patch(
        url, json={"label": "Desk", "user_id": None}, headers=if_match(admin, phone)
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["user_id"] is None and patched["label"] == "Desk"
    assert patched["version"] > phone["version"] and await ciphertext(api, phone["id"]) == stored

    # PUT: omitted fields back to their defaults, the omitted password kept.
    response = await api.client.put(
        url, json={"endpoint": "desk-1", "extension": "201"}, headers=if_match(admin, patched)
    )
    replaced = await response.json()
    assert replaced["extension"] == "201" and replaced["label"] == "" and replaced["password_set"]
    response = await api.client.patch(
        url, json={"password": "brand new pass"}, headers=if_match(admin, replaced)
    )
    replaced = await response.json()
    assert api.runtime.cipher.decrypt(await ciphertext(api, phone["id"])).value == "brand new pass"

    response = await api.client.delete(url, headers=if_match(admin, replaced))
    assert response.status == 204
    assert await api.count("phones") == 0 and await api.count("phone_assignments") == 0
    rows = await api.runtime.database.pool.fetch(
        "SELECT action, before::text AS before, after::text AS after FROM audit_log "
        "WHERE entity_type = 'phone' ORDER BY id"
    )
    assert [row["action"] for row in rows] == ["create", "update", "update", "update", "delete"]
    for row in rows:
        assert "ph0ne" not in f"{row['before']}{row['after']}"
        assert "brand new" not in f"{row['before']}{row['after']}"


async def test_one_phone_per_user_names_the_current_holder(api, admin):
    agent = await api.user("agent", "bob")
    await new_phone(api, admin, "bob-desk", user_id=agent.user_id)
    other = await new_phone(api, admin, "spare")
    body = await problem(
        await api.client.post(
            PHONES,
            json={"endpoint": "third", "password": PASSWORD, "user_id": agent.user_id},
            headers=admin,
        ),
        409,
    )
    assert body["detail"] == (
        "User 'bob' already uses phone 'bob-desk': free that phone first (one phone per user)."
    )
    assert body["errors"][0]["field"] == "/user_id"
    response = await api.client.patch(
        f"{PHONES}/{other['id']}", json={"user_id": agent.user_id}, headers=if_match(admin, other)
    )
    await problem(response, 409)
    body = await problem(
        await api.client.post(
            PHONES,
            json={"endpoint": "ghost", "password": PASSWORD, "user_id": 987654},
            headers=admin,
        ),
        422,
    )
    assert body["errors"][0]["field"] == "/user_id"
    assert await api.count("phones") == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("endpoint", "Desk 1"),
        ("endpoint", "desk]\n[evil"),
        ("label", "two\nlines"),
        ("extension", "1"),
        ("extension", "12a"),
        ("password", "short"),
        ("password", "new\nline pass"),
        ("transport", "sctp"),
        ("codecs", []),
        ("codecs", ["alaw;"]),
        ("max_contacts", 11),
        ("user_id", "1"),
        ("version", 3),
        ("surprise", True),
    ],
)
async def test_bad_fields_are_refused_by_name_and_nothing_is_written(api, admin, field, value):
    document = {"endpoint": "desk-1", "password": PASSWORD, field: value}
    body = await problem(await api.client.post(PHONES, json=document, headers=admin), 422)
    assert any(
        error["field"].startswith(f"/{field}") or error["field"] == "" for error in body["errors"]
    ), body
    assert "new\nline" not in str(body)
    assert await api.count("phones") == 0 and await api.count("audit_log") == 0


async def test_rules_the_renderer_needs(api, admin):
    body = await problem(await api.client.post(PHONES, json={"endpoint": "x1"}, headers=admin), 422)
    assert body["errors"][0]["field"] == "/password"
    inactive = await created(
        await api.client.post(PHONES, json={"endpoint": "x1", "active": False}, headers=admin)
    )
    assert inactive["password_set"] is False
    response = await api.client.patch(
        f"{PHONES}/{inactive['id']}", json={"active": True}, headers=if_match(admin, inactive)
    )
    await problem(response, 422)
    document = {"endpoint": "web-1", "password": PASSWORD, "webrtc": True}
    body = await problem(await api.client.post(PHONES, json=document, headers=admin), 422)
    assert body["errors"][0]["field"] == "/transport"
    await new_phone(api, admin, "web-1", webrtc=True, transport="wss")
    await api.runtime.database.pool.execute(
        "INSERT INTO sip_trunks (name, host) VALUES ('carrier', 'sip.example')"
    )
    body = await problem(
        await api.client.post(
            PHONES, json={"endpoint": "carrier", "password": PASSWORD}, headers=admin
        ),
        409,
    )
    assert "trunk" in body["detail"]
    await new_phone(api, admin, "desk-2", extension="300")
    body = await problem(
        await api.client.post(
            PHONES,
            json={"endpoint": "desk-3", "password": PASSWORD, "extension": "300"},
            headers=admin,
        ),
        409,
    )
    assert body["errors"][0]["field"] == "/extension"


async def test_writes_need_the_current_version(api, admin):
    phone = await new_phone(api, admin)
    url = f"{PHONES}/{phone['id']}"
    await problem(await api.client.patch(url, json={"label": "x"}, headers=admin), 428)
    stale = {**phone, "version": 99}
    body = await problem(
        await api.client.patch(url, json={"label": "x"}, headers=if_match(admin, stale)), 412
    )
    assert body["current_version"] == 1
    await problem(await api.client.delete(url, headers=if_match(admin, stale)), 412)


async def test_staff_read_an_agent_reads_only_their_own_phone(api, admin):
    agent = await api.user("agent", "carol")
    mine = await new_phone(api, admin, "carol-desk", user_id=agent.user_id)
    other = await new_phone(api, admin, "spare")
    supervisor = await api.headers("supervisor")
    listing = await (await api.client.get(f"{PHONES}?sort=-endpoint", headers=supervisor)).json()
    assert [item["endpoint"] for item in listing["items"]] == ["spare", "carol-desk"]
    assert PASSWORD not in str(listing) and "password_encrypted" not in str(listing)
    await problem(
        await api.client.patch(
            f"{PHONES}/{mine['id']}", json={}, headers=if_match(supervisor, mine)
        ),
        403,
    )
    agent_headers = {"Authorization": f"Bearer {api.token(agent)}"}
    listing = await (await api.client.get(PHONES, headers=agent_headers)).json()
    assert [item["endpoint"] for item in listing["items"]] == ["carol-desk"]
    response = await api.client.get(f"{PHONES}/{mine['id']}", headers=agent_headers)
    assert response.status == 200
    await problem(await api.client.get(f"{PHONES}/{other['id']}", headers=agent_headers), 404)
    await problem(await api.client.post(PHONES, json={}, headers=agent_headers), 403)
    filtered = await api.client.get(f"{PHONES}?user_id={agent.user_id}", headers=admin)
    assert [item["endpoint"] for item in (await filtered.json())["items"]] == ["carol-desk"]
    await problem(await api.client.get(PHONES), 401)


async def test_a_phone_with_sessions_is_deactivated_instead_of_deleted(api, admin):
    agent = await api.user("agent", "dave")
    phone = await new_phone(api, admin, user_id=agent.user_id)
    await api.runtime.database.pool.execute(
        "INSERT INTO agent_sessions (user_id, phone_id) VALUES ($1, $2)", agent.user_id, phone["id"]
    )
    url = f"{PHONES}/{phone['id']}"
    body = await problem(await api.client.delete(url, headers=if_match(admin, phone)), 409)
    assert "agent sessions (1)" in body["detail"] and "deactivate it instead" in body["detail"]
    response = await api.client.patch(url, json={"active": False}, headers=if_match(admin, phone))
    assert (await response.json())["active"] is False


async def test_the_dialplan_renders_what_the_api_saved(api, admin):
    agent = await api.user("agent", "erin")
    await new_phone(api, admin, "erin-desk", user_id=agent.user_id, extension="204", label="Erin")
    await new_phone(api, admin, "off", active=False)
    async with api.runtime.database.pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    pjsip = files["pjsip.conf"]
    assert "[erin-desk]" in pjsip and "password = ph0ne\\;secret" in pjsip
    assert "allow = alaw,ulaw" in pjsip and "[off]" not in pjsip
    extensions = files["extensions.conf"]
    assert "exten => 204,1,Goto(callcore-agents,erin-desk,1)" in extensions
    assert "(agent erin)" in extensions
    for name, content in files.items():
        if name != "pjsip.conf":
            assert "ph0ne" not in content, name
