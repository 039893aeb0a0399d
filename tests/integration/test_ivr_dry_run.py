"""Dry runs: POST /api/v1/ivr-flows/{id}/dry-run on a real database and the real engine, and the
scripted channel behind it. A run follows the menu and the opening hours with the chosen moment
and keys, reports webhooks, dialling and recording as effects without doing them, jumps into
other flows read-only, and leaves nothing behind."""

import asyncio

import attrs
import pytest
from _api_client import if_match, problem
from _ivr_nodes import add_test_nodes, edge, node
from _ivr_services_db import add_campaign
from aiohttp import web

from callcore.agi.errors import AGIHangup, AGIInjectionError
from callcore.ivr import CallContext, Node
from callcore.ivr.dry_run import MAX_COMMANDS, ScriptedChannel, dry_run
from callcore.ivr.dry_services import DryServices
from callcore.ivr.graph import compile_graph
from callcore.sim.ivr_fixtures import node_registry

FLOWS = "/api/v1/ivr-flows"
WEDNESDAY_MORNING = "2025-03-12T10:30:00+01:00"
WEDNESDAY_NIGHT = "2025-03-12T22:00:00+01:00"


def reception(crm_url: str) -> dict:
    """Answer; open 9-18 (Paris): a menu, 1 the sales queue, 2 a CRM lookup; closed: goodbye."""
    return {
        "entry": "start",
        "nodes": [
            node("start", "answer"),
            node("hours", "acme_hours", opens=9, closes=18),
            node("menu", "acme_menu", prompt="main-menu", keys="12"),
            node("sales", "transfer", kind="queue", queue="sales"),
            node("lookup", "webhook", url=crm_url + "?caller={caller_id}", results={"vip": "/vip"}),
            node("bye", "hangup"),
        ],
        "edges": [
            edge("start", "next", "hours"),
            edge("hours", "open", "menu"),
            edge("hours", "closed", "bye"),
            edge("menu", "key_1", "sales"),
            edge("menu", "key_2", "lookup"),
            edge("menu", "timeout", "bye"),
            *(edge("sales", exit_name, "bye") for exit_name in ("no_answer", "busy", "failed")),
            *(edge("lookup", exit_name, "bye") for exit_name in ("ok", "error", "timeout")),
        ],
    }


@pytest.fixture
async def crm(aiohttp_server):
    """A CRM that counts its requests: a dry run must never reach it."""
    hits = []

    async def lookup(request: web.Request) -> web.Response:
        hits.append(request.path_qs)
        return web.json_response({"vip": True})

    app = web.Application()
    app.router.add_get("/crm", lookup)
    server = await aiohttp_server(app)
    return str(server.make_url("/crm")), hits


@pytest.fixture
async def admin(api):
    add_test_nodes(api.runtime)
    return await api.headers("admin")


async def flow_with(api, admin, graph, name="Reception", *, published=False):
    response = await api.client.post(FLOWS, json={"name": name}, headers=admin)
    flow = await response.json()
    response = await api.client.put(
        f"{FLOWS}/{flow['id']}/draft", json={"graph": graph}, headers=if_match(admin, flow)
    )
    flow = await response.json()
    assert flow["problems"] == [], flow["problems"]
    if published:
        response = await api.client.post(
            f"{FLOWS}/{flow['id']}/publish", headers=if_match(admin, flow)
        )
        assert response.status == 200, await response.text()
        flow = await response.json()
    return flow


async def run(api, headers, flow, **body):
    response = await api.client.post(f"{FLOWS}/{flow['id']}/dry-run", json=body, headers=headers)
    assert response.status == 200, await response.text()
    return await response.json()


def steps(result):
    return [(step["node"], step["exit"]) for step in result["path"]]


async def test_open_hours_and_a_key_lead_to_the_crm_lookup_which_is_not_called(api, admin, crm):
    url, hits = crm
    flow = await flow_with(api, admin, reception(url))
    result = await run(
        api, admin, flow, at=WEDNESDAY_MORNING, digits=["2"], caller_id="+33612345678"
    )
    assert result["outcome"] == "completed" and result["error"] is None
    assert steps(result) == [
        ("start", "next"),
        ("hours", "open"),
        ("menu", "key_2"),
        ("lookup", "ok"),
        ("bye", ""),
    ]
    assert {step["flow_id"] for step in result["path"]} == {flow["id"]}
    assert result["flow_version"] == flow["draft"]["version_number"]
    assert result["effects"] == [
        {"kind": "http", "method": "GET", "url": f"{url}?caller=%2B33612345678", "body": None}
    ]
    assert result["commands"] == ["ANSWER", "STREAM FILE main-menu 12", "HANGUP"]
    assert result["variables"] == {"vip": ""}, "the default answer is {}"
    assert hits == [], "the CRM was called"


