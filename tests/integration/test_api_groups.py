"""/api/v1/groups on a real database: CRUD with members and campaigns, both sides' versions
moving together, deletion refused while a campaign uses the group, roles, and the audit trail."""

import pytest
from _api_client import if_match, problem

GROUPS = "/api/v1/groups"


@pytest.fixture
async def admin(api):
    return await api.headers("admin", "boss")


async def new_group(api, admin, name="Team A", **fields):
    response = await api.client.post(GROUPS, json={"name": name, **fields}, headers=admin)
    assert response.status == 201, await response.text()
    assert response.headers["Location"] == f"{GROUPS}/{(await response.json())['id']}"
    return await response.json()


async def test_crud_with_members_and_campaigns_and_the_audit_trail(api, admin):
    pool = api.runtime.database.pool
    ann = await api.user("agent", "ann")
    ben = await api.user("agent", "ben")
    campaign = await pool.fetchval("INSERT INTO campaigns (name) VALUES ('Spring') RETURNING id")
    group = await new_group(api, admin, member_ids=[ben.user_id, ann.user_id])
    assert group["member_ids"] == sorted([ann.user_id, ben.user_id])
    assert group["description"] == "" and group["campaign_ids"] == []
    url = f"{GROUPS}/{group['id']}"

    ann_version = await pool.fetchval("SELECT version FROM users WHERE id = $1", ann.user_id)
    response = await api.client.patch(
        url,
        json={"member_ids": [ben.user_id], "campaign_ids": [campaign]},
        headers=if_match(admin, group),
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["member_ids"] == [ben.user_id] and patched["version"] == group["version"] + 1
    # Ann's representation (group_ids) changed: so did her version, so a stale edit is caught.
    assert await pool.fetchval("SELECT version FROM users WHERE id = $1", ann.user_id) > ann_version
    ben_row = await (await api.client.get(f"/api/v1/users/{ben.user_id}", headers=admin)).json()
    assert ben_row["group_ids"] == [group["id"]]

    # PUT replaces: omitted lists go back to empty.
    response = await api.client.put(url, json={"name": "Team B"}, headers=if_match(admin, patched))
    replaced = await response.json()
    assert (replaced["name"], replaced["member_ids"], replaced["campaign_ids"]) == (
        "Team B",
        [],
        [],
    )

    response = await api.client.delete(url, headers=if_match(admin, replaced))
    assert response.status == 204
    await problem(await api.client.get(url, headers=admin), 404)

    rows = await pool.fetch("SELECT * FROM audit_log WHERE entity_type = 'group' ORDER BY id")
    assert [r["action"] for r in rows] == ["create", "update", "update", "delete"]
    assert rows[1]["before"] == {
        "campaign_ids": [],
        "member_ids": sorted([ann.user_id, ben.user_id]),
    }
    assert rows[1]["after"] == {"campaign_ids": [campaign], "member_ids": [ben.user_id]}
    assert rows[3]["after"] is None and rows[3]["actor_label"] == "boss"


async def test_a_group_a_campaign_uses_cannot_be_deleted(api, admin):
    pool = api.runtime.database.pool
    campaign = await pool.fetchval(
        "INSERT INTO campaigns (name) VALUES ('Winter <sale>') RETURNING id"
    )
    group = await new_group(api, admin, campaign_ids=[campaign])
    before = await api.count("audit_log")
    refused = await problem(
        await api.client.delete(f"{GROUPS}/{group['id']}", headers=if_match(admin, group)), 409
    )
    assert refused["detail"] == (
        "Group 'Team A' cannot be deleted: it is still used by campaigns (Winter <sale>)."
    )
    assert await api.count("groups") == 1 and await api.count("audit_log") == before


async def test_bad_input_and_versions(api, admin):
    await new_group(api, admin)
    taken = await problem(
        await api.client.post(GROUPS, json={"name": "Team A"}, headers=admin), 409
    )
    assert taken["errors"] == [{"field": "/name", "message": "/name is already taken"}]
    refused = await problem(
        await api.client.post(
            GROUPS, json={"name": " ", "member_ids": [1, 1], "extra": True}, headers=admin
        ),
        422,
    )
    assert {e["field"] for e in refused["errors"]} == {"/name", "/member_ids", "/extra"}
    missing = await problem(
        await api.client.post(GROUPS, json={"name": "B", "campaign_ids": [424242]}, headers=admin),
        422,
    )
    assert missing["errors"][0]["field"] == "/campaign_ids/0"
    group = await new_group(api, admin, "C")
    url = f"{GROUPS}/{group['id']}"
    await problem(await api.client.patch(url, json={"name": "D"}, headers=admin), 428)
    await api.client.patch(url, json={"name": "D"}, headers=if_match(admin, group))
    stale = await problem(
        await api.client.patch(url, json={"name": "E"}, headers=if_match(admin, group)), 412
    )
    assert stale["current_version"] == group["version"] + 1
    assert await api.count("groups") == 2


async def test_supervisors_read_agents_and_anonymous_are_refused(api, admin):
    group = await new_group(api, admin)
    supervisor = await api.headers("supervisor")
    agent = await api.headers("agent")
    listed = await (await api.client.get(GROUPS, params={"q": "team"}, headers=supervisor)).json()
    assert [g["name"] for g in listed["items"]] == ["Team A"]
    await problem(await api.client.get(GROUPS), 401)
    await problem(await api.client.get(f"{GROUPS}/{group['id']}", headers=agent), 403)
    before = await api.count("audit_log")
    for headers in (supervisor, agent):
        await problem(await api.client.post(GROUPS, json={"name": "X"}, headers=headers), 403)
        await problem(
            await api.client.delete(f"{GROUPS}/{group['id']}", headers=if_match(headers, group)),
            403,
        )
    assert await api.count("audit_log") == before and await api.count("groups") == 1
