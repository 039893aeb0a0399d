"""/api/v1/ivr-flows, /ivr-nodes and /ivr-emergency on a real database: CRUD, the draft and its
problems, conflicting edits, publishing, versions, rollback, export and import, references that
keep a flow, emergency overrides, the node palette in the user's language, roles and audit."""

import pytest
from _api_client import if_match, problem
from _ivr_nodes import PLUGIN, add_test_nodes, edge, node

from callcore.db import flows as flow_store
from callcore.ivr.node import SECRET_MASK

FLOWS = "/api/v1/ivr-flows"
EMPTY = {"entry": None, "nodes": [], "edges": []}
GOOD = {
    "entry": "start",
    "nodes": [node("start", "answer"), node("bye", "hangup")],
    "edges": [edge("start", "next", "bye")],
}
MENU = {
    "entry": "start",
    "nodes": [
        node("start", "answer"),
        node("menu", "acme_menu", prompt="main-menu", keys="12"),
        node("bye", "hangup"),
    ],
    "edges": [
        edge("start", "next", "menu"),
        edge("menu", "key_1", "bye"),
        edge("menu", "key_2", "bye"),
    ],
}


@pytest.fixture
async def admin(api):
    add_test_nodes(api.runtime)
    return await api.headers("admin")


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def ok(response):
    assert response.status == 200, await response.text()
    return await response.json()


async def new_flow(api, admin, name="Main", **fields):
    return await created(await api.client.post(FLOWS, json={"name": name, **fields}, headers=admin))


async def save(api, admin, flow, graph):
    url = f"{FLOWS}/{flow['id']}/draft"
    return await ok(await api.client.put(url, json={"graph": graph}, headers=if_match(admin, flow)))


async def publish(api, admin, flow, **body):
    url = f"{FLOWS}/{flow['id']}/publish"
    return await ok(await api.client.post(url, json=body, headers=if_match(admin, flow)))


async def audit_actions(api, flow_id):
    rows = await api.runtime.database.pool.fetch(
        "SELECT action FROM audit_log WHERE entity_type = 'IVR_flow' AND entity_id = $1 "
        "ORDER BY id",
        str(flow_id),
    )
    return [row["action"] for row in rows]


# --- the flow itself ---------------------------------------------------------------------------


async def test_a_new_flow_starts_with_an_empty_draft(api, admin):
    response = await api.client.post(
        FLOWS, json={"name": "Main", "description": "Daytime"}, headers=admin
    )
    flow = await created(response)
    assert response.headers["ETag"] == f'"{flow["version"]}"'
    assert response.headers["Location"] == f"{FLOWS}/{flow['id']}"
    assert flow["name"] == "Main" and flow["description"] == "Daytime"
    assert flow["is_fallback"] is False and flow["emergency_mode"] == "none"
    assert flow["published_version"] is None
    assert flow["draft"]["version_number"] == 1 and flow["draft"]["graph"] == EMPTY
    fetched = await ok(await api.client.get(f"{FLOWS}/{flow['id']}", headers=admin))
    assert fetched == flow
    assert await audit_actions(api, flow["id"]) == ["create"]


async def test_the_list_pages_and_filters(api, admin):
    for name in ("Beta", "Alpha", "Gamma"):
        await new_flow(api, admin, name, is_fallback=name == "Gamma")
    page = await ok(await api.client.get(FLOWS, params={"limit": "2"}, headers=admin))
    assert [f["name"] for f in page["items"]] == ["Alpha", "Beta"]
    rest = await ok(
        await api.client.get(FLOWS, params={"cursor": page["next_cursor"]}, headers=admin)
    )
    assert [f["name"] for f in rest["items"]] == ["Gamma"] and rest["next_cursor"] is None
    fallback = await ok(await api.client.get(FLOWS, params={"is_fallback": "true"}, headers=admin))
    assert [f["name"] for f in fallback["items"]] == ["Gamma"]
    named = await ok(await api.client.get(FLOWS, params={"name": "Beta"}, headers=admin))
    assert [f["name"] for f in named["items"]] == ["Beta"]
    bad = await problem(await api.client.get(FLOWS, params={"sort": "graph"}, headers=admin), 400)
    assert bad["errors"][0]["field"] == "sort"


