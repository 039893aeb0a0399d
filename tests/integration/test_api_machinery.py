"""The API machinery over a real socket and database: problems, body validation, keyset
pagination, ETag/If-Match and the OpenAPI document, exercised through the disposition resources
(the first real ones) and two test-only routes that fail on purpose."""

import json
import logging
from http import HTTPStatus

import pytest
from _api_client import open_api
from aiohttp import web

from callcore.web.api import ProblemError, Resource, encode_cursor
from callcore.web.api.pagination import cursor_key
from callcore.web.api.resources import read_write_roles
from callcore.web.auth import public
from callcore.web.ws import WS_PATH

GROUPS = "/api/v1/disposition-groups"
PROBLEM = "application/problem+json"
LABEL = {"en": "Sales", "fr": "Ventes"}


def add_failing_routes(app: web.Application) -> None:
    @public
    async def crash(request: web.Request) -> web.Response:
        raise RuntimeError("connection to postgresql://app:hunter2@db failed")

    @public
    async def teapot(request: web.Request) -> web.Response:
        raise ProblemError(418, detail="short and stout", errors=[], spout="left")

    app.router.add_get("/api/v1/test-crash", crash)
    app.router.add_get("/api/v1/test-teapot", teapot)
    app.router.add_get("/test-crash", crash)


@pytest.fixture
async def api(aiohttp_client, callcore_settings):
    async with open_api(aiohttp_client, callcore_settings, add_failing_routes) as api:
        yield api


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


async def problem_of(response, status):
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body = await response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] == HTTPStatus(status).phrase
    return body


async def create_group(api, admin, code, **extra):
    response = await api.client.post(
        GROUPS, json={"code": code, "label": LABEL, **extra}, headers=admin
    )
    assert response.status == 201, await response.text()
    return await response.json()


# --- problems ------------------------------------------------------------------------------


async def test_unknown_api_path_is_a_problem(api):
    body = await problem_of(await api.client.get("/api/v1/no-such-thing"), 404)
    assert body["detail"] == "There is nothing at /api/v1/no-such-thing."


async def test_wrong_method_is_405_with_allow(api, admin):
    response = await api.client.delete(GROUPS, headers=admin)
    body = await problem_of(response, 405)
    assert "DELETE is not allowed" in body["detail"]
    assert {"GET", "POST"} <= set(response.headers["Allow"].split(","))


async def test_problem_error_keeps_its_extensions(api):
    body = await problem_of(await api.client.get("/api/v1/test-teapot"), 418)
    assert body["detail"] == "short and stout"
    assert body["errors"] == []
    assert body["spout"] == "left"


async def test_unexpected_error_is_a_generic_500_logged_with_its_request_id(api, caplog):
    with caplog.at_level(logging.ERROR, logger="callcore.web.api.problems"):
        response = await api.client.get("/api/v1/test-crash")
    body = await problem_of(response, 500)
    text = json.dumps(body)
    assert "hunter2" not in text and "Traceback" not in text and "RuntimeError" not in text
    assert body["detail"] == "An unexpected error occurred; it has been logged."
    [record] = [r for r in caplog.records if body["request_id"] in r.getMessage()]
    assert record.exc_info is not None and "/api/v1/test-crash" in record.getMessage()


async def test_pages_outside_the_api_keep_plain_errors(api):
    response = await api.client.get("/no-such-page")
    assert response.status == 404
    assert response.content_type != PROBLEM
    assert (await api.client.get("/test-crash")).status == 500


# --- request bodies ------------------------------------------------------------------------

REFUSED_BODIES = [
    pytest.param(b'{"code": "x",', "application/json", 400, "not valid JSON", id="truncated"),
    pytest.param(b'{"code": NaN}', "application/json", 400, "not valid JSON", id="nan"),
    pytest.param(b"\xff\xfe{}", "application/json", 400, "not valid UTF-8", id="not-utf8"),
    pytest.param(b"[" * 50_000, "application/json", 400, "not valid JSON", id="deep-nesting"),
    pytest.param(
        b'{"code": "a", "code": "b", "label": {"en": "x", "fr": "y"}}',
        "application/json",
        400,
        "'code' appears twice",
        id="duplicate-key",
    ),
    pytest.param(
        b"code=sales", "application/x-www-form-urlencoded", 415, "must be JSON", id="form"
    ),
    pytest.param(b"x" * 70_000, "application/json", 413, "larger than 65536 bytes", id="oversized"),
]


