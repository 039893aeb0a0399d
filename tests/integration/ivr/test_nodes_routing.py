"""The routing nodes — transfer and queue — on simulated calls through the real FastAGI server.

Calls come in through the PBX simulator (``ivr_call(..., simulator=SimConfig(...))``), so the
``EXEC Dial`` and ``EXEC Queue`` the nodes send run the simulator's Dial and app_queue model:
its dialplan decides who answers, is busy or rings forever, its queues who waits. Each
outcome's exit is wired to its own hangup node, so the path says which exit was taken.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest
from _ivr_db import graph

from callcore.clock import Clock
from callcore.ivr import CallContext, FlowEngine, Outcome, compile_graph
from callcore.ivr.dry_services import DryServices
from callcore.sim.agi_channel import Caller, CallRecord
from callcore.sim.dialplan import DEFAULT_DIALPLAN
from callcore.sim.fixtures import serving_agi_routes
from callcore.sim.ivr_fixtures import IvrRun, compiled, node_registry
from callcore.sim.pbx import CAPTURE_QUEUES, MemberConfig, QueueConfig
from callcore.sim.run import SimConfig, Simulator

PHONES = """
[callcore-phones]
exten => 201,1,Answer()
 same => n,Wait(2)
 same => n,Hangup()
exten => 202,1,Busy(5)
exten => 203,1,Ringing()
 same => n,Wait(120)
exten => 204,1,Congestion(5)

[callcore-queues]
exten => support,1,Answer()
 same => n,Wait(1)
 same => n,Hangup()
