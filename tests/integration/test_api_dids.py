"""/api/v1/dids on a real database: numbers normalised to E.164 by phonenumbers (national ones
read as French), invalid ones refused on the field, the trunk and flow links checked, If-Match,
roles, the audit trail, and a DID calls came in on kept."""

import pytest
from _api_client import if_match, problem

DIDS = "/api/v1/dids"
TRUNKS = "/api/v1/trunks"


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def new_did(api, admin, number="+33123456789", **fields):
    return await created(
        await api.client.post(DIDS, json={"number": number, **fields}, headers=admin)
    )


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("01 23 45 67 89", "+33123456789"),
        ("0123456789", "+33123456789"),
        ("01.23.45.67.89", "+33123456789"),
        ("+33 (0)1 23 45 67 89", "+33123456789"),
        ("0033 1 23 45 67 89", "+33123456789"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (212) 555-0100", "+12125550100"),
        ("+33123456789", "+33123456789"),
    ],
)
async def test_numbers_are_stored_in_e164(api, admin, typed, stored):
    did = await new_did(api, admin, typed)
    assert did["number"] == stored
    assert await api.runtime.database.pool.fetchval("SELECT number FROM dids") == stored


@pytest.mark.parametrize(
    "number",
    ["12", "01 23", "+33 1 23 45 67 89 99 99", "+999 123456789", "00000000", "+3312345678901"],
)
async def test_invalid_numbers_are_refused_on_the_field(api, admin, number):
    body = await problem(await api.client.post(DIDS, json={"number": number}, headers=admin), 422)
    assert [error["field"] for error in body["errors"]] == ["/number"]
    assert repr(number) in body["errors"][0]["message"]
    assert await api.count("dids") == 0 and await api.count("audit_log") == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("number", "+33 1 23<script>"),
        ("number", "'; DROP TABLE dids; --"),
        ("number", "+33123456789\n[evil]"),
        ("number", 33123456789),
        ("label", "two\nlines"),
        ("trunk_id", 0),
        ("trunk_id", "1"),
        ("flow_id", -1),
        ("active", "yes"),
        ("id", 3),
        ("version", 1),
        ("unknown", 1),
    ],
)
async def test_bad_fields_are_refused_by_name(api, admin, field, value):
    document = {"number": "+33123456789", field: value}
    body = await problem(await api.client.post(DIDS, json=document, headers=admin), 422)
    assert body["errors"] and all(e["field"].startswith(f"/{field}") for e in body["errors"]), body
    assert await api.count("dids") == 0


async def test_links_must_exist(api, admin):
    body = await problem(
        await api.client.post(DIDS, json={"number": "+33123456789", "flow_id": 77}, headers=admin),
        422,
    )
    assert body["errors"][0]["field"] == "/flow_id"
    body = await problem(
        await api.client.post(DIDS, json={"number": "+33123456789", "trunk_id": 9}, headers=admin),
        422,
    )
    assert body["errors"][0]["field"] == "/trunk_id"


async def test_a_number_is_routed_once_whatever_way_it_is_written(api, admin):
    await new_did(api, admin, "01 23 45 67 89")
    body = await problem(
        await api.client.post(DIDS, json={"number": "+33123456789"}, headers=admin), 409
    )
    assert body["errors"][0]["field"] == "/number"


async def test_admin_edits_routes_and_deletes_a_did_with_an_audit_trail(api, admin):
    pool = api.runtime.database.pool
    flow_id = await pool.fetchval("INSERT INTO flows (name) VALUES ('Welcome') RETURNING id")
    trunk = await created(
        await api.client.post(TRUNKS, json={"name": "carrier", "host": "h.example"}, headers=admin)
    )
    did = await new_did(api, admin, label="Sales")
    assert did["flow_id"] is None and did["trunk_id"] is None and did["active"] is True
    url = f"{DIDS}/{did['id']}"

    response = await api.client.patch(
        url,
        json={"flow_id": flow_id, "trunk_id": trunk["id"], "number": "01 98 76 54 32"},
        headers=if_match(admin, did),
    )
    assert response.status == 200, await response.text()
    routed = await response.json()
    assert routed["number"] == "+33198765432" and routed["flow_id"] == flow_id
    assert response.headers["ETag"] == '"2"'

    # The stale version is refused, and so is a write without one.
    await problem(await api.client.patch(url, json={"active": False}, headers=admin), 428)
    stale = await problem(
        await api.client.patch(url, json={"active": False}, headers=if_match(admin, did)), 412
    )
    assert stale["current_version"] == 2

    # The trunk it arrives on is not deleted while the DID names it.
    await problem(
        await api.client.delete(f"{TRUNKS}/{trunk['id']}", headers=if_match(admin, trunk)), 409
    )

    response = await api.client.delete(url, headers=if_match(admin, routed))
    assert response.status == 204
    actions = await pool.fetch(
        "SELECT action, before->>'number' AS before, after->>'number' AS after FROM audit_log "
        "WHERE entity_type = 'DID' ORDER BY id"
    )
    assert [tuple(row) for row in actions] == [
        ("create", None, "+33123456789"),
        ("update", "+33123456789", "+33198765432"),
        ("delete", "+33198765432", None),
    ]


async def test_a_did_calls_came_in_on_is_deactivated_not_deleted(api, admin):
    did = await new_did(api, admin)
    await api.runtime.database.pool.execute(
        "INSERT INTO calls (server_id, uniqueid, direction, did_id, started_at) "
        "VALUES ('pbx1', '1700000000.2', 'inbound', $1, now())",
        did["id"],
    )
    url = f"{DIDS}/{did['id']}"
    body = await problem(await api.client.delete(url, headers=if_match(admin, did)), 409)
    assert body["detail"] == (
        "DID +33123456789 received 1 call(s) and stays in their history: deactivate it "
        "instead (active: false)."
    )
    response = await api.client.patch(url, json={"active": False}, headers=if_match(admin, did))
    assert (await response.json())["active"] is False


async def test_supervisors_read_agents_are_refused(api, admin):
    did = await new_did(api, admin)
    supervisor = await api.headers("supervisor")
    listing = await (await api.client.get(f"{DIDS}?active=true", headers=supervisor)).json()
    assert [item["number"] for item in listing["items"]] == ["+33123456789"]
    await problem(
        await api.client.post(DIDS, json={"number": "+33987654321"}, headers=supervisor), 403
    )
    agent = await api.headers("agent")
    await problem(await api.client.get(f"{DIDS}/{did['id']}", headers=agent), 403)
    await problem(await api.client.get(DIDS), 401)