@pytest.mark.parametrize(("raw", "content_type", "status", "detail"), REFUSED_BODIES)
async def test_unreadable_bodies_are_refused_and_nothing_is_written(
    api, admin, raw, content_type, status, detail
):
    before = await api.snapshot()
    response = await api.client.post(
        GROUPS, data=raw, headers={**admin, "Content-Type": content_type}
    )
    body = await problem_of(response, status)
    assert detail in body["detail"]
    assert await api.snapshot() == before


async def test_oversized_body_without_content_length_is_cut_off(api, admin):
    async def stream():
        for _ in range(100):
            yield b" " * 1024

    before = await api.snapshot()
    response = await api.client.post(
        GROUPS, data=stream(), headers={**admin, "Content-Type": "application/json"}
    )
    await problem_of(response, 413)
    assert await api.snapshot() == before


INVALID_DOCUMENTS = [
    pytest.param([1, 2], {"": "the body must be an object, got a list"}, id="not-object"),
    pytest.param(
        {"code": 5, "label": "Sales", "active": "yes"},
        {
            "/code": "/code must be text, got an integer",
            "/label": "/label must be an object, got text",
            "/active": "/active must be true or false, got text",
        },
        id="wrong-types",
    ),
    pytest.param({}, {"/code": "/code is required", "/label": "/label is required"}, id="empty"),
    pytest.param(
        {"code": "sales", "label": LABEL, "colour": "red"},
        {"/colour": "/colour is not a field of this resource"},
        id="unknown-field",
    ),
    pytest.param(
        {"code": "sales", "label": LABEL, "id": 9, "version": 3, "source": "x"},
        {
            "/id": "/id is read-only",
            "/version": "/version is read-only",
            "/source": "/source is read-only",
        },
        id="read-only",
    ),
    pytest.param(
        {"code": "sales", "label": {"en": "Sales", "de": "Verkauf"}},
        {
            "/label/fr": "/label/fr is required",
            "/label/de": "/label/de is not a field of this resource",
        },
        id="nested",
    ),
    pytest.param(
        {"code": "sales", "label": {"en": "Sa\x00les", "fr": "  "}},
        {
            "/label/en": "/label/en contains a NUL character",
            "/label/fr": "/label/fr must match \\S",
        },
        id="nul-and-blank",
    ),
    pytest.param(
        {"code": "x'; DROP TABLE dispositions; --", "label": LABEL},
        {"/code": "/code must match ^[a-z][a-z0-9_]{0,62}$"},
        id="sql-in-code",
    ),
]


@pytest.mark.parametrize(("document", "expected"), INVALID_DOCUMENTS)
async def test_invalid_documents_name_each_field_and_nothing_is_written(
    api, admin, document, expected
):
    before = await api.snapshot()
    body = await problem_of(await api.client.post(GROUPS, json=document, headers=admin), 422)
    assert {e["field"]: e["message"] for e in body["errors"]} == expected
    assert await api.snapshot() == before


async def test_sql_looking_text_is_stored_verbatim(api, admin):
    label = {"en": "'; DROP TABLE dispositions; --", "fr": "<script>alert(1)</script>"}
    group = await create_group(api, admin, "odd_labels", label=label)
    assert group["label"] == label
    fetched = await api.client.get(f"{GROUPS}/{group['id']}", headers=admin)
    assert (await fetched.json())["label"] == label
    assert await api.count("dispositions") > 0


# --- lists ---------------------------------------------------------------------------------


