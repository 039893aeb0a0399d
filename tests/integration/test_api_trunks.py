"""/api/v1/trunks on a real database: CRUD with the audit trail, the write-only password
(encrypted at rest, never served, never audited in clear), validation of everything that ends
up in pjsip.conf, If-Match, roles, and deletes refused while something refers to the trunk."""

import pytest
from _api_client import if_match, problem

from callcore.config import AmiServerSettings, Secret
from callcore.dialplan.render import render_dialplan

TRUNKS = "/api/v1/trunks"
DIDS = "/api/v1/dids"
PASSWORD = "s3cret;pass word"
AMI = AmiServerSettings(id="pbx1", username="callcore", secret=Secret("ami secret"))


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def new_trunk(api, admin, name="carrier", **fields):
    document = {"name": name, "host": "sip.carrier.example", **fields}
    return await created(await api.client.post(TRUNKS, json=document, headers=admin))


async def stored_ciphertext(api, trunk_id):
    return await api.runtime.database.pool.fetchval(
        "SELECT password_encrypted FROM sip_trunks WHERE id = $1", trunk_id
    )


async def audit_rows(api):
    return await api.runtime.database.pool.fetch(
        "SELECT action, entity_type, entity_id, before::text AS before, after::text AS after "
        "FROM audit_log WHERE entity_type = 'trunk' ORDER BY id"
    )


async def test_admin_creates_edits_and_deletes_a_trunk_with_an_audit_trail(api, admin):
    trunk = await new_trunk(
        api,
        admin,
        username="acct-1",
        password=PASSWORD,
        register=True,
        allowed_prefixes=["+33", "+32"],
        daily_spend_cap="150.5",
        codecs=["g722", "alaw"],
    )
    assert trunk["password_set"] is True and "password" not in trunk
    assert "password_encrypted" not in trunk
    assert trunk["daily_spend_cap"] == "150.50" and trunk["port"] == 5060
    assert trunk["codecs"] == ["g722", "alaw"] and trunk["enabled"] is True
    ciphertext = await stored_ciphertext(api, trunk["id"])
    assert PASSWORD.encode() not in ciphertext
    assert api.runtime.cipher.decrypt(ciphertext).value == PASSWORD

    url = f"{TRUNKS}/{trunk['id']}"
    response = await api.client.get(url, headers=admin)
    assert response.headers["ETag"] == '"1"'
    assert await response.json() == trunk

    # Omitting the password keeps it; the PATCH changes only what it names.
    response = await api.client.patch(
        url, json={"max_concurrent_calls": 5, "label": "Main"}, headers=if_match(admin, trunk)
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["max_concurrent_calls"] == 5 and patched["password_set"] is True
    assert await stored_ciphertext(api, trunk["id"]) == ciphertext

    # A new password replaces the old one; null removes it.
    response = await api.client.patch(
        url, json={"password": "another one"}, headers=if_match(admin, patched)
    )
    changed = await response.json()
    assert changed["version"] == patched["version"] + 1
    stored = await stored_ciphertext(api, trunk["id"])
    assert api.runtime.cipher.decrypt(stored).value == "another one"
    response = await api.client.patch(
        url, json={"password": None, "register": False}, headers=if_match(admin, changed)
    )
    removed = await response.json()
    assert removed["password_set"] is False and await stored_ciphertext(api, trunk["id"]) is None

    response = await api.client.delete(url, headers=if_match(admin, removed))
    assert response.status == 204
    assert (await api.client.get(url, headers=admin)).status == 404

    rows = await audit_rows(api)
    assert [row["action"] for row in rows] == ["create", "update", "update", "update", "delete"]
    assert {row["entity_id"] for row in rows} == {str(trunk["id"])}
    for row in rows:
        for document in (row["before"], row["after"]):
            assert document is None or (PASSWORD not in document and "another one" not in document)
    assert '"max_concurrent_calls": 5' in rows[1]["after"]


async def test_put_replaces_every_field_but_keeps_the_password_it_omits(api, admin):
    trunk = await new_trunk(api, admin, username="u1", password=PASSWORD, label="old", port=5080)
    response = await api.client.put(
        f"{TRUNKS}/{trunk['id']}",
        json={"name": "carrier", "host": "10.0.0.7", "username": "u1"},
        headers=if_match(admin, trunk),
    )
    assert response.status == 200, await response.text()
    replaced = await response.json()
    assert replaced["label"] == "" and replaced["port"] == 5060 and replaced["host"] == "10.0.0.7"
    assert replaced["password_set"] is True


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Bad Name"),
        ("name", "x;rm -rf"),
        ("name", "trunk\n[evil]"),
        ("name", "'; DROP TABLE sip_trunks; --"),
        ("host", "sip.example.com\ncontext=evil"),
        ("host", "host;comment"),
        ("host", "<script>alert(1)</script>"),
        ("port", 0),
        ("port", 70000),
        ("transport", "ws"),
        ("username", "user@evil"),
        ("username", "a\nb"),
        ("password", "line\nbreak"),
        ("password", ""),
        ("from_user", "caller\r\nX-Header: 1"),
        ("from_domain", "bad domain"),
        ("codecs", []),
        ("codecs", ["alaw", "alaw"]),
        ("codecs", ["mp3"]),
        ("dial_prefix", "9;"),
        ("max_concurrent_calls", 0),
        ("daily_spend_cap", "-5"),
        ("daily_spend_cap", 12),
        ("daily_spend_cap", "1e9"),
        ("currency", "euro"),
        ("allowed_prefixes", ["33"]),
        ("allowed_prefixes", ["+33a"]),
        ("allowed_prefixes", ["+1234567890123456"]),
        ("allowed_prefixes", ["+33", "+33"]),
        ("label", "two\nlines"),
        ("password_set", False),
        ("password_encrypted", "x"),
        ("id", 5),
    ],
)
async def test_bad_fields_are_refused_by_name_and_nothing_is_written(api, admin, field, value):
    document = {"name": "carrier", "host": "sip.example.com", field: value}
    body = await problem(await api.client.post(TRUNKS, json=document, headers=admin), 422)
    assert body["errors"] and all(e["field"].startswith(f"/{field}") for e in body["errors"]), body
    assert await api.count("sip_trunks") == 0 and await api.count("audit_log") == 0