async def test_patch_and_put_change_the_flow_with_if_match(api, admin):
    flow = await new_flow(api, admin)
    url = f"{FLOWS}/{flow['id']}"
    await problem(await api.client.patch(url, json={"description": "x"}, headers=admin), 428)
    patched = await ok(
        await api.client.patch(url, json={"description": "New"}, headers=if_match(admin, flow))
    )
    assert patched["description"] == "New" and patched["version"] > flow["version"]
    stale = await problem(
        await api.client.patch(url, json={"name": "Other"}, headers=if_match(admin, flow)), 412
    )
    assert stale["current_version"] == patched["version"]
    replaced = await ok(
        await api.client.put(url, json={"name": "Renamed"}, headers=if_match(admin, patched))
    )
    assert replaced["name"] == "Renamed" and replaced["description"] == ""
    assert replaced["draft"] == flow["draft"]
    assert await audit_actions(api, flow["id"]) == ["create", "update", "update"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", " padded "),
        ("name", "two\nlines"),
        ("is_fallback", "yes"),
        ("emergency_mode", "panic"),
        ("emergency_message", "../etc/passwd"),
        ("emergency_message", "a b"),
        ("published_version", 3),
        ("draft", {}),
        ("graph", EMPTY),
    ],
)
async def test_bad_fields_are_refused_by_name(api, admin, field, value):
    body = await problem(
        await api.client.post(FLOWS, json={"name": "Main", field: value}, headers=admin), 422
    )
    assert body["errors"] and all(e["field"].startswith(f"/{field}") for e in body["errors"])
    assert await api.count("flows") == 0 and await api.count("audit_log") == 0


async def test_names_are_unique_and_one_flow_at_most_is_the_fallback(api, admin):
    main = await new_flow(api, admin, "Main", is_fallback=True)
    taken = await problem(await api.client.post(FLOWS, json={"name": "Main"}, headers=admin), 409)
    assert taken["errors"][0]["field"] == "/name"
    second = await problem(
        await api.client.post(FLOWS, json={"name": "Other", "is_fallback": True}, headers=admin),
        409,
    )
    assert "'Main' is already the fallback flow" in second["detail"]
    other = await new_flow(api, admin, "Other")
    refused = await problem(
        await api.client.patch(
            f"{FLOWS}/{other['id']}", json={"is_fallback": True}, headers=if_match(admin, other)
        ),
        409,
    )
    assert refused["errors"][0]["field"] == "/is_fallback"
    unset = await ok(
        await api.client.patch(
            f"{FLOWS}/{main['id']}", json={"is_fallback": False}, headers=if_match(admin, main)
        )
    )
    assert unset["is_fallback"] is False
    assert await api.count("flows") == 2


async def test_roles_supervisors_read_agents_are_refused(api, admin):
    flow = await new_flow(api, admin)
    supervisor = await api.headers("supervisor")
    agent = await api.headers("agent")
    assert (await api.client.get(f"{FLOWS}/{flow['id']}", headers=supervisor)).status == 200
    assert (
        await api.client.get(f"{FLOWS}/{flow['id']}/versions", headers=supervisor)
    ).status == 200
    assert (await api.client.post(FLOWS, json={"name": "X"}, headers=supervisor)).status == 403
    draft = f"{FLOWS}/{flow['id']}/draft"
    refused = await api.client.put(draft, json={"graph": GOOD}, headers=if_match(supervisor, flow))
    assert refused.status == 403
    assert (await api.client.get(FLOWS, headers=agent)).status == 403
    assert (await api.client.get("/api/v1/ivr-nodes", headers=agent)).status == 403


async def test_a_flow_routed_to_cannot_be_deleted(api, admin):
    flow = await new_flow(api, admin)
    pool = api.runtime.database.pool
    await pool.execute("INSERT INTO dids (number, flow_id) VALUES ('+33123456789', $1)", flow["id"])
    await pool.execute(
        "INSERT INTO queues (name, overflow_flow_id) VALUES ('sales', $1)", flow["id"]
    )
    url = f"{FLOWS}/{flow['id']}"
    await problem(await api.client.delete(url, headers=admin), 428)
    refused = await problem(await api.client.delete(url, headers=if_match(admin, flow)), 409)
    assert "DIDs (+33123456789)" in refused["detail"] and "queues (sales)" in refused["detail"]
    await pool.execute("DELETE FROM dids")
    await pool.execute("DELETE FROM queues")
    response = await api.client.delete(url, headers=if_match(admin, flow))
    assert response.status == 204
    assert await api.count("flows") == 0 and await api.count("flow_versions") == 0
    assert await audit_actions(api, flow["id"]) == ["create", "delete"]


