"""/api/v1/queues on a real database: CRUD with members (a user id -> penalty map, merge-patched),
the audit trail, validation of everything queues.conf is rendered from, members who must be
agents or supervisors, If-Match, roles, deletes refused while campaigns or calls refer to the
queue, the rendered dialplan, and the pages (escaped, members editor)."""

import html
import re

import pytest
from _api_client import if_match, problem

from callcore.config import AmiServerSettings, Secret
from callcore.dialplan.render import render_dialplan

QUEUES = "/api/v1/queues"
AMI = AmiServerSettings(id="pbx1", username="callcore", secret=Secret("ami secret"))
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
async def admin(api):
    return await api.headers("admin", "alice")


@pytest.fixture
async def staff(api):
    """An agent and a supervisor who may answer queues, and an admin who may not."""
    return {
        "agent": await api.user("agent", "ann"),
        "supervisor": await api.user("supervisor", "sam"),
        "admin": await api.user("admin", "root2"),
    }


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def new_queue(api, admin, name="sales", **fields):
    return await created(
        await api.client.post(QUEUES, json={"name": name, **fields}, headers=admin)
    )


async def audit_rows(api):
    return await api.runtime.database.pool.fetch(
        "SELECT action, entity_id, before, after FROM audit_log WHERE entity_type = 'queue' "
        "ORDER BY id"
    )


async def stored_members(api, queue_id):
    rows = await api.runtime.database.pool.fetch(
        "SELECT user_id, penalty FROM queue_members WHERE queue_id = $1 ORDER BY user_id",
        queue_id,
    )
    return {row["user_id"]: row["penalty"] for row in rows}