"""
PBX = SimConfig(dialplan=DEFAULT_DIALPLAN + PHONES)

TRANSFER_EXITS = ("no_answer", "busy", "failed")


def transfer_flow(params: Mapping[str, Any], *, refused: bool = False) -> dict[str, Any]:
    """answer → transfer; ``answered`` left unwired (the call ends), the others to hangups."""
    exits = (*TRANSFER_EXITS, "refused") if refused else TRANSFER_EXITS
    return graph(
        "start",
        [
            ("start", "answer", {}),
            ("transfer", "transfer", params),
            *((f"on_{name}", "hangup", {}) for name in exits),
        ],
        [("start", "next", "transfer"), *(("transfer", name, f"on_{name}") for name in exits)],
    )


def dials(record: CallRecord) -> list[str]:
    """The Dial arguments the flow sent."""
    return [c[2] for c in record.commands if c[:2] == ("EXEC", "Dial")]


# -- transfer ----------------------------------------------------------------------------------


async def test_answered_transfer_bridges_then_ends_the_call(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "extension", "extension": "201", "timeout_s": 10}),
        simulator=PBX,
    )
    assert run.result.outcome is Outcome.COMPLETED
    assert run.result.path == ("start", "transfer")
    assert dials(run.record) == ["Local/201@callcore-phones,10,g"]
    assert run.record.variables["DIALSTATUS"] == "ANSWER"
    assert int(run.record.variables["ANSWEREDTIME"]) >= 2  # the callee talked for 2 s


@pytest.mark.parametrize(
    ("extension", "exit_name", "status"),
    [("202", "busy", "BUSY"), ("203", "no_answer", "NOANSWER"), ("204", "failed", "CONGESTION")],
)
async def test_transfer_outcomes_take_their_exits(
    ivr_call, extension: str, exit_name: str, status: str
) -> None:
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "extension", "extension": extension, "timeout_s": 5}),
        simulator=PBX,
    )
    assert run.result.path == ("start", "transfer", f"on_{exit_name}")
    assert run.result.outcome is Outcome.COMPLETED
    assert run.record.variables["DIALSTATUS"] == status


async def test_no_answer_waits_the_ring_timeout(ivr_call, sim_clock: Clock) -> None:
    started = sim_clock.monotonic()
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "extension", "extension": "203", "timeout_s": 7}), simulator=PBX
    )
    assert run.result.path[-1] == "on_no_answer"
    # the 7 s ring timeout, not the callee's 120 s of ringing (loose: 50x magnifies jitter)
    assert 7.0 <= sim_clock.monotonic() - started < 60.0


async def test_caller_hanging_up_while_it_rings_ends_the_call_in_the_transfer(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "extension", "extension": "203", "timeout_s": 30}),
        Caller(hangup_at=3.0),
        simulator=PBX,
    )
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "transfer"
    assert run.record.variables["DIALSTATUS"] == "CANCEL"
    assert run.record.ended_by == "hangup"


async def test_queue_transfer_dials_the_queue_extension(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "queue", "queue": "support"}), simulator=PBX
    )
    assert dials(run.record) == ["Local/support@callcore-queues,30,g"]
    assert run.result.path == ("start", "transfer")  # answered: the call ends


async def test_agent_transfer_dials_the_agents_phone(ivr_call) -> None:
    services = DryServices(agents={7: "PJSIP/alice"})
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "agent", "agent": 7, "timeout_s": 20}),
        services=services,
        simulator=PBX,
    )
    assert dials(run.record) == ["PJSIP/alice,20,g"]
    # the simulator has no PJSIP endpoints: Dial answers CHANUNAVAIL, as for an unknown one
    assert run.record.variables["DIALSTATUS"] == "CHANUNAVAIL"
    assert run.result.path[-1] == "on_failed"


async def test_agent_without_a_phone_fails_without_dialling(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "agent", "agent": 8}), services=DryServices(), simulator=PBX
    )
    assert run.result.path[-1] == "on_failed"
    assert dials(run.record) == []


async def test_external_transfer_dials_the_granted_route(ivr_call) -> None:
    services = DryServices()
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "external", "number": "+33123456789"}, refused=True),
        services=services,
        simulator=PBX,
    )
    assert dials(run.record) == ["PJSIP/+33123456789@dry-run,30,g"]
    assert [e.as_json() for e in services.effects] == [
        {"kind": "external_route", "number": "+33123456789", "trunk": "dry-run", "refusal": None}
    ]
    assert run.result.path[-1] == "on_failed"  # CHANUNAVAIL: no PJSIP in the simulator


async def test_refused_external_route_takes_refused_without_dialling(ivr_call) -> None:
    services = DryServices(refused_numbers={"+33123456789": "no trunk allows +33123456789"})
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "external", "number": "+33123456789"}, refused=True),
        services=services,
        simulator=PBX,
    )
    assert run.result.path == ("start", "transfer", "on_refused")
    assert dials(run.record) == []


async def test_number_phonenumbers_rejects_is_refused_before_any_route(ivr_call) -> None:
    services = DryServices()
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "external", "number": "+3312"}, refused=True),
        services=services,
        simulator=PBX,
    )
    assert run.result.path[-1] == "on_refused"
    assert services.effects == [] and dials(run.record) == []


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "extension", "extension": "201,20,L(1000)"},
        {"kind": "extension", "extension": "201|202"},
        {"kind": "extension", "extension": "201&PJSIP/evil"},
        {"kind": "extension", "extension": "201\r\nHANGUP"},
        {"kind": "extension", "extension": "201\n"},
        {"kind": "queue", "queue": "support,,,,1"},
        {"kind": "queue", "queue": "support&sales"},
        {"kind": "external", "number": "+33123456789,g"},
        {"kind": "external", "number": "+33123456789&PJSIP/+1900"},
        {"kind": "external", "number": "+33123456789|x"},
        {"kind": "external", "number": "+33123456789\r\n"},
        {"kind": "extension"},
        {"kind": "agent", "agent": 0},
    ],
)
def test_smuggled_dial_options_are_refused_by_the_schema(params: dict[str, Any]) -> None:
    flow, problems = compile_graph(
        transfer_flow(params, refused=params["kind"] == "external"), node_registry()
    )
    assert flow is None
    assert {p.code for p in problems} == {"invalid_params"}
    assert all(p.node == "transfer" for p in problems)


@pytest.mark.parametrize("endpoint", ["PJSIP/alice,,L(1)", "PJSIP/alice&PJSIP/bob", "PJSIP/a\nb"])
async def test_a_dial_string_from_the_services_is_checked_before_exec(
    ivr_call, endpoint: str
) -> None:
    run: IvrRun = await ivr_call(
        transfer_flow({"kind": "agent", "agent": 7}),
        services=DryServices(agents={7: endpoint}),
        simulator=PBX,
    )
    assert run.result.path[-1] == "on_failed"
    assert dials(run.record) == []


def test_exits_depend_on_the_kind() -> None:
    registry = node_registry()
    transfer = registry["transfer"]
    assert transfer({"kind": "external", "number": "+33123456789"}).exits() == (
        "answered",
        "no_answer",
        "busy",
        "failed",
        "refused",
    )
    assert "refused" not in transfer({"kind": "extension", "extension": "1"}).exits()
    assert transfer({"kind": "queue", "queue": "q"}).optional_exits() == {"answered"}


# -- queue -------------------------------------------------------------------------------------

QUEUE_EXITS = ("timeout", "full", "empty")


def queue_flow(params: Mapping[str, Any]) -> dict[str, Any]:
    return graph(
        "start",
        [
            ("start", "answer", {}),
            ("queue", "queue", params),
            *((f"on_{name}", "hangup", {}) for name in QUEUE_EXITS),
        ],
        [("start", "next", "queue"), *(("queue", name, f"on_{name}") for name in QUEUE_EXITS)],
    )


def queue_pbx(*queues: QueueConfig) -> SimConfig:
    return SimConfig(queues=(*CAPTURE_QUEUES, *queues))


def queues_run(record: CallRecord) -> list[str]:
    return [c[2] for c in record.commands if c[:2] == ("EXEC", "Queue")]


async def test_caller_connected_to_an_agent_takes_answered(ivr_call) -> None:
    # "support": agent1 rings 1.5 s, answers, talks 4 s and hangs up (the captures' dialplan)
    run: IvrRun = await ivr_call(queue_flow({"queue": "support"}), simulator=queue_pbx())
    assert run.result.path == ("start", "queue")
    assert run.result.outcome is Outcome.COMPLETED
    assert queues_run(run.record) == ["support,,,,300"]
    assert run.record.variables["QUEUESTATUS"] == ""  # app_queue sets none for a connected call
    assert run.record.variables["ABANDONED"] == ""
    assert run.record.duration >= 5.5


async def test_waiting_too_long_takes_timeout(ivr_call, sim_clock: Clock) -> None:
    # "sales": agent2 never answers; ring 3 s, retry 1 s, checked between attempts
    started = sim_clock.monotonic()
    run: IvrRun = await ivr_call(
        queue_flow({"queue": "sales", "max_wait_s": 10}), simulator=queue_pbx()
    )
    assert run.result.path[-1] == "on_timeout"
    assert run.record.variables["QUEUESTATUS"] == "TIMEOUT"
    # the 10 s wait, then the attempt under way (loose: 50x magnifies jitter)
    assert 10.0 <= sim_clock.monotonic() - started < 60.0


async def test_a_queue_nobody_can_answer_takes_empty(ivr_call) -> None:
    nobody = QueueConfig("nobody", joinempty=False)
    run: IvrRun = await ivr_call(queue_flow({"queue": "nobody"}), simulator=queue_pbx(nobody))
    assert run.result.path[-1] == "on_empty"
    assert run.record.variables["QUEUESTATUS"] == "JOINEMPTY"


async def test_members_all_paused_while_waiting_takes_empty(ivr_call) -> None:
    leaving = QueueConfig("leaving", leavewhenempty=True)
    run: IvrRun = await ivr_call(queue_flow({"queue": "leaving"}), simulator=queue_pbx(leaving))
    assert run.result.path[-1] == "on_empty"
    assert run.record.variables["QUEUESTATUS"] == "LEAVEEMPTY"


async def test_no_such_queue_takes_empty(ivr_call) -> None:
    run: IvrRun = await ivr_call(queue_flow({"queue": "missing"}), simulator=queue_pbx())
    assert run.result.path[-1] == "on_empty"
    assert run.record.variables["QUEUESTATUS"] == "UNKNOWN"


async def test_caller_hanging_up_while_waiting_ends_the_call_in_the_queue(ivr_call) -> None:
    empty = QueueConfig("quiet", retry=1.0)  # joinempty: the caller waits, nobody to ring
    run: IvrRun = await ivr_call(
        queue_flow({"queue": "quiet"}), Caller(hangup_at=4.0), simulator=queue_pbx(empty)
    )
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "queue"
    assert run.record.variables["ABANDONED"] == "TRUE"


async def test_caller_hanging_up_while_a_member_rings_ends_the_ring_at_once(
    ivr_call, sim_clock: Clock
) -> None:
    # agent2 never answers; each ring would last 60 s: the hang-up 4 s in must not wait for it
    ringing = QueueConfig(
        "ringing", timeout=60.0, members=(MemberConfig("Local/agent2@agents/n", "Two"),)
    )
    started = sim_clock.monotonic()
    run: IvrRun = await ivr_call(
        queue_flow({"queue": "ringing"}), Caller(hangup_at=4.0), simulator=queue_pbx(ringing)
    )
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "queue"
    assert run.record.variables["ABANDONED"] == "TRUE"
    assert sim_clock.monotonic() - started < 30.0


async def test_announce_position_with_nobody_ahead(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        queue_flow({"queue": "support", "announce_position": True}), simulator=queue_pbx()
    )
    assert ("GET", "VARIABLE", "QUEUE_WAITING_COUNT(support)") in run.record.commands
    assert ("STREAM", "FILE", "queue-youarenext", "") in run.record.commands
    assert run.result.path == ("start", "queue")


async def test_second_caller_hears_the_count_and_finds_the_queue_full(sim_clock: Clock) -> None:
    """Two calls into one simulator: the first waits in a one-place queue, the second is told
    one caller is ahead, then cannot join (FULL)."""
    tiny = QueueConfig("tiny", maxlen=1, members=(MemberConfig("Local/agent2@agents/n", "Two"),))
    flow = compiled(queue_flow({"queue": "tiny", "announce_position": True}), node_registry())
    results: dict[str, Any] = {}

    async def handler(session: Any, params: Mapping[str, str]) -> None:
        ctx = CallContext(session, DryServices(), uniqueid=session.uniqueid)
        results[session.headers.callerid] = await FlowEngine().run(ctx, flow)

    async with serving_agi_routes({"inbound/{did}": handler}, sim_clock) as server:
        config = SimConfig(agi_address=("127.0.0.1", server.port), queues=(tiny,))
        async with Simulator(config, clock=sim_clock) as sim:
            first = await sim.inbound_call("100", Caller(number="5550001", hangup_at=40.0))
            await asyncio.sleep(0.2)  # 10 simulated seconds: the first caller waits
            second = await sim.inbound_call("100", Caller(number="5550002"))
            second_record = await second.wait()
            assert second_record is not None
            await first.wait()
    assert results["5550002"].path[-1] == "on_full"
    assert second_record.variables["QUEUESTATUS"] == "FULL"
    commands = second_record.commands
    assert ("STREAM", "FILE", "queue-thereare", "") in commands
    assert ("SAY", "NUMBER", "1", "") in commands
    assert results["5550001"].outcome is Outcome.HANGUP


@pytest.mark.parametrize("name", ["support,c", "support&sales", "Support", "q\r\nHANGUP", ""])
def test_queue_names_with_separators_are_refused(name: str) -> None:
    flow, problems = compile_graph(queue_flow({"queue": name}), node_registry())
    assert flow is None
    assert [p.field for p in problems] == ["params/queue"]