# --- the draft ---------------------------------------------------------------------------------


async def test_saving_the_draft_reports_node_problems_without_refusing(api, admin):
    flow = await new_flow(api, admin)
    graph = {
        "entry": "start",
        "nodes": [
            node("start", "answer"),
            node("menu", "acme_menu", prompt="main menu", keys="12"),
            node("n3", "acme_unknown"),
        ],
        "edges": [edge("start", "next", "menu")],
    }
    response = await api.client.put(
        f"{FLOWS}/{flow['id']}/draft", json={"graph": graph}, headers=if_match(admin, flow)
    )
    saved = await ok(response)
    assert response.headers["ETag"] == f'"{saved["version"]}"'
    assert saved["version"] > flow["version"]
    assert saved["draft"] == {**saved["draft"], "version_number": 1, "graph": graph}
    where = {(p["code"], p["node"], p["field"]) for p in saved["problems"]}
    assert ("invalid_params", "menu", "params/prompt") in where
    assert ("unknown_type", "n3", "type") in where
    assert ("unreachable", "n3", None) in where
    again = await save(api, admin, saved, graph)
    assert again["version"] == saved["version"], "an unchanged graph is not a change"
    assert await audit_actions(api, flow["id"]) == ["create", "save_draft"]


@pytest.mark.parametrize(
    ("graph", "field"),
    [
        ({"entry": None, "nodes": []}, "/graph/edges"),
        ({**EMPTY, "nodes": [{"id": "a b", "type": "answer", "params": {}}]}, "/graph/nodes/0/id"),
        ({**EMPTY, "nodes": [{"id": "a", "type": "answer"}]}, "/graph/nodes/0/params"),
        ({**EMPTY, "edges": [{"from": "a", "to": "b"}]}, "/graph/edges/0/exit"),
        ({**EMPTY, "extra": 1}, "/graph/extra"),
    ],
)
async def test_a_draft_of_the_wrong_shape_is_refused_on_the_field(api, admin, graph, field):
    flow = await new_flow(api, admin)
    body = await problem(
        await api.client.put(
            f"{FLOWS}/{flow['id']}/draft", json={"graph": graph}, headers=if_match(admin, flow)
        ),
        422,
    )
    assert field in [error["field"] for error in body["errors"]]
    current = await ok(await api.client.get(f"{FLOWS}/{flow['id']}", headers=admin))
    assert current == flow


async def test_two_editors_of_one_graph_conflict_instead_of_overwriting(api, admin):
    flow = await new_flow(api, admin)
    first = await save(api, admin, flow, GOOD)
    late = await api.client.put(
        f"{FLOWS}/{flow['id']}/draft", json={"graph": MENU}, headers=if_match(admin, flow)
    )
    body = await problem(late, 412)
    assert late.headers["ETag"] == f'"{first["version"]}"'
    assert body["current_version"] == first["version"]
    current = await ok(await api.client.get(f"{FLOWS}/{flow['id']}", headers=admin))
    assert current["draft"]["graph"] == GOOD


async def test_validate_checks_the_draft_or_the_graph_sent(api, admin):
    flow = await new_flow(api, admin)
    url = f"{FLOWS}/{flow['id']}/validate"
    empty = await ok(await api.client.post(url, headers=admin))
    assert empty["valid"] is False
    assert [p["code"] for p in empty["problems"]] == ["missing_entry"]
    sent = await ok(await api.client.post(url, json={"graph": GOOD}, headers=admin))
    assert sent == {"problems": [], "valid": True}


async def test_problems_are_told_in_the_users_language(api, admin):
    flow = await new_flow(api, admin)
    url = f"{FLOWS}/{flow['id']}/validate"
    broken = {**GOOD, "edges": [*GOOD["edges"], edge("ghost", "next", "bye")]}
    french = await ok(await api.client.post(url, json={"graph": broken}, headers=admin))
    english_admin = await api.user("admin", "en-admin")
    await api.runtime.database.pool.execute(
        "UPDATE users SET language = 'en' WHERE id = $1", english_admin.user_id
    )
    english_headers = {"Authorization": f"Bearer {api.token(english_admin)}"}
    english = await ok(await api.client.post(url, json={"graph": broken}, headers=english_headers))
    assert [p["code"] for p in french["problems"]] == ["dangling_edge"]
    assert french["problems"][0]["message"] == "edges/1 part d’un nœud inconnu, 'ghost'"
    assert english["problems"][0]["message"] == "edges/1 starts at unknown node 'ghost'"
    # Publishing refuses with the same words, on the field errors too.
    saved = await save(api, admin, flow, broken)
    refused = await problem(
        await api.client.post(f"{FLOWS}/{flow['id']}/publish", headers=if_match(admin, saved)),
        422,
    )
    assert [error["message"] for error in refused["errors"]] == [
        "edges/1 part d’un nœud inconnu, 'ghost'"
    ]