async def walk(api, headers, query):
    items, cursor, pages = [], None, 0
    while True:
        params = {**query, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get(GROUPS, params=params, headers=headers)
        assert response.status == 200, await response.text()
        page = await response.json()
        assert len(page["items"]) <= int(query["limit"])
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items, pages


@pytest.mark.parametrize(
    ("sort", "order_by"),
    [
        ("code", "code, id"),
        ("-code", "code DESC, id DESC"),
        ("-id", "id DESC"),
        ("created_at", "created_at, id"),
        ("-updated_at", "updated_at DESC, id DESC"),
    ],
)
async def test_pages_walk_every_row_once_in_order(api, admin, sort, order_by):
    for n in range(7):
        await create_group(api, admin, f"group_{n}")
    pool = api.runtime.database.pool
    expected = [
        r["id"] for r in await pool.fetch(f"SELECT id FROM disposition_groups ORDER BY {order_by}")
    ]
    items, pages = await walk(api, admin, {"limit": "2", "sort": sort})
    assert [item["id"] for item in items] == expected
    assert pages == (len(expected) + 1) // 2 + (len(expected) % 2 == 0)


async def test_a_row_added_between_pages_is_neither_skipped_nor_repeated(api, admin):
    for n in range(4):
        await create_group(api, admin, f"b_{n}")
    first = await (
        await api.client.get(GROUPS, params={"limit": "3", "sort": "code"}, headers=admin)
    ).json()
    await create_group(api, admin, "a_first")  # sorts before the cursor: not on later pages
    await create_group(api, admin, "z_last")  # sorts after: must appear
    rest, _ = [], None
    cursor = first["next_cursor"]
    while cursor:
        page = await (
            await api.client.get(
                GROUPS, params={"limit": "3", "sort": "code", "cursor": cursor}, headers=admin
            )
        ).json()
        rest += page["items"]
        cursor = page["next_cursor"]
    codes = [i["code"] for i in first["items"]] + [i["code"] for i in rest]
    assert len(codes) == len(set(codes))
    assert "z_last" in codes and "a_first" not in codes
    assert codes == sorted(codes)


async def test_filters_combine_and_bind_their_values(api, admin):
    group = await create_group(api, admin, "filtered")
    await create_group(api, admin, "filtered_off", active=False)
    response = await api.client.get(
        GROUPS, params={"source": "admin", "active": "false"}, headers=admin
    )
    assert [i["code"] for i in (await response.json())["items"]] == ["filtered_off"]
    response = await api.client.get(GROUPS, params={"source": "admin' OR '1'='1"}, headers=admin)
    assert (await response.json())["items"] == []
    response = await api.client.get(GROUPS, params={"code": "filtered"}, headers=admin)
    assert [i["id"] for i in (await response.json())["items"]] == [group["id"]]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"limit": "0"}, "limit", "limit must be at least 1"),
        ({"limit": "201"}, "limit", "limit must be at most 200"),
        ({"limit": "ten"}, "limit", "limit must be an integer"),
        ({"sort": "label"}, "sort", "sort must be one of code, -code, created_at, -created_at"),
        ({"sort": "code; DROP TABLE users"}, "sort", "sort must be one of"),
        ({"colour": "red"}, "colour", "colour is not a query parameter of this list"),
        ({"active": "maybe"}, "active", "active must be true or false"),
        ({"code": "a' OR '1'='1"}, "code", "code must match"),
        ({"cursor": "!!!"}, "cursor", "cursor is not one this server issued for this list"),
    ],
)
async def test_list_queries_outside_the_allowlist_are_refused(api, admin, query, field, message):
    body = await problem_of(await api.client.get(GROUPS, params=query, headers=admin), 400)
    [error] = body["errors"]
    assert error["field"] == field
    assert error["message"].startswith(message)


async def test_repeated_query_parameters_are_refused(api, admin):
    body = await problem_of(await api.client.get(f"{GROUPS}?limit=1&limit=2", headers=admin), 400)
    assert body["errors"] == [{"field": "limit", "message": "limit is given more than once"}]


async def test_limit_defaults_to_50_and_allows_200(api, admin):
    pool = api.runtime.database.pool
    await pool.execute(
        "INSERT INTO disposition_groups (code) SELECT 'bulk_' || n FROM generate_series(1, 210) n"
    )
    page = await (await api.client.get(GROUPS, headers=admin)).json()
    assert len(page["items"]) == 50
    page = await (await api.client.get(GROUPS, params={"limit": "200"}, headers=admin)).json()
    assert len(page["items"]) == 200 and page["next_cursor"]


async def test_cursors_cannot_be_forged_or_reused_elsewhere(api, admin, callcore_settings):
    for n in range(3):
        await create_group(api, admin, f"c_{n}")
    page = await (
        await api.client.get(GROUPS, params={"limit": "1", "sort": "code"}, headers=admin)
    ).json()
    cursor = page["next_cursor"]
    payload, _, mac = cursor.partition(".")
    key = cursor_key(callcore_settings)
    forged = [
        encode_cursor(["a", 0], b"not the key" * 3, "disposition-groups|code"),
        encode_cursor(["a", 0], key, "dispositions|code"),
        f"{payload[:-2]}AA.{mac}",
        f"{payload}.{mac[:-2]}AA",
        payload,
    ]
    for token in forged:
        response = await api.client.get(
            GROUPS, params={"sort": "code", "cursor": token}, headers=admin
        )
        await problem_of(response, 400)
    other_sort = await api.client.get(
        GROUPS, params={"sort": "-code", "cursor": cursor}, headers=admin
    )
    await problem_of(other_sort, 400)
    genuine = encode_cursor(["a", 0], key, "disposition-groups|code")
    response = await api.client.get(
        GROUPS, params={"sort": "code", "cursor": genuine}, headers=admin
    )
    assert response.status == 200