async def test_admin_creates_edits_and_deletes_a_queue_with_members(api, admin, staff):
    ann, sam = staff["agent"].user_id, staff["supervisor"].user_id
    queue = await new_queue(
        api,
        admin,
        label="Sales line",
        strategy="leastrecent",
        max_wait_seconds=120,
        members={str(ann): 0, str(sam): 5},
    )
    assert queue["members"] == {str(ann): 0, str(sam): 5}
    assert queue["member_timeout_seconds"] == 15 and queue["music_class"] == "default"
    assert queue["overflow_flow_id"] is None and queue["version"] == 1
    assert await stored_members(api, queue["id"]) == {ann: 0, sam: 5}

    url = f"{QUEUES}/{queue['id']}"
    response = await api.client.get(url, headers=admin)
    assert response.headers["ETag"] == '"1"'
    assert await response.json() == queue

    # A merge patch changes one penalty and leaves the other member alone; the version moves.
    response = await api.client.patch(
        url, json={"members": {str(sam): 9}}, headers=if_match(admin, queue)
    )
    assert response.status == 200, await response.text()
    patched = await response.json()
    assert patched["members"] == {str(ann): 0, str(sam): 9}
    assert patched["version"] > queue["version"]
    assert response.headers["ETag"] == f'"{patched["version"]}"'

    # null removes a member; other fields change in the same write.
    response = await api.client.patch(
        url,
        json={"members": {str(ann): None}, "wrapup_seconds": 30},
        headers=if_match(admin, patched),
    )
    removed = await response.json()
    assert removed["members"] == {str(sam): 9} and removed["wrapup_seconds"] == 30
    assert await stored_members(api, queue["id"]) == {sam: 9}

    # PUT replaces: what it omits goes back to its default, members included.
    response = await api.client.put(
        url, json={"name": "sales", "strategy": "ringall"}, headers=if_match(admin, removed)
    )
    replaced = await response.json()
    assert replaced["members"] == {} and replaced["wrapup_seconds"] == 10
    assert replaced["max_wait_seconds"] is None and replaced["strategy"] == "ringall"

    # A write that changes nothing writes no audit row.
    response = await api.client.patch(url, json={"label": ""}, headers=if_match(admin, replaced))
    assert (await response.json())["version"] == replaced["version"]

    response = await api.client.delete(url, headers=if_match(admin, replaced))
    assert response.status == 204
    assert (await api.client.get(url, headers=admin)).status == 404
    assert await stored_members(api, queue["id"]) == {}

    rows = await audit_rows(api)
    assert [row["action"] for row in rows] == ["create", "update", "update", "update", "delete"]
    assert {row["entity_id"] for row in rows} == {str(queue["id"])}
    first_update = rows[1]
    assert first_update["before"] == {"members": {str(ann): 0, str(sam): 5}}
    assert first_update["after"] == {"members": {str(ann): 0, str(sam): 9}}
    assert rows[2]["after"] == {"members": {str(sam): 9}, "wrapup_seconds": 30}
    assert rows[4]["before"]["name"] == "sales" and rows[4]["after"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Sales Line"),
        ("name", "sales\n[evil]"),
        ("label", "two\nlines"),
        ("strategy", "roundrobin"),
        ("member_timeout_seconds", 0),
        ("retry_seconds", 301),
        ("wrapup_seconds", -1),
        ("max_waiting", -1),
        ("max_wait_seconds", 0),
        ("overflow_flow_id", 0),
        ("music_class", "default;x"),
        ("music_class", "${EVIL}"),
        ("service_level_seconds", 0),
        ("announce_position", "yes"),
        ("announce_holdtime", 1),
        ("periodic_announce", "promo,queue-thankyou"),
        ("periodic_announce", "promo;x"),
        ("periodic_announce", "../promo"),
        ("periodic_announce", "promo&"),
        ("periodic_announce", "${EVIL}"),
        ("periodic_announce", "a" * 501),
        ("periodic_announce_frequency", 60),
        ("members", ["1"]),
        ("members", {"abc": 1}),
        ("members", {"01": 1}),
        ("members", {"1": 101}),
        ("members", {"1": -1}),
        ("members", {"1": "0"}),
        ("version", 3),
        ("unknown", 1),
    ],
)
async def test_bad_fields_are_refused_by_name_and_nothing_is_written(api, admin, field, value):
    response = await api.client.post(QUEUES, json={"name": "q", field: value}, headers=admin)
    body = await problem(response, 422)
    assert any(error["field"].startswith(f"/{field}") for error in body["errors"]), body
    assert await api.count("queues") == 0 and await api.count("audit_log") == 0


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"periodic_announce": "queue-periodic-announce"},
            "/periodic_announce_frequency",
            "/periodic_announce_frequency: a periodic announcement needs its frequency",
        ),
        (
            {"periodic_announce": "queue-periodic-announce", "periodic_announce_frequency": None},
            "/periodic_announce_frequency",
            "/periodic_announce_frequency: a periodic announcement needs its frequency",
        ),
        (
            {"periodic_announce": None, "periodic_announce_frequency": 60},
            "/periodic_announce_frequency",
            "/periodic_announce_frequency: no periodic announcement to repeat",
        ),
        (
            {"periodic_announce": "promo", "periodic_announce_frequency": 14},
            "/periodic_announce_frequency",
            "/periodic_announce_frequency must be at least 15",
        ),
        (
            {"periodic_announce": "promo", "periodic_announce_frequency": 3601},
            "/periodic_announce_frequency",
            "/periodic_announce_frequency must be at most 3600",
        ),
    ],
)
async def test_a_periodic_announcement_and_its_frequency_go_together(
    api, admin, fields, field, message
):
    response = await api.client.post(QUEUES, json={"name": "q", **fields}, headers=admin)
    body = await problem(response, 422)
    assert {"field": field, "message": message} in body["errors"], body
    assert await api.count("queues") == 0 and await api.count("audit_log") == 0