# --- publishing and versions -----------------------------------------------------------------


async def test_a_draft_with_problems_is_not_published(api, admin):
    flow = await new_flow(api, admin)
    broken = {
        **MENU,
        "nodes": [*MENU["nodes"][:1], node("menu", "acme_menu", prompt="main-menu", keys="x")],
    }
    saved = await save(api, admin, flow, broken)
    body = await problem(
        await api.client.post(f"{FLOWS}/{flow['id']}/publish", headers=if_match(admin, saved)),
        422,
    )
    assert {(p["node"], p["field"]) for p in body["problems"]} == {
        ("menu", "params/keys"),
        ("menu", "exits/key_1"),
        ("menu", "exits/key_2"),
    }
    fields = [error["field"] for error in body["errors"]]
    assert {"/nodes/menu/params/keys", "/nodes/menu/exits/key_1"} <= set(fields)
    current = await ok(await api.client.get(f"{FLOWS}/{flow['id']}", headers=admin))
    saved.pop("problems")
    assert current == saved, "nothing changed"
    assert await flow_store.published_flow(api.runtime.database.pool, flow["id"]) is None


async def test_publish_then_edit_leaves_the_published_version_intact(api, admin):
    flow = await new_flow(api, admin)
    saved = await save(api, admin, flow, GOOD)
    published = await publish(api, admin, saved, note="first")
    assert published["published_version"] == 1 and published["draft"] is None
    assert published["version"] > saved["version"]
    await problem(
        await api.client.post(f"{FLOWS}/{flow['id']}/publish", headers=if_match(admin, published)),
        409,
    )
    edited = await save(api, admin, published, MENU)
    assert edited["published_version"] == 1
    assert edited["draft"]["version_number"] == 2 and edited["draft"]["graph"] == MENU
    one = await ok(await api.client.get(f"{FLOWS}/{flow['id']}/versions/1", headers=admin))
    assert one["graph"] == GOOD and one["status"] == "published" and one["note"] == "first"
    pool = api.runtime.database.pool
    async with pool.acquire() as conn:
        running = await flow_store.published_flow(conn, flow["id"])
    assert running.version_number == 1 and running.graph == GOOD
    second = await publish(api, admin, edited)
    assert second["published_version"] == 2
    versions = await ok(await api.client.get(f"{FLOWS}/{flow['id']}/versions", headers=admin))
    assert [(v["version_number"], v["status"]) for v in versions["items"]] == [
        (2, "published"),
        (1, "archived"),
    ]
    assert versions["items"][0]["created_by_username"] == "admin-user"
    assert "graph" not in versions["items"][0]
    assert await audit_actions(api, flow["id"]) == [
        "create",
        "save_draft",
        "publish",
        "save_draft",
        "publish",
    ]
    await problem(await api.client.get(f"{FLOWS}/{flow['id']}/versions/9", headers=admin), 404)


async def test_rollback_publishes_an_old_graph_as_a_new_version(api, admin):
    flow = await new_flow(api, admin)
    first = await publish(api, admin, await save(api, admin, flow, GOOD))
    second = await publish(api, admin, await save(api, admin, first, MENU))
    url = f"{FLOWS}/{flow['id']}/rollback"
    await problem(await api.client.post(url, json={"version_number": 1}, headers=admin), 428)
    missing = await problem(
        await api.client.post(url, json={"version_number": 7}, headers=if_match(admin, second)),
        404,
    )
    assert missing["errors"][0]["field"] == "/version_number"
    current = await problem(
        await api.client.post(url, json={"version_number": 2}, headers=if_match(admin, second)),
        422,
    )
    assert "already" in current["detail"]
    rolled = await ok(
        await api.client.post(url, json={"version_number": 1}, headers=if_match(admin, second))
    )
    assert rolled["published_version"] == 3 and rolled["draft"] is None
    three = await ok(await api.client.get(f"{FLOWS}/{flow['id']}/versions/3", headers=admin))
    assert three["graph"] == GOOD and three["note"] == "rollback to version 1"
    versions = await ok(await api.client.get(f"{FLOWS}/{flow['id']}/versions", headers=admin))
    assert [(v["version_number"], v["status"]) for v in versions["items"]] == [
        (3, "published"),
        (2, "archived"),
        (1, "archived"),
    ]
    stale = await api.client.post(url, json={"version_number": 2}, headers=if_match(admin, second))
    await problem(stale, 412)
    entry = await api.runtime.database.pool.fetchrow(
        "SELECT before, after FROM audit_log WHERE action = 'rollback'"
    )
    assert entry["before"] == {"published_version": 2}
    assert entry["after"]["published_version"] == 3 and entry["after"]["from_version"] == 1