async def test_the_built_in_calendar_menu_and_webhook_through_the_api(api, admin, crm):
    url, hits = crm
    hours = {"hours": [{"days": [3], "start": "09:00", "end": "18:00"}]}  # Wednesdays
    graph = {
        "entry": "hours",
        "nodes": [
            node("hours", "calendar", **hours),
            node("menu", "menu", prompt="main-menu", options=["1", "2"], max_attempts=2),
            node("lookup", "webhook", url=url + "?caller={caller_id}"),
            node("bye", "hangup"),
        ],
        "edges": [
            edge("hours", "open", "menu"),
            edge("hours", "closed", "bye"),
            edge("hours", "holiday", "bye"),
            edge("menu", "digit_1", "lookup"),
            edge("menu", "digit_2", "bye"),
            *(edge("lookup", exit_name, "bye") for exit_name in ("ok", "error", "timeout")),
        ],
    }
    flow = await flow_with(api, admin, graph, "Built-ins")
    day = await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=["7", "1"], caller_id="42")
    assert steps(day) == [("hours", "open"), ("menu", "digit_1"), ("lookup", "ok"), ("bye", "")]
    assert day["effects"] == [
        {"kind": "http", "method": "GET", "url": f"{url}?caller=42", "body": None}
    ]
    night = await run(api, admin, flow, at=WEDNESDAY_NIGHT, digits=["1"])
    assert steps(night) == [("hours", "closed"), ("bye", "")]
    assert hits == []


async def test_the_moment_chosen_decides_the_opening_hours(api, admin, crm):
    flow = await flow_with(api, admin, reception(crm[0]))
    result = await run(api, admin, flow, at=WEDNESDAY_NIGHT, digits=["2"])
    assert steps(result) == [("start", "next"), ("hours", "closed"), ("bye", "")]
    assert result["effects"] == []
    early = await run(api, admin, flow, at="2025-03-12T08:59:59+01:00")
    assert ("hours", "closed") in steps(early)
    utc = await run(api, admin, flow, at="2025-03-12T08:00:00+00:00", digits=[""])
    assert ("hours", "open") in steps(utc), "09:00 in Paris"


async def test_a_scripted_webhook_answer_takes_its_branch(api, admin, crm):
    url, hits = crm
    flow = await flow_with(api, admin, reception(url))
    answers = {
        f"{url}?caller=%2B33612345678": {"outcome": "ok", "status": 200, "data": {"vip": "gold"}}
    }
    ok = await run(
        api,
        admin,
        flow,
        at=WEDNESDAY_MORNING,
        digits=["2"],
        caller_id="+33612345678",
        webhooks=answers,
    )
    assert ("lookup", "ok") in steps(ok) and ok["variables"] == {"vip": "gold"}
    failing = {url + "?caller=": {"outcome": "error", "status": 503}}
    error = await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=["2"], webhooks=failing)
    assert ("lookup", "error") in steps(error)
    assert hits == []


async def test_a_webhook_to_a_host_not_allowed_is_refused_as_it_would_be_live(api, admin, crm):
    url, hits = crm
    flow = await flow_with(api, admin, reception(url))
    api.runtime.settings = attrs.evolve(
        api.runtime.settings,
        ivr=attrs.evolve(api.runtime.settings.ivr, webhook_allowed_hosts=("crm.example.com",)),
    )
    refused = await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=["2"], caller_id="42")
    assert ("lookup", "error") in steps(refused)
    assert refused["effects"] == [
        {
            "kind": "http",
            "method": "GET",
            "url": f"{url}?caller=42",
            "body": None,
            "refused": "not among ivr.webhook_allowed_hosts",
        }
    ]
    assert hits == []