async def test_announcements_are_saved_cleared_and_rendered(api, admin):
    queue = await new_queue(
        api,
        admin,
        announce_holdtime=True,
        periodic_announce="queue-periodic-announce&custom/promo-spring",
        periodic_announce_frequency=90,
    )
    assert queue["announce_position"] is False and queue["announce_holdtime"] is True
    url = f"{QUEUES}/{queue['id']}"
    pool = api.runtime.database.pool
    async with pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    section = files["queues.conf"].split("[sales]", 1)[1]
    for line in (
        "announce-position = no",
        "announce-holdtime = yes",
        "announce-frequency = 30",  # the hold time alone is announced too
        "periodic-announce = queue-periodic-announce&custom/promo-spring",
        "periodic-announce-frequency = 90",
    ):
        assert line in section, line

    # Removing the announcement alone leaves a frequency with nothing to repeat: refused.
    await problem(
        await api.client.patch(
            url, json={"periodic_announce": None}, headers=if_match(admin, queue)
        ),
        422,
    )
    response = await api.client.patch(
        url,
        json={"periodic_announce": None, "periodic_announce_frequency": None},
        headers=if_match(admin, queue),
    )
    assert response.status == 200, await response.text()
    stored = await pool.fetchrow(
        "SELECT periodic_announce, periodic_announce_frequency FROM queues WHERE id = $1",
        queue["id"],
    )
    assert tuple(stored) == (None, None)
    async with pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    assert "periodic-announce" not in files["queues.conf"]


async def test_the_form_shows_the_announcements(api, admin):
    queue = await new_queue(
        api,
        admin,
        announce_holdtime=True,
        periodic_announce="queue-periodic-announce&custom/promo",
        periodic_announce_frequency=60,
    )
    form = await page(api, admin, f"/settings/queues/{queue['id']}")
    holdtime = re.search(r'<input type="checkbox" name="announce_holdtime"[^>]*>', form)[0]
    assert " checked" in holdtime
    position = re.search(r'<input type="checkbox" name="announce_position"[^>]*>', form)[0]
    assert " checked" not in position
    assert 'value="queue-periodic-announce&amp;custom/promo"' in form
    assert 'data-field="/periodic_announce" data-type="optional"' in form
    assert 'name="periodic_announce_frequency" value="60"' in form
    blank = await page(api, admin, "/settings/queues/new")
    assert 'name="periodic_announce" value=""' in blank
    assert 'name="periodic_announce_frequency" value=""' in blank


async def test_members_must_exist_and_answer_calls(api, admin, staff):
    root = staff["admin"].user_id
    response = await api.client.post(
        QUEUES,
        json={"name": "q", "members": {"999999": 0, str(root): 1}, "overflow_flow_id": 424242},
        headers=admin,
    )
    body = await problem(response, 422)
    messages = {error["field"]: error["message"] for error in body["errors"]}
    assert messages == {
        "/overflow_flow_id": "/overflow_flow_id: no flow 424242",
        "/members/999999": "/members/999999: no user 999999",
        f"/members/{root}": f"/members/{root}: 'root2' is an admin; only agents and "
        "supervisors answer queues",
    }
    assert await api.count("queues") == 0 and await api.count("queue_members") == 0


async def test_overflow_flow_is_kept_and_the_dialplan_renders_the_queue(api, admin, staff):
    pool = api.runtime.database.pool
    flow_id = await pool.fetchval("INSERT INTO flows (name) VALUES ('after-hours') RETURNING id")
    ann = staff["agent"]
    phone_id = await pool.fetchval(
        "INSERT INTO phones (endpoint, password_encrypted) VALUES ('ann-desk', $1) RETURNING id",
        api.runtime.cipher.encrypt("desk password"),
    )
    await pool.execute(
        "INSERT INTO phone_assignments (phone_id, user_id) VALUES ($1, $2)", phone_id, ann.user_id
    )
    queue = await new_queue(
        api,
        admin,
        name="support-1",
        label="Support; level 1",
        strategy="fewestcalls",
        member_timeout_seconds=20,
        wrapup_seconds=45,
        max_waiting=12,
        max_wait_seconds=300,
        overflow_flow_id=flow_id,
        music_class="calm_jazz",
        announce_position=True,
        service_level_seconds=30,
        members={str(ann.user_id): 7},
    )
    assert queue["overflow_flow_id"] == flow_id
    async with pool.acquire() as conn:
        files = await render_dialplan(conn, api.runtime.cipher, "127.0.0.1", 4573, AMI)
    section = files["queues.conf"].split("[support-1]", 1)[1]
    for line in (
        "; Support; level 1",
        "strategy = fewestcalls",
        "timeout = 20",
        "wrapuptime = 45",
        "maxlen = 12",
        "servicelevel = 30",
        "musicclass = calm_jazz",
        "announce-position = yes",
        "; member ann: PJSIP/ann-desk penalty 7",
    ):
        assert line in section, line
    extensions = files["extensions.conf"]
    assert "same => n,Queue(support-1,,,,300)" in extensions
    assert f"/flow/{flow_id})" in extensions