async def test_a_draft_kept_through_a_rollback_publishes_with_a_new_number(api, admin):
    flow = await new_flow(api, admin)
    first = await publish(api, admin, await save(api, admin, flow, GOOD))
    second = await publish(api, admin, await save(api, admin, first, MENU))
    drafted = await save(api, admin, second, {**GOOD, "nodes": GOOD["nodes"][::-1]})
    assert drafted["draft"]["version_number"] == 3
    rolled = await ok(
        await api.client.post(
            f"{FLOWS}/{flow['id']}/rollback",
            json={"version_number": 1},
            headers=if_match(admin, drafted),
        )
    )
    assert rolled["published_version"] == 4 and rolled["draft"]["version_number"] == 3
    published = await publish(api, admin, rolled)
    assert published["published_version"] == 5, "published numbers only grow"


# --- export and import -------------------------------------------------------------------------


async def test_export_then_import_round_trips_the_graph(api, admin):
    flow = await new_flow(api, admin, description="Days")
    url = f"{FLOWS}/{flow['id']}/export"
    await problem(await api.client.get(url, headers=admin), 404)
    published = await publish(api, admin, await save(api, admin, flow, MENU))
    await save(api, admin, published, GOOD)
    document = await ok(await api.client.get(url, headers=admin))
    assert document == {
        "format": "callcore-flow",
        "format_version": 1,
        "name": "Main",
        "description": "Days",
        "graph": MENU,
        "omitted_secrets": [],
    }
    draft = await ok(await api.client.get(url, params={"version": "draft"}, headers=admin))
    assert draft["graph"] == GOOD
    await problem(await api.client.get(url, params={"version": "latest"}, headers=admin), 400)
    taken = await problem(
        await api.client.post(f"{FLOWS}/import", json=document, headers=admin), 409
    )
    assert taken["errors"][0]["field"] == "/name"
    response = await api.client.post(
        f"{FLOWS}/import", json={**document, "name": "Main (copy)"}, headers=admin
    )
    copy = await created(response)
    assert copy["name"] == "Main (copy)" and copy["description"] == "Days"
    assert copy["draft"]["graph"] == MENU and copy["published_version"] is None
    assert copy["problems"] == []
    assert response.headers["Location"] == f"{FLOWS}/{copy['id']}"
    assert await audit_actions(api, copy["id"]) == ["import"]


async def test_import_refuses_node_types_not_installed(api, admin):
    graph = {
        "entry": "n1",
        "nodes": [node("n1", "answer"), node("n3", "acme_x"), node("n4", "acme_y")],
        "edges": [edge("n1", "next", "n3")],
    }
    document = {"format": "callcore-flow", "format_version": 1, "name": "Imported", "graph": graph}
    body = await problem(
        await api.client.post(f"{FLOWS}/import", json=document, headers=admin), 422
    )
    assert "node type 'acme_x' (node n3) is not installed" in body["detail"]
    assert "node type 'acme_y' (node n4) is not installed" in body["detail"]
    assert [e["field"] for e in body["errors"]] == ["/graph/nodes/1/type", "/graph/nodes/2/type"]
    wrong = await problem(
        await api.client.post(
            f"{FLOWS}/import", json={**document, "format": "other"}, headers=admin
        ),
        422,
    )
    assert [e["field"] for e in wrong["errors"]] == ["/format"]
    assert await api.count("flows") == 0 and await api.count("audit_log") == 0


# --- secret params ----------------------------------------------------------------------------

TOKEN = "Bearer s3cr3t-t0ken"


def crm_flow(secret_headers, url="https://crm.example/lookup"):
    """answer > crm (webhook with an Accept header and ``secret_headers``) > bye."""
    crm = node("crm", "webhook", url=url, headers={"Accept": "application/json"})
    crm["params"]["secret_headers"] = secret_headers
    return {
        "entry": "start",
        "nodes": [node("start", "answer"), crm, node("bye", "hangup")],
        "edges": [edge("start", "next", "crm")]
        + [edge("crm", name, "bye") for name in ("ok", "error", "timeout")],
    }


