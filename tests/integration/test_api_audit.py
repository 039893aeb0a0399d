"""GET /api/v1/audit-log on a real database: who may read it, every filter, keyset paging in
both orders, bad parameters refused with the parameter named, and the entries real API writes
leave (before/after as stored, secrets redacted at write time)."""

from datetime import UTC, datetime, timedelta

import pytest

from callcore import audit

AUDIT = "/api/v1/audit-log"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def admin(api):
    return await api.headers("admin", "alice")


async def record(api, minutes, *, actor_id=None, actor="system", action="update", **fields):
    """An entry logged ``minutes`` after T0 (the time set afterwards, as the test needs it)."""
    pool = api.runtime.database.pool
    async with pool.acquire() as conn:
        entry_id = await audit.record(
            conn,
            actor_id=actor_id,
            actor_label=actor,
            action=action,
            entity_type=fields.get("entity_type", "trunk"),
            entity_id=fields.get("entity_id", 1),
            before=fields.get("before"),
            after=fields.get("after"),
            ip="192.0.2.7",
        )
        await conn.execute(
            "UPDATE audit_log SET at = $1 WHERE id = $2", T0 + timedelta(minutes=minutes), entry_id
        )
    return entry_id


async def items(api, headers, query=""):
    response = await api.client.get(f"{AUDIT}{query}", headers=headers)
    assert response.status == 200, await response.text()
    body = await response.json()
    return body["items"], body["next_cursor"]


async def refused(api, headers, query, status, field=None):
    response = await api.client.get(f"{AUDIT}{query}", headers=headers)
    assert response.status == status, await response.text()
    assert response.content_type == "application/problem+json"
    body = await response.json()
    if field is not None:
        assert [error["field"] for error in body["errors"]] == [field], body
    return body


async def test_only_admins_read_the_audit_log(api, admin):
    await record(api, 0)
    assert len((await items(api, admin))[0]) == 1
    for role in ("supervisor", "agent"):
        await refused(api, await api.headers(role), "", 403)
    await refused(api, {}, "", 401)
    await refused(api, {"Authorization": "Bearer not-a-token"}, "", 401)


async def test_api_writes_appear_newest_first_with_before_and_after(api, admin):
    response = await api.client.post(
        "/api/v1/disposition-groups",
        json={"code": "sales", "label": {"en": "Sales", "fr": "<script>x</script>"}},
        headers=admin,
    )
    group = await response.json()
    response = await api.client.patch(
        f"/api/v1/disposition-groups/{group['id']}",
        json={"active": False},
        headers={**admin, "If-Match": response.headers["ETag"]},
    )
    assert response.status == 200
    entries, cursor = await items(api, admin, "?entity_type=disposition_group")
    assert cursor is None
    update, create = entries
    assert (update["action"], create["action"]) == ("update", "create")
    assert update["id"] > create["id"] and update["at"] >= create["at"]
    assert update["actor_label"] == "alice" and update["actor_id"] is not None
    assert update["entity_id"] == str(group["id"]) and update["ip"] == "127.0.0.1"
    assert (update["before"]["active"], update["after"]["active"]) == (True, False)
    assert create["before"] is None
    assert create["after"]["label"]["fr"] == "<script>x</script>"  # data as stored; pages escape


async def test_secrets_are_served_as_they_were_redacted_when_written(api, admin):
    await record(api, 0, before={"password": "hunter2", "host": "a"}, after={"secret": "s"})
    (entry,), _ = await items(api, admin)
    assert entry["before"] == {"password": audit.REDACTED, "host": "a"}
    assert entry["after"] == {"secret": audit.REDACTED}


