"""The nodes that reach the outside world through ``ctx.services`` — webhook, callback, and the
external transfer — on simulated calls through the real FastAGI server, with the live services
on a real PostgreSQL database and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from _ivr_db import graph
from _ivr_services_db import add_campaign, add_trunk, leads
from aiohttp import web

from callcore.ivr import Outcome, compile_graph
from callcore.ivr.dry_services import DryServices
from callcore.ivr.live_services import MAX_RESPONSE_BYTES, LiveServices
from callcore.sim.agi_channel import Caller
from callcore.sim.ivr_fixtures import IvrRun, node_registry
from callcore.sim.run import SimConfig

CUSTOMER = {
    "customer": {"name": "Ada Lovelace", "vip": True, "score": 42, "note": None},
    "orders": [{"id": 7}, {"id": 9}],
    "a/b": "slash",
}


@pytest.fixture
async def services(db_pool: asyncpg.Pool) -> AsyncIterator[LiveServices]:
    live = LiveServices(db_pool)
    yield live
    await live.close()


@pytest.fixture
async def crm(aiohttp_server) -> tuple[str, list[tuple[web.Request, Any]]]:
    """A CRM on loopback; the requests it got, each with its JSON body."""
    seen: list[tuple[web.Request, Any]] = []

    async def lookup(request: web.Request) -> web.Response:
        seen.append((request, None))
        return web.json_response(CUSTOMER)

    async def tickets(request: web.Request) -> web.Response:
        seen.append((request, await request.json()))
        return web.json_response({"ticket": 1234}, status=201)

    async def down(request: web.Request) -> web.Response:
        return web.json_response({"error": "maintenance"}, status=503)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(5)
        return web.json_response(CUSTOMER)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html>login</html>", content_type="text/html")

    async def huge(request: web.Request) -> web.Response:
        return web.json_response({"padding": "x" * MAX_RESPONSE_BYTES})

    app = web.Application()
    app.router.add_get("/customers", lookup)
    app.router.add_post("/tickets", tickets)
    app.router.add_get("/down", down)
    app.router.add_get("/slow", slow)
    app.router.add_get("/page", page)
    app.router.add_get("/huge", huge)
    server = await aiohttp_server(app, host="127.0.0.1")
    return f"http://127.0.0.1:{server.port}", seen


def webhook_flow(params: Mapping[str, Any]) -> dict[str, Any]:
    exits = ("ok", "error", "timeout")
    return graph(
        "hook",
        [("hook", "webhook", params), *((f"on_{name}", "hangup", {}) for name in exits)],
        [("hook", name, f"on_{name}") for name in exits],
    )


# -- webhook -----------------------------------------------------------------------------------


async def test_lookup_fills_variables_and_keeps_the_answer(ivr_call, services, crm) -> None:
    base, seen = crm
    params = {
        "url": base + "/customers?number={caller_id}&ref={ref}",
        "headers": {"X-Caller": "{caller_id}"},
        "secret_headers": {"Authorization": "Bearer s3cret"},
        "results": {
            "name": "/customer/name",
            "vip": "/customer/vip",
            "score": "/customer/score",
            "note": "/customer/note",
            "second_order": "/orders/1/id",
            "missing": "/customer/address/city",
            "slash": "/a~1b",
            "orders": "orders",
        },
        "store_as": "crm",
    }
    run: IvrRun = await ivr_call(
        webhook_flow(params),
        Caller(number="+33612345678"),
        services=services,
        variables={"ref": "a b&c=d/é"},
    )
    assert run.result.path == ("hook", "on_ok")
    ((request, _),) = seen
    # values are URL-encoded: the & in the variable cannot add a parameter
    assert dict(request.query) == {"number": "+33612345678", "ref": "a b&c=d/é"}
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert request.headers["X-Caller"] == "+33612345678"
    variables = run.context.variables
    assert {k: variables[k] for k in params["results"]} == {
        "name": "Ada Lovelace",
        "vip": "true",
        "score": "42",
        "note": "",
        "second_order": "9",
        "missing": "",
        "slash": "slash",
        "orders": '[{"id":7},{"id":9}]',
    }
    assert run.context.data["crm"] == CUSTOMER


async def test_post_sends_the_body_template(ivr_call, services, crm) -> None:
    base, seen = crm
    params = {
        "method": "POST",
        "url": base + "/tickets",
        "body": {"caller": "{caller_id}", "reason": "{choice}", "fixed": "ivr"},
        "results": {"ticket": "ticket"},
    }
    run: IvrRun = await ivr_call(
        webhook_flow(params),
        Caller(number="0612345678"),
        services=services,
        variables={"choice": 'sales "now"'},
    )
    assert run.result.path == ("hook", "on_ok")
    assert seen[0][1] == {"caller": "0612345678", "reason": 'sales "now"', "fixed": "ivr"}
    assert run.context.variables["ticket"] == "1234"
    assert run.context.data["webhook"] == {"ticket": 1234}


@pytest.mark.parametrize(
    ("path", "results", "exit_name"),
    [
        ("/down", {"x": "error"}, "error"),  # 503, even with a JSON answer
        ("/page", {"x": "name"}, "error"),  # not JSON, but fields were expected
        ("/page", {}, "ok"),  # not JSON, and nothing read from it
        ("/huge", {"x": "padding"}, "error"),  # over the answer cap
        ("/nowhere", {}, "error"),  # 404
    ],
)
async def test_answers_that_cannot_be_used(
    ivr_call, services, crm, path: str, results: dict[str, str], exit_name: str
) -> None:
    base, _ = crm
    run: IvrRun = await ivr_call(
        webhook_flow({"url": base + path, "results": results}), services=services
    )
    assert run.result.path == ("hook", f"on_{exit_name}")
    assert "x" not in run.context.variables
    assert run.context.data == {}


async def test_slow_api_takes_timeout(ivr_call, services, crm) -> None:
    base, _ = crm
    started = asyncio.get_running_loop().time()
    run: IvrRun = await ivr_call(
        webhook_flow({"url": base + "/slow", "timeout_s": 0.5, "results": {"n": "/customer/name"}}),
        services=services,
    )
    assert run.result.path == ("hook", "on_timeout")
    assert "n" not in run.context.variables
    assert asyncio.get_running_loop().time() - started < 4.5  # not the 5 s the API takes


async def test_a_caller_hanging_up_during_the_request_ends_the_call_at_the_next_prompt(
    ivr_call, services, crm
) -> None:
    """The request runs its course and its exit is taken, as nodes that need no channel run
    after a hang-up (docs/ivr.md, "Hang-ups"); the next node that needs the caller ends the
    call there without sending anything."""
    base, _ = crm
    run: IvrRun = await ivr_call(
        webhook_flow({"url": base + "/slow", "timeout_s": 1.0}),
        Caller(hangup_at=1.0),  # 20 ms into the second the request waits
        services=services,
    )
    assert run.result.outcome is Outcome.HANGUP
    assert (run.result.last_node, run.result.path) == ("on_timeout", ("hook", "on_timeout"))
    assert run.record.ended_by == "hangup"
    assert run.record.commands == ()


async def test_header_that_would_hold_a_line_break_is_not_sent(ivr_call, crm) -> None:
    base, seen = crm
    services = DryServices()
    run: IvrRun = await ivr_call(
        webhook_flow({"url": base + "/customers", "headers": {"X-Ref": "{ref}"}}),
        services=services,
        variables={"ref": "1\r\nX-Admin: yes"},
    )
    assert run.result.path == ("hook", "on_error")
    assert services.effects == [] and seen == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"url": "ftp://crm.example/x"}, "params/url"),
        ({"url": "http://{host}/customers"}, "params/url"),
        ({"url": "https://crm.example/a b"}, "params/url"),
        ({"url": "https://crm.example/x\n"}, "params/url"),
        ({"url": "https://crm.example/x", "timeout_s": 31}, "params/timeout_s"),
        ({"url": "https://crm.example/x", "timeout_s": 0}, "params/timeout_s"),
        ({"url": "https://crm.example/x", "method": "DELETE"}, "params/method"),
        ({"url": "https://crm.example/x", "headers": {"X-A": "a\r\nb"}}, "params/headers/X-A"),
        ({"url": "https://crm.example/x", "headers": {"X-A": "b\n"}}, "params/headers/X-A"),
        ({"url": "https://crm.example/x", "headers": {"Bad Name": "v"}}, "params/headers"),
        (
            {"url": "https://x.example/", "secret_headers": {"X-A": "a\nb"}},
            "params/secret_headers/X-A",
        ),
        (
            {
                "url": "https://x.example/",
                "headers": {"x-tenant": "a"},
                "secret_headers": {"X-Tenant": "b"},
            },
            "params/secret_headers/X-Tenant",
        ),
        # Credentials belong in secret_headers: plain headers are stored and shown in clear.
        (
            {"url": "https://x.example/", "headers": {"Authorization": "B"}},
            "params/headers/Authorization",
        ),
        ({"url": "https://x.example/", "headers": {"X-Api-Key": "k"}}, "params/headers/X-Api-Key"),
        ({"url": "https://x.example/", "headers": {"Cookie": "s=1"}}, "params/headers/Cookie"),
        ({"url": "https://crm.example/x", "results": {"9lives": "/a"}}, "params/results"),
    ],
)
def test_webhook_params_the_schema_refuses(params: dict[str, Any], field: str) -> None:
    flow, problems = compile_graph(webhook_flow(params), node_registry())
    assert flow is None
    assert {p.field for p in problems} == {field}


# -- callback ----------------------------------------------------------------------------------


def callback_flow(params: Mapping[str, Any]) -> dict[str, Any]:
    return graph(
        "cb",
        [("cb", "callback", params), ("done", "hangup", {}), ("on_failed", "hangup", {})],
        [("cb", "next", "done"), ("cb", "failed", "on_failed")],
    )


async def test_callback_stores_a_lead_for_the_callers_number(
    ivr_call, services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    campaign, (listed,) = await add_campaign(db_pool, "callbacks", [("ivr", True)])
    before = datetime.now(UTC)
    run: IvrRun = await ivr_call(
        callback_flow({"campaign_id": campaign, "delay_minutes": 30, "note": "menu {choice}"}),
        Caller(number="0612345678"),
        services=services,
        variables={"choice": "2"},
        did="+33123456789",
        uniqueid="1795557253.77",
    )
    assert run.result.path == ("cb", "done")
    (lead,) = await leads(db_pool)
    assert run.context.variables["callback_id"] == str(lead["id"])
    assert lead["list_id"] == listed and lead["status"] == "callback"
    assert lead["phone_number"] == "+33612345678"
    due = lead["next_attempt_at"] - timedelta(minutes=30)
    assert before <= due <= datetime.now(UTC)
    assert lead["custom_fields"] == {
        "callback_note": "menu 2",
        "ivr_uniqueid": "1795557253.77",
        "ivr_did": "+33123456789",
    }


async def test_callback_to_the_number_a_variable_holds(
    ivr_call, services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    campaign, _ = await add_campaign(db_pool, "callbacks", [("ivr", True)])
    run: IvrRun = await ivr_call(
        callback_flow({"campaign_id": campaign, "number_from": "variable", "variable": "typed"}),
        Caller(number="anonymous"),
        services=services,
        variables={"typed": "+1 415 555 0123"},
    )
    assert run.result.path == ("cb", "done")
    assert [row["phone_number"] for row in await leads(db_pool)] == ["+14155550123"]


@pytest.mark.parametrize("number", ["anonymous", "", "+3312", "12"])
async def test_callback_to_no_valid_number_fails_and_stores_nothing(
    ivr_call, services: LiveServices, db_pool: asyncpg.Pool, number: str
) -> None:
    campaign, _ = await add_campaign(db_pool, "callbacks", [("ivr", True)])
    run: IvrRun = await ivr_call(
        callback_flow({"campaign_id": campaign}), Caller(number=number), services=services
    )
    assert run.result.path == ("cb", "on_failed")
    assert await leads(db_pool) == [] and "callback_id" not in run.context.variables


async def test_callback_for_a_campaign_without_a_list_fails(
    ivr_call, services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    campaign, _ = await add_campaign(db_pool, "listless")
    run: IvrRun = await ivr_call(
        callback_flow({"campaign_id": campaign}), Caller(number="0612345678"), services=services
    )
    assert run.result.path == ("cb", "on_failed")
    assert await leads(db_pool) == []


def test_a_variable_source_needs_its_variable() -> None:
    flow, problems = compile_graph(
        callback_flow({"campaign_id": 1, "number_from": "variable"}), node_registry()
    )
    assert flow is None
    assert [p.field for p in problems] == ["params"]
    assert "'variable' is a required property" in problems[0].message


# -- external transfer on the live services ----------------------------------------------------

EXTERNAL = graph(
    "transfer",
    [
        ("transfer", "transfer", {"kind": "external", "number": "+33612345678", "timeout_s": 10}),
        *((f"on_{e}", "hangup", {}) for e in ("no_answer", "busy", "failed", "refused")),
    ],
    [("transfer", e, f"on_{e}") for e in ("no_answer", "busy", "failed", "refused")],
)


async def test_external_transfer_respects_the_trunk_cap_and_releases_its_channel(
    ivr_call, services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "fr", ["+33"], max_calls=1, number_format="e164_no_plus")
    async with services.external_route("+33612345670") as held:  # another transfer in progress
        assert held.trunk == "fr"
        refused: IvrRun = await ivr_call(EXTERNAL, services=services, simulator=SimConfig())
    assert refused.result.path == ("transfer", "on_refused")
    assert not [c for c in refused.record.commands if c[:2] == ("EXEC", "Dial")]

    run: IvrRun = await ivr_call(EXTERNAL, services=services, simulator=SimConfig())
    assert [c[2] for c in run.record.commands if c[:2] == ("EXEC", "Dial")] == [
        "PJSIP/33612345678@fr,10,g"
    ]
    assert run.result.path == ("transfer", "on_failed")  # CHANUNAVAIL: no PJSIP in the simulator
    async with services.external_route("+33612345670") as after:
        assert after.trunk == "fr"  # the transfer gave its channel back


async def test_external_number_outside_the_allowlist_is_refused(
    ivr_call, services: LiveServices, db_pool: asyncpg.Pool
) -> None:
    await add_trunk(db_pool, "uk", ["+44"])
    run: IvrRun = await ivr_call(EXTERNAL, services=services, simulator=SimConfig())
    assert run.result.path == ("transfer", "on_refused")
    assert run.result.outcome is Outcome.COMPLETED