async def stored_secrets(api, flow_id):
    """Every version's graph as text, and its secrets decrypted."""
    rows = await api.runtime.database.pool.fetch(
        "SELECT version_number, graph::text AS graph, secrets FROM flow_versions "
        "WHERE flow_id = $1 ORDER BY version_number",
        flow_id,
    )
    cipher = api.runtime.cipher
    return {
        row["version_number"]: (
            row["graph"],
            {
                node_id: {
                    param: {key: cipher.decrypt(token.encode()).value for key, token in kv.items()}
                    for param, kv in params.items()
                }
                for node_id, params in row["secrets"].items()
            },
        )
        for row in rows
    }


async def test_secret_headers_are_stored_encrypted_and_only_the_engine_reads_them(api, admin):
    flow = await new_flow(api, admin)
    saved = await save(api, admin, flow, crm_flow({"Authorization": TOKEN}))
    served = saved["draft"]["graph"]
    crm = next(n for n in served["nodes"] if n["id"] == "crm")
    assert crm["params"]["secret_headers"] == {"Authorization": SECRET_MASK}
    assert crm["params"]["headers"] == {"Accept": "application/json"}
    assert saved["problems"] == []
    graph_text, secrets = (await stored_secrets(api, flow["id"]))[1]
    assert "s3cr3t" not in graph_text
    assert secrets == {"crm": {"secret_headers": {"Authorization": TOKEN}}}

    # what the editor sends back (the mask) keeps the value; a second header is added
    served["nodes"][1]["params"]["secret_headers"]["X-Api-Key"] = "k-123"
    again = await save(api, admin, saved, served)
    assert (await stored_secrets(api, flow["id"]))[1][1] == {
        "crm": {"secret_headers": {"Authorization": TOKEN, "X-Api-Key": "k-123"}}
    }
    unchanged = await save(api, admin, again, again["draft"]["graph"])
    assert unchanged["version"] == again["version"], "the same graph, masks included: no change"
    same = {"Authorization": TOKEN, "X-Api-Key": "k-123"}
    retyped = await save(api, admin, unchanged, {**served, **crm_flow(same)})
    assert retyped["version"] == again["version"], "the same values typed again: no change"

    published = await publish(api, admin, retyped)
    async with api.runtime.database.pool.acquire() as conn:
        running = await flow_store.published_flow(conn, flow["id"])
    compiled = api.runtime.ivr.compiled(running)
    assert compiled.nodes["crm"].node.params["secret_headers"] == {
        "Authorization": TOKEN,
        "X-Api-Key": "k-123",
    }

    # a new value replaces the old one in a new draft; version 1 keeps its own
    rotated = crm_flow({"Authorization": "Bearer new", "X-Api-Key": SECRET_MASK})
    edited = await save(api, admin, published, rotated)
    stored = await stored_secrets(api, flow["id"])
    assert stored[2][1]["crm"]["secret_headers"] == {
        "Authorization": "Bearer new",
        "X-Api-Key": "k-123",
    }
    assert stored[1][1]["crm"]["secret_headers"]["Authorization"] == TOKEN
    second = await publish(api, admin, edited)
    rolled = await ok(
        await api.client.post(
            f"{FLOWS}/{flow['id']}/rollback",
            json={"version_number": 1},
            headers=if_match(admin, second),
        )
    )
    async with api.runtime.database.pool.acquire() as conn:
        running = await flow_store.published_flow(conn, flow["id"])
    assert running.version_number == rolled["published_version"] == 3
    assert api.runtime.ivr.compiled(running).nodes["crm"].node.params["secret_headers"] == {
        "Authorization": TOKEN,
        "X-Api-Key": "k-123",
    }

    # nothing anyone reads holds a secret: the flow, its versions, its export, the audit log
    readable = [
        await api.client.get(f"{FLOWS}/{flow['id']}", headers=admin),
        await api.client.get(f"{FLOWS}", headers=admin),
        await api.client.get(f"{FLOWS}/{flow['id']}/versions/1", headers=admin),
        await api.client.get(f"{FLOWS}/{flow['id']}/export", headers=admin),
    ]
    for response in readable:
        text = await response.text()
        assert response.status == 200 and "s3cr3t" not in text and "k-123" not in text
    audit = await api.runtime.database.pool.fetchval(
        "SELECT string_agg(row_to_json(a)::text, '') FROM audit_log a"
    )
    assert "s3cr3t" not in audit and "k-123" not in audit
    document = await readable[3].json()
    assert document["omitted_secrets"] == ["/nodes/crm/params/secret_headers"]
    assert "secret_headers" not in document["graph"]["nodes"][1]["params"]