async def test_dialling_a_queue_is_an_effect_with_the_status_asked_for(api, admin, crm):
    flow = await flow_with(api, admin, reception(crm[0]))
    answered = await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=["1"])
    assert answered["outcome"] == "completed" and answered["last_node"] == "sales"
    assert steps(answered)[-1] == ("sales", "answered")
    [dial] = answered["effects"]
    assert dial["kind"] == "dial" and dial["args"] == "Local/sales@callcore-queues,30,g"
    assert dial["status"] == "ANSWER" and "would run Dial" in dial["message"]
    assert "EXEC Dial Local/sales@callcore-queues,30,g" in answered["commands"]
    busy = await run(
        api, admin, flow, at=WEDNESDAY_MORNING, digits=["1"], statuses={"Dial": "BUSY"}
    )
    assert steps(busy)[-2:] == [("sales", "busy"), ("bye", "")]


async def test_a_transfer_to_an_agent_rings_their_real_phone(api, admin):
    agent = await api.user("agent", "alice")
    pool = api.runtime.database.pool
    phone = await pool.fetchval("INSERT INTO phones (endpoint) VALUES ('alice-desk') RETURNING id")
    await pool.execute(
        "INSERT INTO phone_assignments (phone_id, user_id) VALUES ($1, $2)", phone, agent.user_id
    )
    graph = {
        "entry": "to_alice",
        "nodes": [
            node("to_alice", "transfer", kind="agent", agent=agent.user_id),
            node("to_nobody", "transfer", kind="agent", agent=agent.user_id + 1),
            node("bye", "hangup"),
        ],
        "edges": [
            edge("to_alice", "answered", "to_nobody"),
            *(edge("to_alice", e, "bye") for e in ("no_answer", "busy", "failed")),
            *(edge("to_nobody", e, "bye") for e in ("no_answer", "busy", "failed")),
        ],
    }
    flow = await flow_with(api, admin, graph, "Agents")
    result = await run(api, admin, flow)
    assert steps(result) == [("to_alice", "answered"), ("to_nobody", "failed"), ("bye", "")]
    assert [e["args"] for e in result["effects"]] == ["PJSIP/alice-desk,30,g"]


async def test_the_caller_times_out_or_hangs_up_as_scripted(api, admin, crm):
    flow = await flow_with(api, admin, reception(crm[0]))
    silent = await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=[""])
    assert steps(silent)[-2:] == [("menu", "timeout"), ("bye", "")]
    assert silent["commands"][1:3] == ["STREAM FILE main-menu 12", "WAIT FOR DIGIT 3000"]
    gone = await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=["2"], hangup_after_step=2)
    assert gone["outcome"] == "hangup" and gone["last_node"] == "menu"
    assert steps(gone) == [("start", "next"), ("hours", "open"), ("menu", None)]
    assert gone["commands"] == ["ANSWER"], "nothing is sent on a dead channel"


async def test_get_data_takes_a_whole_entry(api, admin):
    graph = {
        "entry": "read",
        "nodes": [node("read", "acme_read"), node("again", "acme_read"), node("bye", "hangup")],
        "edges": [
            *(edge("read", exit_name, "again") for exit_name in ("done", "timeout")),
            *(edge("again", exit_name, "bye") for exit_name in ("done", "timeout")),
        ],
    }
    flow = await flow_with(api, admin, graph)
    result = await run(api, admin, flow, digits=["1234#", "12"])
    assert result["variables"] == {"account": "12", "account_timed_out": "yes"}
    assert steps(result) == [("read", "done"), ("again", "done"), ("bye", "")]
    assert result["commands"] == [*["GET DATA enter-account 5000 6"] * 2, "HANGUP"]
    typed = await run(api, admin, flow, digits=["1234567#"])
    assert steps(typed)[1] == ("again", "timeout"), "past 6 digits, the rest is lost"


async def test_a_jump_runs_the_other_flows_published_version_read_only(api, admin):
    target = await flow_with(
        api,
        admin,
        {
            "entry": "hello",
            "nodes": [node("hello", "answer"), node("bye", "hangup")],
            "edges": [edge("hello", "next", "bye")],
        },
        "Target",
        published=True,
    )
    graph = {"entry": "jump", "nodes": [node("jump", "acme_jump", flow_id=target["id"])]}
    graph["edges"] = []
    flow = await flow_with(api, admin, graph)
    result = await run(api, admin, flow)
    assert result["outcome"] == "completed"
    assert [(s["flow_id"], s["node"]) for s in result["path"]] == [
        (flow["id"], "jump"),
        (target["id"], "hello"),
        (target["id"], "bye"),
    ]
    to_draft_only = {**graph, "nodes": [node("jump", "acme_jump", flow_id=flow["id"])]}
    unpublished = await flow_with(api, admin, to_draft_only, "Loop")
    failed = await run(api, admin, unpublished)
    assert failed["outcome"] == "error"
    assert failed["error"] == f"flow {flow['id']} has no published version"