async def test_password_is_never_echoed_in_a_refusal(api, admin):
    document = {"name": "carrier", "host": "sip.example.com", "password": "secret\nvalue"}
    response = await api.client.post(TRUNKS, json=document, headers=admin)
    assert response.status == 422 and "secret" not in await response.text()


async def test_ipv6_hosts_are_accepted(api, admin):
    trunk = await new_trunk(api, admin, host="2001:db8::5")
    assert trunk["host"] == "2001:db8::5"


async def test_credentials_must_hang_together(api, admin):
    body = await problem(
        await api.client.post(
            TRUNKS, json={"name": "t", "host": "h.example", "register": True}, headers=admin
        ),
        422,
    )
    assert {error["field"] for error in body["errors"]} == {"/username"}
    body = await problem(
        await api.client.post(
            TRUNKS,
            json={"name": "t", "host": "h.example", "register": True, "username": "u"},
            headers=admin,
        ),
        422,
    )
    assert body["errors"] == [{"field": "/password", "message": "registering needs a password"}]
    body = await problem(
        await api.client.post(
            TRUNKS, json={"name": "t", "host": "h.example", "password": PASSWORD}, headers=admin
        ),
        422,
    )
    assert [error["field"] for error in body["errors"]] == ["/username"]
    assert await api.count("sip_trunks") == 0


async def test_writes_need_the_current_version(api, admin):
    trunk = await new_trunk(api, admin)
    url = f"{TRUNKS}/{trunk['id']}"
    await problem(await api.client.patch(url, json={"port": 5070}, headers=admin), 428)
    await problem(await api.client.delete(url, headers=admin), 428)
    first = await api.client.patch(url, json={"port": 5070}, headers=if_match(admin, trunk))
    assert first.status == 200
    stale = await problem(
        await api.client.patch(url, json={"port": 5080}, headers=if_match(admin, trunk)), 412
    )
    assert stale["current_version"] == 2
    await problem(await api.client.delete(url, headers=if_match(admin, trunk)), 412)
    assert (await (await api.client.get(url, headers=admin)).json())["port"] == 5070