async def test_a_secret_that_is_invalid_or_a_mask_with_nothing_behind_it_is_refused(api, admin):
    flow = await new_flow(api, admin)
    saved = await save(api, admin, flow, crm_flow({"Authorization": TOKEN}))
    url = f"{FLOWS}/{flow['id']}/draft"
    cases = [  # the admin reads French: the mask's message is ours, the others jsonschema's
        ({"Authorization": SECRET_MASK, "X-Api-Key": SECRET_MASK}, "X-Api-Key", "masque"),
        ({"Authorization": "Bearer a\nX-Admin: yes"}, "Authorization", "does not match"),
        ({"Authorization": "x" * 1001}, "Authorization", "is too long"),
    ]
    for secret_headers, key, message in cases:
        body = await problem(
            await api.client.put(
                url, json={"graph": crm_flow(secret_headers)}, headers=if_match(admin, saved)
            ),
            422,
        )
        assert [e["field"] for e in body["errors"]] == [f"/nodes/crm/params/secret_headers/{key}"]
        assert message in body["errors"][0]["message"] and "nothing was saved" in body["detail"]
    assert (await stored_secrets(api, flow["id"]))[1][1] == {
        "crm": {"secret_headers": {"Authorization": TOKEN}}
    }
    current = await ok(await api.client.get(f"{FLOWS}/{flow['id']}", headers=admin))
    assert current["version"] == saved["version"], "nothing was saved"


async def test_import_encrypts_secrets_in_clear_and_refuses_masks(api, admin):
    document = {
        "format": "callcore-flow",
        "format_version": 1,
        "name": "Imported",
        "graph": crm_flow({"Authorization": TOKEN}),
        "omitted_secrets": [],
    }
    copy = await created(await api.client.post(f"{FLOWS}/import", json=document, headers=admin))
    assert copy["draft"]["graph"]["nodes"][1]["params"]["secret_headers"] == {
        "Authorization": SECRET_MASK
    }
    graph_text, secrets = (await stored_secrets(api, copy["id"]))[1]
    assert "s3cr3t" not in graph_text
    assert secrets == {"crm": {"secret_headers": {"Authorization": TOKEN}}}
    masked = {**document, "name": "Masked", "graph": crm_flow({"Authorization": SECRET_MASK})}
    body = await problem(await api.client.post(f"{FLOWS}/import", json=masked, headers=admin), 422)
    assert [e["field"] for e in body["errors"]] == [
        "/nodes/crm/params/secret_headers/Authorization"
    ]
    assert await api.count("flows") == 1


# --- emergency overrides -----------------------------------------------------------------------


async def test_a_flow_emergency_override_applies_without_publishing(api, admin):
    flow = await publish(api, admin, await save(api, admin, await new_flow(api, admin), GOOD))
    closed = await ok(
        await api.client.patch(
            f"{FLOWS}/{flow['id']}",
            json={"emergency_mode": "closed", "emergency_message": "callcore/storm"},
            headers=if_match(admin, flow),
        )
    )
    assert closed["published_version"] == 1 and closed["draft"] is None
    async with api.runtime.database.pool.acquire() as conn:
        running = await flow_store.published_flow(conn, flow["id"])
    assert (running.emergency_mode, running.emergency_message) == ("closed", "callcore/storm")
    entry = await api.runtime.database.pool.fetchrow(
        "SELECT before, after FROM audit_log WHERE action = 'update'"
    )
    assert entry["before"] == {"emergency_mode": "none", "emergency_message": ""}
    assert entry["after"] == {"emergency_mode": "closed", "emergency_message": "callcore/storm"}


