"""/api/v1/users on a real database: create with a password shown once, edits whose rights
changes end the user's sessions, the last admin kept, deletion refused for users with history,
agents scoped to their own row, If-Match, field errors, and the audit trail."""

import asyncio

import pytest
from _api_client import if_match, problem
from _auth_session import login

from callcore.audit_events import AUDIT_TOPIC

USERS = "/api/v1/users"


@pytest.fixture
async def admin(api):
    return await api.headers("admin", "boss")


async def new_user(api, admin, username="alice", **fields):
    response = await api.client.post(
        USERS, json={"username": username, "role": "agent", **fields}, headers=admin
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def new_group(api, name="Team A"):
    return await api.runtime.database.pool.fetchval(
        "INSERT INTO groups (name) VALUES ($1) RETURNING id", name
    )


async def new_campaign(api, name="Spring"):
    return await api.runtime.database.pool.fetchval(
        "INSERT INTO campaigns (name) VALUES ($1) RETURNING id", name
    )


async def test_create_shows_the_password_once_and_it_logs_in(api, admin):
    group = await new_group(api)
    campaign = await new_campaign(api)
    created = await new_user(
        api,
        admin,
        display_name="Alice <b>Martin</b>",
        email="alice@example.org",
        language="en",
        group_ids=[group],
        campaign_ids=[campaign],
    )
    password = created.pop("password")
    assert len(password) >= 16
    assert created["group_ids"] == [group] and created["campaign_ids"] == [campaign]
    assert created["is_active"] is True and created["last_login_at"] is None
    assert "password_hash" not in created

    response = await api.client.get(f"{USERS}/{created['id']}", headers=admin)
    assert response.headers["ETag"] == f'"{created["version"]}"'
    shown = await response.json()
    assert "password" not in shown and shown == created

    session = await login(api.client, "alice", password)
    assert session.role == "agent"
    shown = await (await api.client.get(f"{USERS}/{created['id']}", headers=admin)).json()
    assert shown["last_login_at"] is not None and shown["version"] == created["version"]

    [entry] = await api.runtime.database.pool.fetch(
        "SELECT * FROM audit_log WHERE entity_type = 'user' AND action = 'create' "
        "AND entity_id = $1",
        str(created["id"]),
    )
    assert entry["actor_label"] == "boss" and entry["after"]["username"] == "alice"
    assert password not in str(entry["after"])


async def test_invalid_documents_name_each_field_and_write_nothing(api, admin):
    before = await api.count("users"), await api.count("audit_log")
    body = {
        "username": "has space",
        "role": "king",
        "email": "not-an-email",
        "language": "de",
        "group_ids": [987654],
        "password": "chosen",
    }
    refused = await problem(await api.client.post(USERS, json=body, headers=admin), 422)
    fields = {error["field"] for error in refused["errors"]}
    assert {"/username", "/role", "/email", "/language", "/password"} <= fields
    refused = await problem(
        await api.client.post(
            USERS, json={"username": "x", "role": "agent", "group_ids": [987654]}, headers=admin
        ),
        422,
    )
    assert refused["errors"] == [
        {"field": "/group_ids/0", "message": "/group_ids/0: no row 987654"}
    ]
    await new_user(api, admin, "Bob")
    taken = await problem(
        await api.client.post(USERS, json={"username": "BOB", "role": "agent"}, headers=admin), 409
    )
    assert taken["errors"][0]["field"] == "/username"
    assert (await api.count("users"), await api.count("audit_log")) == (
        before[0] + 1,
        before[1] + 1,
    )


async def test_edit_needs_the_current_version(api, admin):
    user = await new_user(api, admin)
    url = f"{USERS}/{user['id']}"
    await problem(await api.client.patch(url, json={"display_name": "A"}, headers=admin), 428)
    response = await api.client.patch(
        url, json={"display_name": "First"}, headers=if_match(admin, user)
    )
    assert response.status == 200
    stale = await problem(
        await api.client.patch(url, json={"display_name": "Second"}, headers=if_match(admin, user)),
        412,
    )
    assert stale["current_version"] == user["version"] + 1
    assert (await (await api.client.get(url, headers=admin)).json())["display_name"] == "First"
    await problem(await api.client.delete(url, headers=if_match(admin, user)), 412)


async def test_role_change_and_disable_end_the_sessions_and_are_audited(api, admin):
    user = await new_user(api, admin)
    session = await login(api.client, "alice", user["password"])
    me = "/api/v1/auth/me"
    assert (await api.client.get(me, headers=session.bearer())).status == 200

    url = f"{USERS}/{user['id']}"
    group = await new_group(api)
    async with api.runtime.bus.subscribe([AUDIT_TOPIC]) as events:
        response = await api.client.patch(
            url,
            json={"role": "supervisor", "display_name": "Alice", "group_ids": [group]},
            headers=if_match(admin, user),
        )
        assert response.status == 200, await response.text()
        changed = await response.json()
        announced = [await asyncio.wait_for(anext(events), 5) for _ in range(2)]
    assert changed["role"] == "supervisor" and changed["group_ids"] == [group]
    assert (await api.client.get(me, headers=session.bearer())).status == 401

    rows = await api.runtime.database.pool.fetch(
        "SELECT * FROM audit_log WHERE entity_type = 'user' AND entity_id = $1 ORDER BY id",
        str(user["id"]),
    )
    assert [r["action"] for r in rows] == ["create", "update", "change_role"]
    assert rows[1]["before"] == {"display_name": "", "group_ids": []}
    assert rows[1]["after"] == {"display_name": "Alice", "group_ids": [group]}
    assert [e.entry_id for e in announced] == [rows[1]["id"], rows[2]["id"]]

    session = await login(api.client, "alice", user["password"])
    response = await api.client.patch(
        url, json={"is_active": False}, headers=if_match(admin, changed)
    )
    assert response.status == 200 and (await response.json())["is_active"] is False
    assert (await api.client.get(me, headers=session.bearer())).status == 401
    refused = await api.client.post(
        "/api/v1/auth/login", json={"username": "alice", "password": user["password"]}
    )
    assert refused.status == 401


async def test_the_last_active_admin_cannot_be_demoted_or_disabled(api, admin):
    boss = await api.runtime.database.pool.fetchrow("SELECT * FROM users WHERE username = 'boss'")
    url = f"{USERS}/{boss['id']}"
    for change, field in (({"role": "agent"}, "/role"), ({"is_active": False}, "/is_active")):
        refused = await problem(
            await api.client.patch(url, json=change, headers=if_match(admin, boss)), 409
        )
        assert "last active admin" in refused["detail"]
        assert refused["errors"][0]["field"] == field
    after = await api.runtime.database.pool.fetchrow(
        "SELECT * FROM users WHERE id = $1", boss["id"]
    )
    assert (after["role"], after["is_active"], after["version"]) == ("admin", True, boss["version"])


async def test_reset_password_shows_a_new_one_once_and_ends_sessions(api, admin):
    user = await new_user(api, admin)
    session = await login(api.client, "alice", user["password"])
    url = f"{USERS}/{user['id']}/password"
    await problem(await api.client.post(url, headers=admin), 428)
    response = await api.client.post(url, headers=if_match(admin, user))
    assert response.status == 200
    reset = await response.json()
    assert reset["password"] != user["password"] and reset["version"] > user["version"]
    assert (await api.client.get("/api/v1/auth/me", headers=session.bearer())).status == 401
    await login(api.client, "alice", reset["password"])
    entry = await api.runtime.database.pool.fetchrow(
        "SELECT * FROM audit_log WHERE action = 'reset_password'"
    )
    assert entry["entity_id"] == str(user["id"]) and reset["password"] not in str(dict(entry))


async def test_a_user_with_history_is_refused_deletion_one_without_is_deleted(api, admin):
    pool = api.runtime.database.pool
    worked = await new_user(api, admin, "worker")
    await pool.execute("INSERT INTO agent_sessions (user_id) VALUES ($1)", worked["id"])
    await pool.execute(
        "INSERT INTO calls (agent_id, direction, server_id, uniqueid, started_at) "
        "VALUES ($1, 'outbound', 'main', '1.1', now())",
        worked["id"],
    )
    refused = await problem(
        await api.client.delete(f"{USERS}/{worked['id']}", headers=if_match(admin, worked)), 409
    )
    assert "calls (1)" in refused["detail"] and "agent sessions (1)" in refused["detail"]
    assert "Disable it instead" in refused["detail"]

    me = await pool.fetchrow("SELECT * FROM users WHERE username = 'boss'")
    await problem(await api.client.delete(f"{USERS}/{me['id']}", headers=if_match(admin, me)), 409)

    group = await new_group(api)
    fresh = await new_user(api, admin, "fresh", group_ids=[group])
    group_version = await pool.fetchval("SELECT version FROM groups WHERE id = $1", group)
    response = await api.client.delete(f"{USERS}/{fresh['id']}", headers=if_match(admin, fresh))
    assert response.status == 204
    assert await pool.fetchval("SELECT count(*) FROM users WHERE id = $1", fresh["id"]) == 0
    assert await pool.fetchval("SELECT version FROM groups WHERE id = $1", group) > group_version
    entry = await pool.fetchrow("SELECT * FROM audit_log WHERE action = 'delete'")
    assert entry["before"]["username"] == "fresh" and entry["after"] is None


async def test_agents_see_only_themselves_and_supervisors_only_read(api, admin):
    other = await new_user(api, admin, "other")
    agent = await api.user("agent", "carol")
    agent_headers = {"Authorization": f"Bearer {api.token(agent)}"}
    own = await api.client.get(f"{USERS}/{agent.user_id}", headers=agent_headers)
    assert own.status == 200 and (await own.json())["username"] == "carol"
    await problem(await api.client.get(f"{USERS}/{other['id']}", headers=agent_headers), 404)
    await problem(await api.client.get(USERS, headers=agent_headers), 403)
    await problem(
        await api.client.patch(
            f"{USERS}/{agent.user_id}",
            json={"role": "admin"},
            headers=if_match(agent_headers, other),
        ),
        403,
    )

    supervisor = await api.headers("supervisor", "sam")
    listed = await (await api.client.get(USERS, headers=supervisor)).json()
    assert {u["username"] for u in listed["items"]} == {"boss", "other", "carol", "sam"}
    before = await api.count("audit_log")
    await problem(
        await api.client.post(USERS, json={"username": "x", "role": "agent"}, headers=supervisor),
        403,
    )
    await problem(await api.client.post(f"{USERS}/{other['id']}/password", headers=supervisor), 403)
    assert await api.count("audit_log") == before


async def test_list_searches_filters_and_pages(api, admin):
    group = await new_group(api)
    for name in ("ann", "ben", "cat", "dan"):
        await new_user(api, admin, name, group_ids=[group] if name in ("ben", "dan") else [])
    await new_user(api, admin, "100%_real", display_name="Percent")

    async def names(query):
        response = await api.client.get(USERS, params=query, headers=admin)
        assert response.status == 200, await response.text()
        body = await response.json()
        return [u["username"] for u in body["items"]], body["next_cursor"]

    assert (await names({"group_id": str(group)}))[0] == ["ben", "dan"]
    assert (await names({"q": "%"}))[0] == ["100%_real"]
    assert (await names({"q": "AN"}))[0] == ["ann", "dan"]
    assert (await names({"role": "admin"}))[0] == ["boss"]
    first, cursor = await names({"limit": "2", "sort": "-username"})
    second, _ = await names({"limit": "2", "sort": "-username", "cursor": cursor})
    assert first + second == ["dan", "cat", "boss", "ben"]
    refused = await problem(
        await api.client.get(USERS, params={"sort": "password_hash"}, headers=admin), 400
    )
    assert refused["errors"][0]["field"] == "sort"