async def test_names_are_unique(api, admin):
    await new_trunk(api, admin)
    body = await problem(
        await api.client.post(TRUNKS, json={"name": "carrier", "host": "x.example"}, headers=admin),
        409,
    )
    assert body["errors"][0]["field"] == "/name"


async def test_a_trunk_may_not_take_an_agent_phones_name(api, admin):
    pool = api.runtime.database.pool
    await pool.execute("INSERT INTO phones (endpoint) VALUES ('desk-12')")
    before = await api.snapshot()
    document = {"name": "desk-12", "host": "sip.carrier.example"}
    body = await problem(await api.client.post(TRUNKS, json=document, headers=admin), 409)
    assert "'desk-12'" in body["detail"] and "agent phone" in body["detail"]
    assert body["errors"] == [
        {"field": "/name", "message": "/name is the endpoint of the agent phone 'desk-12'"}
    ]
    assert await api.snapshot() == before

    # Renaming an existing trunk onto the phone's name is refused the same way.
    trunk = await new_trunk(api, admin)
    url = f"{TRUNKS}/{trunk['id']}"
    response = await api.client.patch(url, json={"name": "desk-12"}, headers=if_match(admin, trunk))
    await problem(response, 409)
    assert await pool.fetchval("SELECT name FROM sip_trunks WHERE id = $1", trunk["id"]) == (
        "carrier"
    )


async def test_supervisors_read_agents_and_anonymous_are_refused(api, admin):
    trunk = await new_trunk(api, admin, username="u", password=PASSWORD)
    supervisor = await api.headers("supervisor")
    listing = await (await api.client.get(TRUNKS, headers=supervisor)).json()
    assert [item["name"] for item in listing["items"]] == ["carrier"]
    assert PASSWORD not in str(listing) and "password_encrypted" not in str(listing)
    url = f"{TRUNKS}/{trunk['id']}"
    await problem(await api.client.patch(url, json={}, headers=if_match(supervisor, trunk)), 403)
    agent = await api.headers("agent")
    await problem(await api.client.get(TRUNKS, headers=agent), 403)
    await problem(await api.client.get(url, headers=agent), 403)
    await problem(await api.client.get(TRUNKS), 401)


async def test_list_filters_and_sorts(api, admin):
    for name in ("zeta", "alpha", "mid"):
        await new_trunk(api, admin, name=name, enabled=name != "mid")
    names = await (await api.client.get(f"{TRUNKS}?sort=-name", headers=admin)).json()
    assert [item["name"] for item in names["items"]] == ["zeta", "mid", "alpha"]
    enabled = await (await api.client.get(f"{TRUNKS}?enabled=false", headers=admin)).json()
    assert [item["name"] for item in enabled["items"]] == ["mid"]
    await problem(await api.client.get(f"{TRUNKS}?host=x", headers=admin), 400)


async def test_a_referenced_trunk_is_not_deleted_and_one_with_calls_is_disabled_instead(api, admin):
    trunk = await new_trunk(api, admin)
    url = f"{TRUNKS}/{trunk['id']}"
    did = await created(
        await api.client.post(
            DIDS, json={"number": "+33123456789", "trunk_id": trunk["id"]}, headers=admin
        )
    )
    pool = api.runtime.database.pool
    await pool.execute(
        "INSERT INTO campaigns (name, trunk_id) VALUES ('Spring promo', $1)", trunk["id"]
    )
    body = await problem(await api.client.delete(url, headers=if_match(admin, trunk)), 409)
    assert body["detail"] == (
        "Trunk 'carrier' cannot be deleted: it is still used by campaigns (Spring promo); "
        "DIDs (+33123456789)."
    )
    await pool.execute("DELETE FROM campaigns")
    await pool.execute("DELETE FROM dids WHERE id = $1", did["id"])
    await pool.execute(
        "INSERT INTO calls (server_id, uniqueid, direction, trunk_id, started_at) "
        "VALUES ('pbx1', '1700000000.1', 'outbound', $1, now())",
        trunk["id"],
    )
    body = await problem(await api.client.delete(url, headers=if_match(admin, trunk)), 409)
    assert "disable it instead" in body["detail"]
    response = await api.client.patch(url, json={"enabled": False}, headers=if_match(admin, trunk))
    assert (await response.json())["enabled"] is False
    assert await api.count("sip_trunks") == 1