async def test_the_global_emergency_override(api, admin):
    url = "/api/v1/ivr-emergency"
    supervisor = await api.headers("supervisor")
    response = await api.client.get(url, headers=supervisor)
    assert await ok(response) == {"mode": "none", "message": "", "version": 0}
    assert response.headers["ETag"] == '"0"'
    body = {"mode": "closed", "message": "callcore/strike"}
    await problem(await api.client.put(url, json=body, headers=admin), 428)
    assert (
        await api.client.put(url, json=body, headers={**supervisor, "If-Match": '"0"'})
    ).status == 403
    bad = await problem(
        await api.client.put(url, json={"mode": "shut"}, headers={**admin, "If-Match": '"0"'}), 422
    )
    assert bad["errors"][0]["field"] == "/mode"
    stored = await ok(await api.client.put(url, json=body, headers={**admin, "If-Match": '"0"'}))
    assert stored == {**body, "version": 1}
    value = await api.runtime.database.pool.fetchval(
        "SELECT value FROM settings WHERE key = 'ivr.emergency'"
    )
    assert value == body
    await problem(await api.client.put(url, json=body, headers={**admin, "If-Match": '"0"'}), 412)
    entry = await api.runtime.database.pool.fetchrow(
        "SELECT entity_type, entity_id, before, after FROM audit_log"
    )
    assert (entry["entity_type"], entry["entity_id"]) == ("setting", "ivr.emergency")
    assert entry["before"] == {"mode": "none", "message": ""} and entry["after"] == body
    cleared = await ok(
        await api.client.put(url, json={"mode": "none"}, headers={**admin, "If-Match": '"1"'})
    )
    assert cleared == {"mode": "none", "message": "", "version": 2}


# --- the palette -------------------------------------------------------------------------------


async def test_the_palette_lists_every_installed_node_in_the_users_language(api, admin):
    french = await ok(await api.client.get("/api/v1/ivr-nodes", headers=admin))
    by_name = {item["name"]: item for item in french["items"]}
    assert {"answer", "hangup", "acme_menu"} <= set(by_name)
    assert by_name["answer"]["label"] == "Décrocher"
    assert by_name["answer"]["plugin"] == "callcore.ivr_nodes.answer"
    menu = by_name["acme_menu"]
    assert menu == {
        "name": "acme_menu",
        "label": "Menu à touches",
        "description": "Propose des touches.",
        "category": "input",
        "waits_for_caller": True,
        "params_schema": {
            **menu["params_schema"],
            "properties": {
                "prompt": {"type": "string", "title": "Annonce", "pattern": "^[a-z0-9/_-]+$"},
                "keys": {
                    "type": "string",
                    "title": "Touches",
                    "description": "Les touches proposées.",
                    "pattern": "^[0-9]{1,10}$",
                },
            },
        },
        "exit_labels": {"timeout": "Aucune touche"},
        "plugin": PLUGIN,
    }
    english_admin = await api.user("admin", "en-admin")
    await api.runtime.database.pool.execute(
        "UPDATE users SET language = 'en' WHERE id = $1", english_admin.user_id
    )
    english = {"Authorization": f"Bearer {api.token(english_admin)}"}
    items = (await ok(await api.client.get("/api/v1/ivr-nodes", headers=english)))["items"]
    assert {i["name"]: i["label"] for i in items}["acme_menu"] == "Key menu"


async def test_exits_follow_the_params_and_invalid_params_are_named(api, admin):
    url = "/api/v1/ivr-nodes/acme_menu/exits"
    exits = await ok(
        await api.client.post(url, json={"params": {"prompt": "p", "keys": "31"}}, headers=admin)
    )
    assert exits == {"exits": ["key_3", "key_1", "timeout"], "optional": ["timeout"]}
    bad = await problem(
        await api.client.post(url, json={"params": {"prompt": "p", "keys": "x"}}, headers=admin),
        422,
    )
    assert [e["field"] for e in bad["errors"]] == ["/params/keys"]
    assert bad["errors"][0]["message"].startswith("/params/keys must match")
    missing = await problem(await api.client.post(url, json={"params": {}}, headers=admin), 422)
    assert {e["field"] for e in missing["errors"]} == {"/params/prompt", "/params/keys"}
    await problem(
        await api.client.post("/api/v1/ivr-nodes/nope/exits", json={"params": {}}, headers=admin),
        404,
    )


async def test_exits_report_a_nodes_own_checks_on_their_field(api, admin):
    """Params the schema accepts but the node refuses (hours ending before they start)."""
    hours = [{"days": [1], "start": "18:00", "end": "09:00"}]
    bad = await problem(
        await api.client.post(
            "/api/v1/ivr-nodes/calendar/exits", json={"params": {"hours": hours}}, headers=admin
        ),
        422,
    )
    assert [e["field"] for e in bad["errors"]] == ["/params/hours/0/end"]
    assert "/params/hours/0/end: " in bad["errors"][0]["message"]