async def test_writes_need_the_current_version(api, admin):
    queue = await new_queue(api, admin)
    url = f"{QUEUES}/{queue['id']}"
    await problem(await api.client.patch(url, json={"label": "x"}, headers=admin), 428)
    await problem(await api.client.delete(url, headers=admin), 428)
    response = await api.client.patch(url, json={"label": "x"}, headers=if_match(admin, queue))
    assert response.status == 200
    stale = await problem(
        await api.client.patch(url, json={"label": "y"}, headers=if_match(admin, queue)), 412
    )
    assert stale["current_version"] == queue["version"] + 1
    await problem(await api.client.delete(url, headers=if_match(admin, queue)), 412)
    assert (await (await api.client.get(url, headers=admin)).json())["label"] == "x"


async def test_names_are_unique(api, admin):
    await new_queue(api, admin)
    body = await problem(await api.client.post(QUEUES, json={"name": "sales"}, headers=admin), 409)
    assert body["errors"] == [{"field": "/name", "message": "/name is already taken"}]
    assert await api.count("queues") == 1


async def test_supervisors_read_agents_and_anonymous_are_refused(api, admin):
    queue = await new_queue(api, admin)
    url = f"{QUEUES}/{queue['id']}"
    supervisor = await api.headers("supervisor")
    assert (await api.client.get(QUEUES, headers=supervisor)).status == 200
    assert (await api.client.get(url, headers=supervisor)).status == 200
    await problem(await api.client.post(QUEUES, json={"name": "x"}, headers=supervisor), 403)
    await problem(
        await api.client.patch(url, json={"label": "x"}, headers=if_match(supervisor, queue)), 403
    )
    await problem(await api.client.delete(url, headers=if_match(supervisor, queue)), 403)
    agent = await api.headers("agent")
    await problem(await api.client.get(QUEUES, headers=agent), 403)
    await problem(await api.client.get(url, headers=agent), 403)
    await problem(await api.client.get(QUEUES), 401)
    assert await api.count("queues") == 1


async def test_list_filters_sorts_and_pages(api, admin, staff):
    ann = staff["agent"].user_id
    await new_queue(api, admin, name="alpha", strategy="ringall", members={str(ann): 1})
    await new_queue(api, admin, name="beta", label="Night shift")
    await new_queue(api, admin, name="gamma", strategy="ringall")

    async def names(query):
        response = await api.client.get(f"{QUEUES}?{query}", headers=admin)
        assert response.status == 200, await response.text()
        return [item["name"] for item in (await response.json())["items"]]

    assert await names("") == ["alpha", "beta", "gamma"]
    assert await names("sort=-name") == ["gamma", "beta", "alpha"]
    assert await names("strategy=ringall") == ["alpha", "gamma"]
    assert await names(f"member_id={ann}") == ["alpha"]
    assert await names("q=night") == ["beta"]
    first = await (await api.client.get(f"{QUEUES}?limit=2", headers=admin)).json()
    assert [item["name"] for item in first["items"]] == ["alpha", "beta"]
    assert await names(f"limit=2&cursor={first['next_cursor']}") == ["gamma"]
    await problem(await api.client.get(f"{QUEUES}?sort=label", headers=admin), 400)
    await problem(await api.client.get(f"{QUEUES}?strategy=nope", headers=admin), 400)