async def test_the_dialplan_renders_what_the_api_saved(api, admin):
    trunk = await new_trunk(
        api,
        admin,
        name="carrier-a",
        username="acct-7",
        password=PASSWORD,
        allowed_prefixes=["+33"],
        from_user="0123456789",
    )
    await created(
        await api.client.post(
            DIDS,
            json={"number": "01 44 55 66 77", "label": "Sales", "trunk_id": trunk["id"]},
            headers=admin,
        )
    )
    async with api.runtime.database.pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    pjsip = files["pjsip.conf"]
    assert "[carrier-a]" in pjsip and "username = acct-7" in pjsip
    assert "password = s3cret\\;pass word" in pjsip and "from_user = 0123456789" in pjsip
    assert "contact = sip:sip.carrier.example:5060\\;transport=udp" in pjsip
    extensions = files["extensions.conf"]
    assert "+33144556677" in extensions and "_+33X." in extensions
    for name, content in files.items():
        if name != "pjsip.conf":
            assert "s3cret" not in content, name


async def test_source_addresses_are_networks_stored_audited_and_rendered(api, admin):
    trunk = await new_trunk(
        api, admin, match_addresses=["192.0.2.10", "198.51.100.0/24", "2001:DB8::/32"]
    )
    assert trunk["match_addresses"] == ["192.0.2.10/32", "198.51.100.0/24", "2001:db8::/32"]
    pool = api.runtime.database.pool
    stored = await pool.fetchval(
        "SELECT match_addresses::text[] FROM sip_trunks WHERE id = $1", trunk["id"]
    )
    assert stored == trunk["match_addresses"]
    after = (await audit_rows(api))[-1]["after"]
    assert '"198.51.100.0/24"' in after
    async with pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    identify = files["pjsip.conf"].split("type = identify", 1)[1]
    for line in ("match = 192.0.2.10/32", "match = 198.51.100.0/24", "match = 2001:db8::/32"):
        assert line in identify, line
    assert "match = sip.carrier.example" not in identify

    # A PUT that omits them goes back to none: the trunk is matched by its host again.
    url = f"{TRUNKS}/{trunk['id']}"
    document = {"name": "carrier", "host": "sip.carrier.example"}
    response = await api.client.put(url, json=document, headers=if_match(admin, trunk))
    assert (await response.json())["match_addresses"] == []
    async with pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    assert "match = sip.carrier.example" in files["pjsip.conf"]


@pytest.mark.parametrize(
    "addresses",
    [
        ["192.0.2.1/24"],  # host bits set: which one was meant?
        ["300.1.1.1"],
        ["192.0.2.0/33"],
        ["example.com"],
        ["192.0.2.1\nmatch=0.0.0.0/0"],
        ["::1/129"],
        [""],
        ["10.0.0.1", "10.0.0.1"],
        "10.0.0.1",
    ],
)
async def test_bad_source_addresses_are_refused_by_index(api, admin, addresses):
    document = {"name": "carrier", "host": "sip.carrier.example", "match_addresses": addresses}
    body = await problem(await api.client.post(TRUNKS, json=document, headers=admin), 422)
    assert all(e["field"].startswith("/match_addresses") for e in body["errors"]), body
    assert await api.count("sip_trunks") == 0 and await api.count("audit_log") == 0


async def test_a_network_with_host_bits_is_named_by_its_index(api, admin):
    document = {
        "name": "carrier",
        "host": "sip.carrier.example",
        "match_addresses": ["10.0.0.0/8", "10.1.2.3/16"],
    }
    body = await problem(await api.client.post(TRUNKS, json=document, headers=admin), 422)
    assert body["errors"] == [
        {
            "field": "/match_addresses/1",
            "message": "/match_addresses/1 is not an IP address or a network "
            "(address/prefix length, host bits zero)",
        }
    ]