async def test_a_dry_run_leaves_nothing_behind(api, admin, crm):
    flow = await flow_with(api, admin, reception(crm[0]))
    pool = api.runtime.database.pool
    tables = ("flows", "flow_versions", "audit_log", "ivr_calls", "leads", "settings")
    before = [await pool.fetch(f"SELECT * FROM {table} ORDER BY 1") for table in tables]
    events = api.runtime.bus.subscribe(["ivr", "audit"])
    for digits in (["1"], ["2"], [""]):
        await run(api, admin, flow, at=WEDNESDAY_MORNING, digits=digits)
    assert [await pool.fetch(f"SELECT * FROM {table} ORDER BY 1") for table in tables] == before
    await asyncio.sleep(0.05)
    assert len(events) == 0, "a dry run publishes no event"


async def test_a_recording_is_reported_not_made(api, admin):
    graph = {
        "entry": "rec",
        "nodes": [node("rec", "record", prompt="leave-message", beep=True), node("bye", "hangup")],
        "edges": [edge("rec", "recorded", "bye"), edge("rec", "failed", "bye")],
    }
    flow = await flow_with(api, admin, graph)
    result = await run(api, admin, flow, digits=["#"])
    path = f"callcore/recordings/{flow['id']}-dry-run-rec.wav"
    effect = {"kind": "record", "file": path, "message": f"would record {path}"}
    assert result["effects"] == [effect]
    assert result["variables"] == {"recording": path}
    assert steps(result) == [("rec", "recorded"), ("bye", "")]
    assert result["commands"][:2] == [
        'STREAM FILE leave-message ""',
        f"RECORD FILE callcore/recordings/{flow['id']}-dry-run-rec wav # 120000 0 BEEP",
    ]


async def test_a_callback_is_reported_not_stored_on_the_branch_the_campaign_decides(api, admin):
    """The campaign's contact lists are read (a callback goes into the first active one), so
    the run takes the exit a live call would; no lead is written either way."""
    pool = api.runtime.database.pool
    listed, (_, active) = await add_campaign(pool, "Callbacks", [("2024", False), ("2025", True)])
    unlisted, _ = await add_campaign(pool, "No list", [("closed", False)])
    graph = {
        "entry": "cb",
        "nodes": [
            node("cb", "callback", campaign_id=listed, note="from {did}"),
            node("bye", "hangup"),
            node("sorry", "hangup"),
        ],
        "edges": [edge("cb", "next", "bye"), edge("cb", "failed", "sorry")],
    }
    flow = await flow_with(api, admin, graph)
    body = {"caller_id": "0612345678", "did": "+33123456789", "at": WEDNESDAY_MORNING}
    stored = await run(api, admin, flow, **body)
    assert steps(stored) == [("cb", "next"), ("bye", "")]
    assert stored["effects"] == [
        {
            "kind": "callback",
            "campaign_id": listed,
            "number": "+33612345678",
            "at": "2025-03-12T10:30:00+01:00",
            "note": "from +33123456789",
            "list_id": active,
        }
    ]
    assert stored["variables"]["callback_id"] == "0"
    other = {**graph, "nodes": [node("cb", "callback", campaign_id=unlisted), *graph["nodes"][1:]]}
    refused = await run(api, admin, await flow_with(api, admin, other, "Other"), **body)
    assert steps(refused) == [("cb", "failed"), ("sorry", "")]
    [effect] = refused["effects"]
    assert effect["refused"] == f"campaign {unlisted} has no active contact list"
    assert "list_id" not in effect
    assert await pool.fetchval("SELECT count(*) FROM leads") == 0


