"""/api/v1/disposition-groups and /api/v1/dispositions on a real database: CRUD with the audit
trail, roles and agent row scoping, plugin rows read-only, referenced rows kept, bad input and
bad tokens refused with nothing written."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from _api_client import if_match, problem

from callcore.audit_events import AUDIT_TOPIC
from callcore.auth.tokens import TokenKeys
from callcore.db.dispositions import ADMIN_SOURCE

GROUPS = "/api/v1/disposition-groups"
DISPOSITIONS = "/api/v1/dispositions"
LABEL = {"en": "Sales", "fr": "Ventes"}


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


async def created(response):
    assert response.status == 201, await response.text()
    return await response.json()


async def new_group(api, admin, code="sales"):
    return await created(
        await api.client.post(GROUPS, json={"code": code, "label": LABEL}, headers=admin)
    )


async def new_disposition(api, admin, group_id, code="deal", **fields):
    document = {
        "group_id": group_id,
        "code": code,
        "label": {"en": "Sale", "fr": "Vente"},
        **fields,
    }
    return await created(await api.client.post(DISPOSITIONS, json=document, headers=admin))


async def test_admin_creates_edits_and_deletes_with_an_audit_trail(api, admin):
    async with api.runtime.bus.subscribe([AUDIT_TOPIC]) as events:
        group = await new_group(api, admin)
        sale = await new_disposition(api, admin, group["id"], is_success=True, position=5)
        assert sale["is_final"] is True and sale["source"] == ADMIN_SOURCE and sale["version"] == 1
        url = f"{DISPOSITIONS}/{sale['id']}"

        response = await api.client.patch(
            url, json={"label": {"fr": "Vente conclue"}}, headers=if_match(admin, sale)
        )
        assert response.status == 200 and response.headers["ETag"] == '"2"'
        patched = await response.json()
        assert patched["label"] == {"en": "Sale", "fr": "Vente conclue"}
        assert patched["is_success"] is True and patched["position"] == 5

        # PUT replaces: what it omits goes back to the schema's defaults.
        document = {
            "group_id": group["id"],
            "code": "deal",
            "label": LABEL,
            "is_callback": True,
            "is_final": False,
        }
        response = await api.client.put(url, json=document, headers=if_match(admin, patched))
        replaced = await response.json()
        assert response.status == 200
        assert (replaced["is_success"], replaced["position"], replaced["is_callback"]) == (
            False,
            0,
            True,
        )

        response = await api.client.delete(url, headers=if_match(admin, replaced))
        assert response.status == 204
        assert (await api.client.get(url, headers=admin)).status == 404
        response = await api.client.delete(
            f"{GROUPS}/{group['id']}", headers=if_match(admin, group)
        )
        assert response.status == 204

        announced = [await asyncio.wait_for(anext(events), 5) for _ in range(5)]

    rows = await api.runtime.database.pool.fetch(
        "SELECT * FROM audit_log WHERE actor_label = 'admin-user' ORDER BY id"
    )
    assert [(r["entity_type"], r["action"]) for r in rows] == [
        ("disposition_group", "create"),
        ("disposition", "create"),
        ("disposition", "update"),
        ("disposition", "update"),
        ("disposition", "delete"),
        ("disposition_group", "delete"),
    ][: len(rows)]
    assert len(rows) == 6
    assert (
        rows[2]["before"]["label"]["fr"] == "Vente"
        and rows[2]["after"]["label"]["fr"] == "Vente conclue"
    )
    assert rows[4]["before"]["code"] == "deal" and rows[4]["after"] is None
    assert rows[0]["entity_id"] == str(group["id"]) and rows[0]["ip"] is not None
    assert {r["actor_id"] for r in rows} == {rows[0]["actor_id"]}
    assert [e.entry_id for e in announced] == [r["id"] for r in rows[:5]]


async def test_a_patch_that_changes_nothing_writes_no_audit_row(api, admin):
    group = await new_group(api, admin)
    before = await api.count("audit_log")
    response = await api.client.patch(
        f"{GROUPS}/{group['id']}", json={"label": LABEL}, headers=if_match(admin, group)
    )
    assert response.status == 200 and (await response.json())["version"] == 1
    assert await api.count("audit_log") == before


async def test_roles_admin_writes_supervisor_reads_anonymous_is_refused(api, admin):
    group = await new_group(api, admin)
    supervisor = await api.headers("supervisor")
    agent = await api.headers("agent")
    before = await api.snapshot()
    assert (await api.client.get(GROUPS)).status == 401
    for headers in (supervisor, agent, {}):
        status = 401 if not headers else 403
        await problem(
            await api.client.post(GROUPS, json={"code": "x", "label": LABEL}, headers=headers),
            status,
        )
        await problem(
            await api.client.patch(
                f"{GROUPS}/{group['id']}", json={"active": False}, headers=if_match(headers, group)
            ),
            status,
        )
        await problem(
            await api.client.delete(f"{GROUPS}/{group['id']}", headers=if_match(headers, group)),
            status,
        )
    assert await api.snapshot() == before
    listing = await (
        await api.client.get(DISPOSITIONS, params={"limit": "200"}, headers=supervisor)
    ).json()
    assert len(listing["items"]) == await api.count("dispositions")


async def test_agents_see_only_what_their_campaigns_offer(api, admin):
    pool = api.runtime.database.pool
    offered = await new_group(api, admin, "offered")
    by_team = await new_group(api, admin, "by_team")
    hidden = await new_group(api, admin, "hidden")
    mine = await new_disposition(api, admin, offered["id"], "mine")
    team = await new_disposition(api, admin, by_team["id"], "team")
    other = await new_disposition(api, admin, hidden["id"], "other")
    solo = await api.user("agent", "solo")
    member = await api.user("agent", "member")
    idle = await api.user("agent", "idle")
    direct = await pool.fetchval("INSERT INTO campaigns (name) VALUES ('direct') RETURNING id")
    teamed = await pool.fetchval("INSERT INTO campaigns (name) VALUES ('teamed') RETURNING id")
    team_id = await pool.fetchval("INSERT INTO groups (name) VALUES ('team a') RETURNING id")
    await pool.execute("INSERT INTO campaign_users VALUES ($1, $2)", direct, solo.user_id)
    await pool.execute(
        "INSERT INTO group_members (group_id, user_id) VALUES ($1, $2)", team_id, member.user_id
    )
    await pool.execute("INSERT INTO campaign_groups VALUES ($1, $2)", teamed, team_id)
    await pool.execute(
        "INSERT INTO campaign_disposition_groups VALUES ($1, $2), ($3, $4)",
        direct,
        offered["id"],
        teamed,
        by_team["id"],
    )

    async def visible(principal, path):
        headers = {"Authorization": f"Bearer {api.token(principal)}"}
        page = await (await api.client.get(path, params={"limit": "200"}, headers=headers)).json()
        return {item["code"] for item in page["items"]}

    assert await visible(solo, DISPOSITIONS) == {"mine"}
    assert await visible(member, DISPOSITIONS) == {"team"}
    assert await visible(idle, DISPOSITIONS) == set()
    assert await visible(solo, GROUPS) == {"offered"}
    headers = {"Authorization": f"Bearer {api.token(solo)}"}
    assert (await api.client.get(f"{DISPOSITIONS}/{mine['id']}", headers=headers)).status == 200
    for row in (team, other):
        await problem(await api.client.get(f"{DISPOSITIONS}/{row['id']}", headers=headers), 404)
    await problem(await api.client.get(f"{GROUPS}/{hidden['id']}", headers=headers), 404)


async def test_plugin_rows_are_read_only(api, admin):
    row = await api.runtime.database.pool.fetchrow(
        "SELECT id, version, source FROM dispositions WHERE code = 'no_answer'"
    )
    assert row["source"] != ADMIN_SOURCE
    url = f"{DISPOSITIONS}/{row['id']}"
    current = await (await api.client.get(url, headers=admin)).json()
    headers = if_match(admin, row)
    before = await api.snapshot()
    writable = {k: current[k] for k in ("group_id", "code", "label", "is_final", "position")}
    for response in (
        await api.client.patch(url, json={"active": False}, headers=headers),
        await api.client.put(url, json=writable, headers=headers),
        await api.client.delete(url, headers=headers),
    ):
        body = await problem(response, 409)
        assert f"registered by plugin {row['source']!r}" in body["detail"]
    assert await api.snapshot() == before


async def test_referenced_rows_cannot_be_deleted_and_the_message_names_the_referrers(api, admin):
    pool = api.runtime.database.pool
    group = await new_group(api, admin)
    sale = await new_disposition(api, admin, group["id"], "deal")
    await new_disposition(api, admin, group["id"], "no_deal")
    campaign = await pool.fetchval(
        "INSERT INTO campaigns (name) VALUES ('Spring promo') RETURNING id"
    )
    await pool.execute(
        "INSERT INTO campaign_disposition_groups VALUES ($1, $2)", campaign, group["id"]
    )
    call = await pool.fetchval(
        "INSERT INTO calls (server_id, uniqueid, direction, started_at, disposition_id) "
        "VALUES ('pbx1', '1.1', 'outbound', now(), $1) RETURNING id",
        sale["id"],
    )
    list_id = await pool.fetchval("INSERT INTO contact_lists (name) VALUES ('l') RETURNING id")
    lead = await pool.fetchval(
        "INSERT INTO leads (list_id, phone_number, last_disposition_id) "
        "VALUES ($1, '+33123456789', $2) RETURNING id",
        list_id,
        sale["id"],
    )
    before = await api.snapshot()
    body = await problem(
        await api.client.delete(f"{GROUPS}/{group['id']}", headers=if_match(admin, group)), 409
    )
    assert body["detail"] == (
        "Disposition group 'sales' cannot be deleted: it is still used by "
        "dispositions (deal, no_deal); campaigns (Spring promo)."
    )
    body = await problem(
        await api.client.delete(f"{DISPOSITIONS}/{sale['id']}", headers=if_match(admin, sale)), 409
    )
    assert body["detail"] == (
        "Disposition 'deal' cannot be deleted: it is still used by "
        f"calls (#{call}); leads (#{lead})."
    )
    assert await api.snapshot() == before
    await pool.execute("DELETE FROM calls; DELETE FROM leads")
    response = await api.client.delete(
        f"{DISPOSITIONS}/{sale['id']}", headers=if_match(admin, sale)
    )
    assert response.status == 204


async def test_deactivating_instead_of_deleting_keeps_history(api, admin):
    group = await new_group(api, admin)
    response = await api.client.patch(
        f"{GROUPS}/{group['id']}", json={"active": False}, headers=if_match(admin, group)
    )
    assert (await response.json())["active"] is False
    listing = await (await api.client.get(GROUPS, params={"active": "false"}, headers=admin)).json()
    assert [g["code"] for g in listing["items"]] == ["sales"]


async def test_conflicts_and_dangling_references_name_the_field(api, admin):
    group = await new_group(api, admin)
    before = await api.snapshot()
    body = await problem(
        await api.client.post(GROUPS, json={"code": "sales", "label": LABEL}, headers=admin), 409
    )
    assert body["errors"] == [{"field": "/code", "message": "/code 'sales' is already taken"}]
    body = await problem(
        await api.client.post(GROUPS, json={"code": "system", "label": LABEL}, headers=admin), 409
    )
    assert body["errors"][0]["field"] == "/code"
    document = {"group_id": 999_999, "code": "orphan", "label": LABEL}
    body = await problem(await api.client.post(DISPOSITIONS, json=document, headers=admin), 422)
    assert body["errors"] == [{"field": "/group_id", "message": "/group_id 999999 does not exist"}]
    assert await api.snapshot() == before
    assert group["code"] == "sales"


@pytest.mark.parametrize(
    ("flags", "field", "message"),
    [
        ({"is_callback": True}, "/is_final", "/is_final: a callback cannot be final"),
        (
            {"is_dnc": True, "is_final": False},
            "/is_final",
            "/is_final: a do-not-call outcome must be final",
        ),
        ({"position": -1}, "/position", "/position must be at least 0"),
        ({"position": 2**31}, "/position", "/position must be at most 2147483647"),
        ({"group_id": "1"}, "/group_id", "/group_id must be an integer, got text"),
        ({"is_final": None}, "/is_final", "/is_final must be true or false, got null"),
        (
            {"retry_delay_seconds": 60},
            "/retry_delay_seconds",
            "/retry_delay_seconds: a final outcome is never retried",
        ),
        (
            {"max_retries": 0, "is_final": True},
            "/max_retries",
            "/max_retries: a final outcome is never retried",
        ),
        (
            {"retry_delay_seconds": 30 * 86400 + 1, "is_final": False},
            "/retry_delay_seconds",
            "/retry_delay_seconds must be at most 2592000",
        ),
        (
            {"max_retries": 101, "is_final": False},
            "/max_retries",
            "/max_retries must be at most 100",
        ),
        ({"max_retries": -1, "is_final": False}, "/max_retries", "/max_retries must be at least 0"),
    ],
)
async def test_disposition_rules_are_checked_before_anything_is_written(
    api, admin, flags, field, message
):
    group = await new_group(api, admin)
    before = await api.snapshot()
    document = {"group_id": group["id"], "code": "odd", "label": LABEL, **flags}
    body = await problem(await api.client.post(DISPOSITIONS, json=document, headers=admin), 422)
    assert {"field": field, "message": message} in body["errors"]
    assert await api.snapshot() == before


async def test_a_patch_is_checked_as_the_merged_whole(api, admin):
    group = await new_group(api, admin)
    sale = await new_disposition(api, admin, group["id"])
    url = f"{DISPOSITIONS}/{sale['id']}"
    before = await api.snapshot()
    body = await problem(
        await api.client.patch(url, json={"is_callback": True}, headers=if_match(admin, sale)), 422
    )
    assert body["errors"] == [
        {"field": "/is_final", "message": "/is_final: a callback cannot be final"}
    ]
    body = await problem(
        await api.client.patch(url, json={"label": None}, headers=if_match(admin, sale)), 422
    )
    assert body["errors"] == [{"field": "/label", "message": "/label is required"}]
    body = await problem(
        await api.client.patch(url, json=["code"], headers=if_match(admin, sale)), 422
    )
    assert body["detail"] == "A PATCH body is a JSON object of the fields to change."
    assert await api.snapshot() == before
    response = await api.client.patch(
        url, json={"is_callback": True, "is_final": False}, headers=if_match(admin, sale)
    )
    assert response.status == 200


async def test_retry_fields_of_a_non_final_outcome_are_stored_and_reset_by_put(api, admin):
    group = await new_group(api, admin)
    busy = await new_disposition(
        api, admin, group["id"], code="line_busy", is_final=False, retry_delay_seconds=900
    )
    assert (busy["retry_delay_seconds"], busy["max_retries"]) == (900, None)
    url = f"{DISPOSITIONS}/{busy['id']}"
    response = await api.client.patch(url, json={"max_retries": 4}, headers=if_match(admin, busy))
    patched = await response.json()
    assert (patched["retry_delay_seconds"], patched["max_retries"]) == (900, 4)
    stored = await api.runtime.database.pool.fetchrow(
        "SELECT retry_delay_seconds, max_retries FROM dispositions WHERE id = $1", busy["id"]
    )
    assert tuple(stored) == (900, 4)

    # Making it final while it still has retry fields is refused; clearing them too is accepted.
    body = await problem(
        await api.client.patch(url, json={"is_final": True}, headers=if_match(admin, patched)), 422
    )
    assert {e["field"] for e in body["errors"]} == {"/retry_delay_seconds", "/max_retries"}
    document = {"group_id": group["id"], "code": "line_busy", "label": LABEL}
    response = await api.client.put(url, json=document, headers=if_match(admin, patched))
    replaced = await response.json()
    assert response.status == 200 and replaced["is_final"] is True
    assert (replaced["retry_delay_seconds"], replaced["max_retries"]) == (None, None)


@pytest.mark.parametrize("path", ["abc", "0", "-1", "99999999999999999999", "1.5", "%C2%B2"])
async def test_ids_that_are_not_row_ids_are_404(api, admin, path):
    await problem(await api.client.get(f"{DISPOSITIONS}/{path}", headers=admin), 404)


async def test_bad_tokens_are_refused_and_nothing_is_written(api, callcore_settings):
    principal = await api.user("admin")
    keys = TokenKeys.from_settings(callcore_settings)
    expired = keys.issue_access(principal, now=datetime.now(UTC) - timedelta(hours=1)).token
    forged = TokenKeys("another node's secret key").issue_access(principal).token
    genuine = keys.issue_access(principal).token
    header, payload, signature = genuine.split(".")
    tampered = f"{header}.{payload[:-3]}xyz.{signature}"
    disabled = await api.user("admin", "disabled-admin")
    disabled_token = keys.issue_access(disabled).token
    await api.runtime.database.pool.execute(
        "UPDATE users SET is_active = false WHERE id = $1", disabled.user_id
    )
    before = await api.snapshot()
    for token in (expired, forged, tampered, disabled_token, "not-a-jwt", ""):
        headers = {"Authorization": f"Bearer {token}"}
        response = await api.client.post(
            GROUPS, json={"code": "x", "label": LABEL}, headers=headers
        )
        await problem(response, 401)
    assert await api.snapshot() == before
    headers = {"Authorization": f"Bearer {genuine}"}
    assert (
        await api.client.post(GROUPS, json={"code": "x", "label": LABEL}, headers=headers)
    ).status == 201


async def test_lists_filter_on_their_allowlisted_fields(api, admin):
    group = await new_group(api, admin)
    await new_disposition(api, admin, group["id"], "call_back", is_callback=True, is_final=False)
    await new_disposition(api, admin, group["id"], "sold", position=1)
    params = {"group_id": str(group["id"]), "is_callback": "true"}
    page = await (await api.client.get(DISPOSITIONS, params=params, headers=admin)).json()
    assert [d["code"] for d in page["items"]] == ["call_back"]
    page = await (
        await api.client.get(
            DISPOSITIONS, params={"group_id": str(group["id"]), "sort": "-position"}, headers=admin
        )
    ).json()
    assert [d["code"] for d in page["items"]] == ["sold", "call_back"]