async def test_a_queue_campaigns_or_calls_use_is_not_deleted(api, admin):
    pool = api.runtime.database.pool
    queue = await new_queue(api, admin)
    url = f"{QUEUES}/{queue['id']}"
    await pool.execute(
        "INSERT INTO campaigns (name, queue_id) VALUES ('Spring promo', $1)", queue["id"]
    )
    body = await problem(await api.client.delete(url, headers=if_match(admin, queue)), 409)
    assert body["detail"].startswith(
        "Queue 'sales' cannot be deleted: it is still used by campaigns (Spring promo). Keep it"
    )
    await pool.execute("DELETE FROM campaigns")
    await pool.execute(
        "INSERT INTO calls (server_id, uniqueid, direction, queue_id, started_at) "
        "VALUES ('pbx1', '1.1', 'inbound', $1, now()), ('pbx1', '1.2', 'inbound', $1, now())",
        queue["id"],
    )
    body = await problem(await api.client.delete(url, headers=if_match(admin, queue)), 409)
    assert "still used by calls (2 call(s), kept in the history)" in body["detail"]
    assert await api.count("queues") == 1
    assert [row["action"] for row in await audit_rows(api)] == ["create"]


async def page(api, headers, url, status=200):
    response = await api.client.get(url, headers=headers, allow_redirects=False)
    text = await response.text()
    assert response.status == status, text
    return text


async def test_pages_escape_everything_and_target_the_api(api, admin, staff):
    pool = api.runtime.database.pool
    await pool.execute("UPDATE users SET display_name = $1", SCRIPT)
    await pool.execute("INSERT INTO flows (name) VALUES ($1)", SCRIPT)
    ann, sam = staff["agent"].user_id, staff["supervisor"].user_id
    queue = await new_queue(api, admin, label=SCRIPT, members={str(ann): 3})

    assert 'data-state="loading"' in await page(api, admin, "/settings/queues")
    rows = await page(api, admin, "/settings/queues/rows")
    assert SCRIPT not in rows and "&lt;script&gt;alert(1)&lt;/script&gt;" in rows
    assert f'href="/settings/queues/{queue["id"]}"' in rows

    form = await page(api, admin, f"/settings/queues/{queue['id']}")
    assert SCRIPT not in form
    assert f'data-url="{QUEUES}/{queue["id"]}"' in form and 'data-etag="&#34;1&#34;"' in form
    assert f'data-field="/members/{ann}"' in form and 'value="3"' in form
    # Who may still join: the supervisor, not the admins nor the member already there.
    choices = re.search(r'<select name="add".*?</select>', form, re.S)[0]
    assert f'value="{sam}"' in choices and f'value="{ann}"' not in choices
    assert f'value="{staff["admin"].user_id}"' not in choices

    editor = await page(api, admin, f"/settings/queues/members?member={ann}&penalty=8&add={sam}")
    assert f'data-field="/members/{ann}"' in editor and f'data-field="/members/{sam}"' in editor
    assert 'value="8"' in editor and '<select name="add"' not in editor
    editor = await page(
        api,
        admin,
        f"/settings/queues/members?member={ann}&penalty=8&member={sam}&penalty=0&remove={ann}",
    )
    assert f'data-field="/members/{ann}"' not in editor
    assert SCRIPT not in editor and html.escape(SCRIPT, quote=False) in editor
    hostile = await page(api, admin, f'/settings/queues/members?member={ann}&penalty="><b>x')
    assert "<b>x" not in hostile and 'value="&#34;&gt;&lt;b&gt;x"' in hostile
    assert 'data-state="empty"' in await page(api, admin, "/settings/queues/members")

    await page(api, admin, "/settings/queues/999999", status=404)
    await page(api, await api.headers("supervisor"), "/settings/queues", status=403)