# --- ETag and If-Match ---------------------------------------------------------------------


async def test_writes_need_the_current_version_in_if_match(api, admin):
    group = await create_group(api, admin, "versioned")
    url = f"{GROUPS}/{group['id']}"
    response = await api.client.get(url, headers=admin)
    assert response.headers["ETag"] == '"1"'
    before = await api.snapshot()
    for if_match in ({}, {"If-Match": "*"}):
        for method in ("PATCH", "PUT", "DELETE"):
            response = await api.client.request(
                method,
                url,
                json={"code": "versioned", "label": LABEL},
                headers={**admin, **if_match},
            )
            assert "If-Match" in (await problem_of(response, 428))["detail"]
    response = await api.client.patch(
        url, json={"active": False}, headers={**admin, "If-Match": '"7"'}
    )
    body = await problem_of(response, 412)
    assert body["current_version"] == 1 and response.headers["ETag"] == '"1"'
    assert await api.snapshot() == before
    response = await api.client.patch(
        url, json={"active": False}, headers={**admin, "If-Match": 'W/"1"'}
    )
    assert response.status == 200 and response.headers["ETag"] == '"2"'


async def test_two_admins_editing_the_same_object_never_overwrite_each_other(api, admin):
    other = await api.headers("admin", "second-admin")
    group = await create_group(api, admin, "contested")
    url = f"{GROUPS}/{group['id']}"
    etag = (await api.client.get(url, headers=admin)).headers["ETag"]
    first = await api.client.patch(
        url, json={"label": {"fr": "Premier"}}, headers={**admin, "If-Match": etag}
    )
    assert first.status == 200
    second = await api.client.patch(
        url, json={"label": {"fr": "Second"}}, headers={**other, "If-Match": etag}
    )
    body = await problem_of(second, 412)
    assert body["current_version"] == 2
    stored = await (await api.client.get(url, headers=admin)).json()
    assert stored["label"]["fr"] == "Premier"


# --- OpenAPI -------------------------------------------------------------------------------


async def test_openapi_document_describes_every_api_route(api):
    response = await api.client.get("/api/v1/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"] == "3.1.0"
    components = doc["components"]
    assert components["schemas"]["Problem"]["required"] == ["type", "title", "status"]
    assert components["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert components["securitySchemes"]["cookie"] == {
        "type": "apiKey",
        "in": "cookie",
        "name": "callcore_access",
    }
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    routes = {
        (route.resource.canonical, route.method)
        for route in api.app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and "test-" not in route.resource.canonical
        and route.resource.canonical != WS_PATH  # a WebSocket, documented in docs/web.md
        and route.method != "HEAD"
    }
    assert routes - documented == set()


async def test_openapi_request_schemas_are_the_ones_enforced(api):
    doc = await (await api.client.get("/api/v1/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert schemas["DispositionGroupInput"]["additionalProperties"] is False
    assert set(schemas["DispositionGroupInput"]["properties"]) == {"code", "label", "active"}
    assert "required" not in schemas["DispositionGroupPatch"]
    assert set(schemas["DispositionGroup"]["required"]) >= {"id", "version", "created_at"}
    item = doc["paths"]["/api/v1/disposition-groups/{id}"]
    for method in ("put", "patch", "delete"):
        [if_match] = [p for p in item[method]["parameters"] if p["name"] == "If-Match"]
        assert if_match["required"] is True and if_match["in"] == "header"
        assert {"412", "428"} <= set(item[method]["responses"])
    listing = doc["paths"]["/api/v1/disposition-groups"]["get"]
    params = {p["name"]: p for p in listing["parameters"]}
    assert params["limit"]["schema"]["maximum"] == 200
    assert "-code" in params["sort"]["schema"]["enum"]
    assert listing["x-roles"] == ["admin", "supervisor", "agent"]


def test_a_resource_refuses_sql_identifiers_it_cannot_trust():
    schema = {"type": "object", "properties": {"id": {"type": "integer", "readOnly": True}}}
    roles = read_write_roles(("admin",), ("admin",))
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        Resource(name="x", entity="x", table="x; DROP", schema=schema, roles=roles, sortable={})
    bad = {"type": "object", "properties": {"a b": {"type": "string"}}}
    with pytest.raises(ValueError, match="'a b' is not a plain SQL identifier"):
        Resource(name="x", entity="x", table="x", schema=bad, roles=roles, sortable={})
    with pytest.raises(ValueError, match="gives no roles for"):
        Resource(name="x", entity="x", table="x", schema=schema, roles={}, sortable={})
