"""LiveServices on a real PostgreSQL database and real sockets: callbacks, trunk routes with
their allowlist and channel cap, agents' phones, webhooks."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from _ivr_services_db import add_agent, add_campaign, add_trunk, leads
from aiohttp import web

from callcore.errors import ValidationError
from callcore.ivr.live_services import MAX_RESPONSE_BYTES, LiveServices

AT = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


@pytest.fixture
async def services(db_pool: asyncpg.Pool) -> AsyncIterator[LiveServices]:
    live = LiveServices(db_pool)
    yield live
    await live.close()


# -- callbacks ---------------------------------------------------------------------------------


async def test_callback_lead_goes_into_the_first_active_list(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    campaign, (_, first, _) = await add_campaign(
        db_pool, "winback", [("old", False), ("main", True), ("extra", True)]
    )
    lead = await services.request_callback(
        campaign, "06 12 34 56 78", AT, "wants a quote", {"ivr_did": "+33123456789"}
    )
    (row,) = await leads(db_pool)
    assert row["id"] == lead
    assert row["list_id"] == first
    assert row["phone_number"] == "+33612345678"
    assert row["status"] == "callback"
    assert row["next_attempt_at"] == AT
    assert row["custom_fields"] == {"ivr_did": "+33123456789", "callback_note": "wants a quote"}


async def test_callback_without_a_note_stores_only_the_fields(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    campaign, _ = await add_campaign(db_pool, "c", [("l", True)])
    await services.request_callback(campaign, "+14155550123", AT, "", {})
    (row,) = await leads(db_pool)
    assert row["custom_fields"] == {} and row["phone_number"] == "+14155550123"


@pytest.mark.parametrize("lists", [[], [("paused", False)]])
async def test_campaign_without_an_active_list_gets_none_and_nothing_is_written(
    services: LiveServices, db_pool: asyncpg.Pool, lists: list[tuple[str, bool]]
) -> None:
    campaign, _ = await add_campaign(db_pool, "no list", lists)
    assert await services.request_callback(campaign, "+33612345678", AT, "n", {}) is None
    assert await services.request_callback(campaign + 1000, "+33612345678", AT, "n", {}) is None
    assert await leads(db_pool) == []


@pytest.mark.parametrize("number", ["+3312", "anonymous", "", "+33612345678\r\nx"])
async def test_callback_to_an_invalid_number_is_refused_naming_it(
    services: LiveServices, db_pool: asyncpg.Pool, number: str
) -> None:
    campaign, _ = await add_campaign(db_pool, "c", [("l", True)])
    with pytest.raises(ValidationError, match="is not a valid phone number") as caught:
        await services.request_callback(campaign, number, AT, "", {})
    assert repr(number) in str(caught.value)
    assert await leads(db_pool) == []


# -- external routes ---------------------------------------------------------------------------


async def test_number_outside_every_allowlist_is_refused_naming_trunks_and_prefixes(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "fr", ["+33", "+262"])
    await add_trunk(db_pool, "nowhere", [])
    await add_trunk(db_pool, "off", ["+"], enabled=False)
    async with services.external_route("+442079460000") as route:
        assert route.trunk is None and route.dial_string == ""
        assert route.refusal == (
            "no enabled trunk allows +442079460000 "
            "(trunk fr allows +33, +262; trunk nowhere allows no destination)"
        )


async def test_no_enabled_trunk_at_all(services: LiveServices) -> None:
    async with services.external_route("+33612345678") as route:
        assert route.trunk is None
        assert route.refusal == "no enabled trunk to call +33612345678"


@pytest.mark.parametrize("number", ["+3312", "0612345678", "+33612345678,g", "+33 6 12 34 56 78"])
async def test_only_valid_e164_numbers_get_a_route(
    services: LiveServices, db_pool: asyncpg.Pool, number: str
) -> None:
    await add_trunk(db_pool, "world", ["+"])
    async with services.external_route(number) as route:
        assert route.trunk is None
        assert route.refusal == f"{number!r} is not a valid E.164 phone number"


async def test_the_most_specific_prefix_wins_and_the_dial_string_follows_the_trunk(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "world", ["+"])
    await add_trunk(
        db_pool, "fr-mobile", ["+336", "+337"], number_format="e164_no_plus", dial_prefix="00"
    )
    async with services.external_route("+33612345678") as mobile:
        assert mobile.trunk == "fr-mobile"
        assert mobile.dial_string == "PJSIP/0033612345678@fr-mobile"
    async with services.external_route("+33123456789") as landline:
        assert landline.trunk == "world"
        assert landline.dial_string == "PJSIP/+33123456789@world"


async def test_the_trunk_cap_holds_while_routes_are_held(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "fr", ["+33"], max_calls=2)
    async with (
        services.external_route("+33612345678") as one,
        services.external_route("+33612345679") as two,
    ):
        assert one.trunk == two.trunk == "fr"
        async with services.external_route("+33612345670") as third:
            assert third.trunk is None
            assert third.refusal == (
                "every trunk allowing +33612345670 is busy with external transfers "
                "(trunk fr at its limit of 2)"
            )
    # both released: two more fit again
    async with (
        services.external_route("+33612345678") as again,
        services.external_route("+33612345679") as again_too,
    ):
        assert again.trunk == again_too.trunk == "fr"


async def test_a_full_trunk_overflows_to_the_next_allowing_one(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "fr", ["+33"], max_calls=1)
    await add_trunk(db_pool, "backup", ["+"], max_calls=1)
    async with services.external_route("+33612345678") as first:
        async with services.external_route("+33612345679") as second:
            async with services.external_route("+33612345670") as third:
                assert (first.trunk, second.trunk, third.trunk) == ("fr", "backup", None)
                assert "trunk fr at its limit of 1; trunk backup at its limit of 1" in (
                    third.refusal
                )


async def test_a_route_is_released_when_its_block_fails(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "fr", ["+33"], max_calls=1)
    with pytest.raises(RuntimeError):
        async with services.external_route("+33612345678") as route:
            assert route.trunk == "fr"
            raise RuntimeError("the call failed")
    async with services.external_route("+33612345678") as route:
        assert route.trunk == "fr"


async def test_concurrent_requests_never_exceed_the_cap(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "fr", ["+33"], max_calls=3)
    granted: list[str | None] = []
    all_asked, release = asyncio.Event(), asyncio.Event()

    async def transfer() -> None:
        async with services.external_route("+33612345678") as route:
            granted.append(route.trunk)
            if len(granted) == 10:
                all_asked.set()
            await release.wait()

    tasks = [asyncio.create_task(transfer()) for _ in range(10)]
    await asyncio.wait_for(all_asked.wait(), 10)
    release.set()
    await asyncio.gather(*tasks)
    assert granted.count("fr") == 3 and granted.count(None) == 7


# -- agents ------------------------------------------------------------------------------------


async def test_agent_endpoint_is_the_assigned_active_phone(
    services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    alice = await add_agent(db_pool, "alice", "alice-desk")
    bob = await add_agent(db_pool, "bob")
    carol = await add_agent(db_pool, "carol", "carol-desk", phone_active=False)
    dave = await add_agent(db_pool, "dave", "dave-desk", user_active=False)
    assert await services.agent_endpoint(alice) == "PJSIP/alice-desk"
    assert await services.agent_endpoint(bob) is None
    assert await services.agent_endpoint(carol) is None
    assert await services.agent_endpoint(dave) is None
    assert await services.agent_endpoint(dave + 100) is None


# -- webhooks ----------------------------------------------------------------------------------


@pytest.fixture
async def api(aiohttp_server) -> str:
    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {
                "method": request.method,
                "query": dict(request.query),
                "body": body,
                "auth": request.headers.get("Authorization"),
            }
        )

    async def cookie(request: web.Request) -> web.Response:
        response = web.json_response({"cookies": dict(request.cookies)})
        response.set_cookie("session", "caller-one")
        return response

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"error": "nope"}, status=int(request.match_info["code"]))

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response({})

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * MAX_RESPONSE_BYTES + b"1]")

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # chunked: no Content-Length to refuse early
        await response.prepare(request)
        for _ in range(20):
            await response.write(b" " * 100_000)
        await response.write_eof()
        return response

    async def text(request: web.Request) -> web.Response:
        return web.Response(text="<html>hello</html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/cookie", cookie)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/text", text)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}"


async def test_webhook_get_and_post(services: LiveServices, api: str) -> None:
    got = await services.http(
        "GET",
        f"{api}/echo?n=%2B33",
        body=None,
        headers={"Authorization": "Bearer t"},
        timeout_s=5,
    )
    assert got.outcome == "ok" and got.status == 200
    assert got.data == {"method": "GET", "query": {"n": "+33"}, "body": None, "auth": "Bearer t"}
    posted = await services.http("POST", f"{api}/echo", body={"a": "b"}, headers={}, timeout_s=5)
    assert posted.data["body"] == {"a": "b"} and posted.data["method"] == "POST"


@pytest.mark.parametrize("code", [404, 500, 302])
async def test_webhook_error_status_keeps_its_json(
    services: LiveServices, api: str, code: int
) -> None:
    result = await services.http("GET", f"{api}/status/{code}", body=None, headers={}, timeout_s=5)
    assert (result.outcome, result.status, result.data) == ("error", code, {"error": "nope"})


async def test_webhook_timeout(services: LiveServices, api: str) -> None:
    started = asyncio.get_running_loop().time()
    result = await services.http("GET", f"{api}/slow", body=None, headers={}, timeout_s=0.3)
    assert result.outcome == "timeout" and result.status is None
    assert asyncio.get_running_loop().time() - started < 4.5  # not the 5 s the API takes


@pytest.mark.parametrize("path", ["/big", "/streamed"])
async def test_webhook_answer_over_the_cap_is_an_error(
    services: LiveServices, api: str, path: str
) -> None:
    result = await services.http("GET", f"{api}{path}", body=None, headers={}, timeout_s=5)
    assert (result.outcome, result.status, result.data) == ("error", 200, None)


async def test_webhook_answer_that_is_not_json(services: LiveServices, api: str) -> None:
    result = await services.http("GET", f"{api}/text", body=None, headers={}, timeout_s=5)
    assert (result.outcome, result.status, result.data) == ("ok", 200, None)


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://x", "127.0.0.1/x", "http://[::1"],
)
async def test_webhook_never_raises_for_bad_urls(services: LiveServices, url: str) -> None:
    result = await services.http("GET", url, body=None, headers={}, timeout_s=1)
    assert result.outcome == "error" and result.status is None


async def test_webhook_to_a_closed_port_is_an_error(services: LiveServices) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nobody listens on it
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await services.http(
        "GET", f"http://127.0.0.1:{port}/", body=None, headers={}, timeout_s=2
    )
    assert result.outcome == "error" and result.status is None


async def test_no_cookie_is_carried_from_one_webhook_call_to_the_next(
    services: LiveServices, api: str
) -> None:
    # by name: a default cookie jar would ignore cookies from a bare IP address anyway
    url = api.replace("127.0.0.1", "localhost") + "/cookie"
    for _ in range(2):
        result = await services.http("GET", url, body=None, headers={}, timeout_s=5)
        assert result.data == {"cookies": {}}


async def test_one_http_session_is_shared_and_closed(services: LiveServices, api: str) -> None:
    await services.http("GET", f"{api}/echo", body=None, headers={}, timeout_s=5)
    session = services._http
    await services.http("GET", f"{api}/echo", body=None, headers={}, timeout_s=5)
    assert services._http is session and session is not None
    await services.close()
    assert session.closed and services._http is None


async def test_webhooks_reach_only_the_allowed_hosts(
    db_pool: asyncpg.Pool, api: str, caplog: pytest.LogCaptureFixture
) -> None:
    port = api.rsplit(":", 1)[1]
    live = LiveServices(db_pool, allowed_hosts=("localhost", "*.example.invalid"))
    try:
        by_name = await live.http(
            "GET", f"http://LocalHost:{port}/echo", body=None, headers={}, timeout_s=5
        )
        assert by_name.outcome == "ok"
        refused = await live.http("GET", f"{api}/echo", body=None, headers={}, timeout_s=5)
        assert (refused.outcome, refused.status) == ("error", None)  # no request was made
        assert "127.0.0.1" in caplog.text and "ivr.webhook_allowed_hosts" in caplog.text
    finally:
        await live.close()
    assert live.allows("https://crm.example.invalid/x")
    assert live.allows("https://a.b.example.invalid/x")
    assert not live.allows("https://example.invalid/x")  # *. means the domain's hosts
    assert not live.allows("https://evil-example.invalid/x")
    assert not live.allows("https://localhost.evil.test/x")
    assert not live.allows("http://[::1")


async def test_webhook_logs_leave_out_passwords_and_query_strings(
    services: LiveServices, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://crm:hunter2@127.0.0.1:{port}/lookup?api_key=s3cr3t&caller=0612345678"
    result = await services.http("GET", url, body=None, headers={}, timeout_s=2)
    assert result.outcome == "error"
    assert f"http://127.0.0.1:{port}/lookup?…" in caplog.text
    for secret in ("hunter2", "s3cr3t", "0612345678"):
        assert secret not in caplog.text