async def test_what_cannot_run_is_refused(api, admin):
    response = await api.client.post(FLOWS, json={"name": "Empty"}, headers=admin)
    empty = await response.json()
    body = await problem(
        await api.client.post(f"{FLOWS}/{empty['id']}/dry-run", json={}, headers=admin), 422
    )
    assert [p["code"] for p in body["problems"]] == ["missing_entry"]
    late = await problem(
        await api.client.post(
            f"{FLOWS}/{empty['id']}/dry-run",
            json={"graph": {"entry": None, "nodes": [], "edges": []}, "at": "2025-03-12T10:30"},
            headers=admin,
        ),
        422,
    )
    assert late["errors"][0]["field"] == "/at"
    keys = await problem(
        await api.client.post(
            f"{FLOWS}/{empty['id']}/dry-run", json={"digits": ["1", "1\n"]}, headers=admin
        ),
        422,
    )
    assert keys["errors"][0]["field"] == "/digits/1"
    await problem(await api.client.post(f"{FLOWS}/987654/dry-run", json={}, headers=admin), 404)


async def test_supervisors_may_dry_run_agents_may_not(api, admin, crm):
    flow = await flow_with(api, admin, reception(crm[0]))
    supervisor = await api.headers("supervisor")
    assert (await run(api, supervisor, flow, digits=[""]))["outcome"] == "completed"
    agent = await api.headers("agent")
    refused = await api.client.post(f"{FLOWS}/{flow['id']}/dry-run", json={}, headers=agent)
    assert refused.status == 403


# --- the scripted channel and the run's bounds (no database) -----------------------------------


async def test_the_scripted_channel_answers_like_asterisk():
    channel = ScriptedChannel(["1234#", "", "5"], [])
    interrupted = await channel.stream_file("welcome", "0123456789")
    assert interrupted.digit == "1", "the entry's first key interrupts the prompt"
    data = await channel.get_data("more", 3000, 10)
    assert (data.digits, data.timed_out) == ("234", False), "the rest goes to GET DATA"
    assert (await channel.stream_file("menu", "12")).digit is None, "an empty entry is no key"
    assert await channel.wait_for_digit(1000) is None, "...and then a timeout"
    assert (await channel.stream_file("menu", "12")).digit is None, "5 is not an escape digit"
    assert await channel.wait_for_digit(1000) == "5"
    nothing = await channel.get_data("last", 1000, 4)
    assert (nothing.digits, nothing.timed_out) == ("", True), "no entry left: a timeout"
    with pytest.raises(AGIInjectionError):
        await channel.stream_file("evil\nHANGUP")
    await channel.set_variable("CALLCORE_X", "1")
    assert await channel.get_variable("CALLCORE_X") == "1"
    channel.caller_hangs_up()
    with pytest.raises(AGIHangup):
        await channel.stream_file("anyone")
    assert await channel.get_variable("HANGUPCAUSE") == "16", "variables still answer when dead"
    assert channel.commands == [
        "STREAM FILE welcome 0123456789",
        "GET DATA more 3000 10",
        "STREAM FILE menu 12",
        "WAIT FOR DIGIT 1000",
        "STREAM FILE menu 12",
        "WAIT FOR DIGIT 1000",
        "GET DATA last 1000 4",
        "SET VARIABLE CALLCORE_X 1",
        "GET VARIABLE CALLCORE_X",
        "GET VARIABLE HANGUPCAUSE",
    ]


class Sleeper(Node):
    name = "sleeper"
    label = "Sleeper"

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        await asyncio.sleep(60)
        return "next"


class Chatter(Node):
    name = "chatter"
    label = "Chatter"

    def exits(self) -> tuple[str, ...]:
        return ()

    async def run(self, ctx: CallContext) -> str:
        while True:
            await ctx.channel.verbose("again")


def _compiled(node_class):
    graph = {"entry": "n", "nodes": [node("n", node_class.name)], "edges": []}
    flow, problems = compile_graph(graph, node_registry([node_class]))
    assert flow is not None, problems
    return flow


async def test_a_run_is_bounded_in_time_and_in_commands():
    slow = await dry_run(_compiled(Sleeper), services=DryServices(), time_limit_s=0.2)
    assert slow.outcome == "time_limit" and slow.last_node == "n"
    assert slow.error == "the dry run was stopped after 0.2 s"
    chatty = await dry_run(_compiled(Chatter), services=DryServices())
    assert chatty.outcome == "error"
    assert chatty.error == f"the dry run stopped after {MAX_COMMANDS} AGI commands"
    assert len(chatty.commands) == MAX_COMMANDS
    assert chatty.commands[-1] == "VERBOSE again 1"