async def test_each_filter_selects_its_entries(api, admin):
    bob = (await api.user("admin", "bob")).user_id
    ids = {
        "bob_creates_trunk_1": await record(api, 0, actor_id=bob, actor="bob", action="create"),
        "bob_deletes_did_7": await record(
            api, 10, actor_id=bob, actor="bob", action="delete", entity_type="did", entity_id=7
        ),
        "system_updates_trunk_2": await record(api, 20, entity_id=2),
        "system_updates_trunk_1": await record(api, 30),
    }

    async def selected(query):
        found, _ = await items(api, admin, query)
        by_id = {entry_id: name for name, entry_id in ids.items()}
        return [by_id[entry["id"]] for entry in found]

    assert await selected(f"?actor_id={bob}") == ["bob_deletes_did_7", "bob_creates_trunk_1"]
    assert await selected("?actor=system") == ["system_updates_trunk_1", "system_updates_trunk_2"]
    assert await selected("?action=delete") == ["bob_deletes_did_7"]
    assert await selected("?entity_type=did") == ["bob_deletes_did_7"]
    assert await selected("?entity_type=trunk&entity_id=1") == [
        "system_updates_trunk_1",
        "bob_creates_trunk_1",
    ]
    # since is inclusive, until exclusive; no offset means UTC; a date means its midnight
    assert await selected("?since=2026-03-01T12:10:00&until=2026-03-01T12:30:00Z") == [
        "system_updates_trunk_2",
        "bob_deletes_did_7",
    ]
    assert await selected("?since=2026-03-01T13:25:00%2B01:00") == ["system_updates_trunk_1"]
    assert await selected("?until=2026-03-01") == []
    assert await selected("?actor=nobody") == []


async def test_keyset_pages_cover_every_entry_once_in_both_orders(api, admin):
    # Two entries share a timestamp: the id breaks the tie, so none is skipped or repeated.
    created = [await record(api, minutes) for minutes in (0, 1, 1, 2, 3, 4, 5)]
    for sort, expected in (("", created[::-1]), ("&sort=at", created)):
        seen, cursor, pages = [], None, 0
        while True:
            query = f"?limit=2{sort}" + (f"&cursor={cursor}" if cursor else "")
            page, cursor = await items(api, admin, query)
            seen += [entry["id"] for entry in page]
            pages += 1
            if cursor is None:
                break
        assert seen == expected and pages == 4
    _, newest_first = await items(api, admin, "?limit=2")
    body = await refused(api, admin, f"?limit=2&sort=at&cursor={newest_first}", 400, "cursor")
    assert "cursor" in body["detail"]
    # A cursor keeps its filters' meaning: the next page of a filtered list stays filtered.
    await record(api, 6, action="create")
    page, cursor = await items(api, admin, "?action=update&limit=6")
    assert len(page) == 6 and cursor is not None
    rest, _ = await items(api, admin, f"?action=update&limit=6&cursor={cursor}")
    assert [entry["id"] for entry in rest] == [created[0]]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?since=yesterday", "since"),
        ("?until=2026-13-01", "until"),
        ("?since=0001-01-01T00:00:00%2B05:00", "since"),
        ("?actor_id=abc", "actor_id"),
        ("?actor_id=0", "actor_id"),
        ("?actor=", "actor"),
        ("?actor=a%00b", "actor"),
        ("?entity_id=" + "9" * 201, "entity_id"),
        ("?limit=0", "limit"),
        ("?limit=201", "limit"),
        ("?sort=actor", "sort"),
        ("?cursor=forged.cursor", "cursor"),
        ("?before=2026-01-01", "before"),
        ("?action=create&action=delete", "action"),
    ],
)
async def test_bad_parameters_are_refused_naming_the_parameter(api, admin, query, field):
    await refused(api, admin, query, 400, field)


async def test_the_endpoint_is_in_the_openapi_document(api):
    document = await (await api.client.get("/api/v1/openapi.json")).json()
    operation = document["paths"][AUDIT]["get"]
    assert operation["x-roles"] == ["admin"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert names == {
        "limit",
        "cursor",
        "sort",
        "actor_id",
        "actor",
        "action",
        "entity_type",
        "entity_id",
        "since",
        "until",
    }
