"""The nodes that decide and remember — calendar, condition, set_variable, language, goto — on
simulated calls through the real FastAGI server.

Most run through ``ivr_call``; the emergency override and the jump to another flow need the
stored flows, so those go through the IVR service and its ``flow/{flow_id}`` route on a fresh
PostgreSQL database.
"""

from __future__ import annotations

import types
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from _ivr_db import add_flow, graph, ivr_calls, publish

from callcore.agi.server import FastAGIServer
from callcore.clock import Clock
from callcore.config import AgiSettings
from callcore.ivr import Outcome
from callcore.ivr.dry_services import DryServices
from callcore.ivr.service import IvrService
from callcore.plugin_manager import PluginHost
from callcore.sim.agi_channel import Caller, CallRecord, run_agi_call
from callcore.sim.ivr_fixtures import IvrRun, node_registry

OFFICE = {"hours": [{"days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}]}
TUESDAY_10H = datetime(2025, 2, 4, 9, 0, tzinfo=UTC)  # 10:00 in Paris
TUESDAY_20H = datetime(2025, 2, 4, 19, 0, tzinfo=UTC)
BASTILLE_DAY = datetime(2025, 7, 14, 8, 0, tzinfo=UTC)


def single(node_type: str, params: Mapping[str, Any], exits: Iterable[str]) -> dict[str, Any]:
    """A flow of one node under test, ``n``, each exit leading to a hangup node ``on_<exit>``."""
    exits = list(exits)
    return graph(
        "n",
        [("n", node_type, params), *((f"on_{e}", "hangup", {}) for e in exits)],
        [("n", e, f"on_{e}") for e in exits],
    )


def played(record: CallRecord) -> list[str]:
    return [command[2] for command in record.commands if command[:2] == ("STREAM", "FILE")]


# -- a caller already gone ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node_type", "params", "exit_name"),
    [
        ("calendar", OFFICE, "open"),
        ("set_variable", {"name": "note", "value": "left", "channel": True}, "next"),
        (
            "condition",
            {"rules": [{"variable": "caller_id", "operator": "starts_with", "value": "06"}]},
            "true",
        ),
        ("language", {"language": "en"}, "next"),
    ],
)
async def test_deciding_nodes_run_on_after_a_hang_up_and_the_next_prompt_ends_the_call(
    ivr_call, node_type: str, params: dict[str, Any], exit_name: str
) -> None:
    """Nodes that need no live channel still run on a dead one (what a channel variable set
    then is, Asterisk allows: agi-hup*.txt), so the call ends at the first node that needs the
    caller — here the hangup node behind the exit taken — without it sending anything. A first
    node sets a channel variable: its reply comes after the ``HANGUP`` line."""
    exits = node_registry()[node_type](params, "n").exits()
    flow = graph(
        "first",
        [
            ("first", "set_variable", {"name": "seen", "value": "1", "channel": True}),
            ("n", node_type, params),
            *((f"on_{e}", "hangup", {}) for e in exits),
        ],
        [("first", "next", "n"), *(("n", e, f"on_{e}") for e in exits)],
    )
    run: IvrRun = await ivr_call(
        flow, Caller(number="0612345678", hangup_at=0.0), services=DryServices(at=TUESDAY_10H)
    )
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.path == ("first", "n", f"on_{exit_name}")
    assert run.result.last_node == f"on_{exit_name}"
    assert ("HANGUP",) not in run.record.commands


# -- calendar --------------------------------------------------------------------------------

CALENDAR_EXITS = ["open", "closed", "holiday"]


@pytest.mark.parametrize(
    ("at", "exit_name"),
    [(TUESDAY_10H, "open"), (TUESDAY_20H, "closed"), (BASTILLE_DAY, "holiday")],
)
async def test_the_calendar_branches_on_the_time_of_the_call(
    ivr_call, at: datetime, exit_name: str
) -> None:
    run: IvrRun = await ivr_call(
        single("calendar", OFFICE, CALENDAR_EXITS), Caller(), services=DryServices(at=at)
    )
    assert run.result.path == ("n", f"on_{exit_name}")
    assert run.record.commands == (("HANGUP",),)  # deciding sends nothing to Asterisk


async def test_without_closed_holidays_the_calendar_has_no_holiday_exit(ivr_call) -> None:
    params = {**OFFICE, "holidays_closed": False}
    run: IvrRun = await ivr_call(
        single("calendar", params, ["open", "closed"]),
        Caller(),
        services=DryServices(at=BASTILLE_DAY),
    )
    assert run.result.path == ("n", "on_open")


# -- set_variable ----------------------------------------------------------------------------


async def test_set_variable_expands_its_template(ivr_call) -> None:
    params = {"name": "ticket", "value": "{caller_id}-{queue}-{unset}"}
    run: IvrRun = await ivr_call(
        single("set_variable", params, ["next"]),
        Caller(number="0612345678"),
        variables={"queue": "sales"},
    )
    assert run.result.path == ("n", "on_next")
    assert run.context.variables["ticket"] == "0612345678-sales-"
    assert run.record.commands == (("HANGUP",),)  # nothing on the channel unless asked


async def test_set_variable_on_the_channel_is_prefixed_and_cleaned(ivr_call) -> None:
    params = {"name": "note", "value": "{crm_note}", "channel": True}
    run: IvrRun = await ivr_call(
        single("set_variable", params, ["next"]),
        Caller(),
        variables={"crm_note": "VIP\r\nHANGUP\tcustomer"},
    )
    assert run.context.variables["note"] == "VIP\r\nHANGUP\tcustomer"
    assert run.record.commands[0] == ("SET", "VARIABLE", "CALLCORE_NOTE", "VIP  HANGUP customer")
    assert run.record.variables["CALLCORE_NOTE"] == "VIP  HANGUP customer"
    assert run.result.outcome is Outcome.COMPLETED


# -- condition -------------------------------------------------------------------------------


def condition(*rules: tuple[str, str, str], match: str = "all") -> dict[str, Any]:
    return single(
        "condition",
        {
            "match": match,
            "rules": [{"variable": v, "operator": o, "value": x} for v, o, x in rules],
        },
        ["true", "false"],
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (("caller_id", "starts_with", "06"), "true"),
        (("caller_id", "starts_with", "07"), "false"),
        (("caller_id", "equals", "0612345678"), "true"),
        (("tier", "equals", "gold"), "true"),
        (("tier", "not_equals", "gold"), "false"),
        (("tier", "equals", "{wanted}"), "true"),  # two variables compared
        (("balance", "greater_than", "100"), "true"),
        (("balance", "greater_than", "250.5"), "false"),
        (("balance", "less_than", "1e3"), "true"),
        (("tier", "less_than", "5"), "false"),  # not a number: false either way
        (("tier", "greater_than", "5"), "false"),
        (("caller_id", "matches", "^0[67][0-9]{8}$"), "true"),
        (("caller_id", "matches", "^\\+33"), "false"),
        (("tier", "matches", "{wanted}"), "false"),  # a pattern is never expanded
        (("missing", "equals", ""), "true"),  # an unset variable is empty
        (("language", "equals", "fr"), "true"),
        (("did", "equals", "+33123456789"), "true"),
    ],
)
async def test_each_operator(ivr_call, rule: tuple[str, str, str], expected: str) -> None:
    run: IvrRun = await ivr_call(
        condition(rule),
        Caller(number="0612345678"),
        variables={"tier": "gold", "wanted": "gold", "balance": "250.50"},
        did="+33123456789",
    )
    assert run.result.path == ("n", f"on_{expected}")


async def test_all_rules_or_any_rule(ivr_call) -> None:
    rules = (("tier", "equals", "gold"), ("balance", "greater_than", "1000"))
    variables = {"tier": "gold", "balance": "10"}
    every: IvrRun = await ivr_call(condition(*rules), Caller(), variables=variables)
    some: IvrRun = await ivr_call(condition(*rules, match="any"), Caller(), variables=variables)
    assert every.result.path == ("n", "on_false")
    assert some.result.path == ("n", "on_true")


async def test_a_value_too_long_for_a_pattern_does_not_match(ivr_call) -> None:
    rule = ("blob", "matches", "x")
    short: IvrRun = await ivr_call(condition(rule), Caller(), variables={"blob": "x" * 100})
    long: IvrRun = await ivr_call(condition(rule), Caller(), variables={"blob": "x" * 101})
    assert short.result.path == ("n", "on_true")
    assert long.result.path == ("n", "on_false")


# -- language --------------------------------------------------------------------------------


async def test_language_switches_the_call_and_the_channel(ivr_call) -> None:
    flow = graph(
        "lang",
        [
            ("lang", "language", {"language": "en"}),
            ("remember", "set_variable", {"name": "spoken", "value": "{language}"}),
            ("say", "play", {"sound": "hello-world"}),
            ("bye", "hangup", {}),
        ],
        [("lang", "next", "remember"), ("remember", "next", "say"), ("say", "next", "bye")],
    )
    run: IvrRun = await ivr_call(flow, Caller(), language="fr")
    assert run.context.language == "en"
    assert run.context.variables["spoken"] == "en"
    assert run.record.commands[:2] == (
        ("SET", "VARIABLE", "CHANNEL(language)", "en"),
        ("STREAM", "FILE", "hello-world", ""),
    )
    assert run.record.variables["CHANNEL(language)"] == "en"


# -- goto and the emergency override, through the stored flows ---------------------------------


@attrs.define
class StoredFlows:
    """The IVR service on a fresh database behind the built-in ``flow/{flow_id}`` route."""

    pool: Any
    clock: Clock
    server: FastAGIServer
    services: types.SimpleNamespace

    def at(self, when: datetime) -> None:
        self.services.ivr = IvrService(self.pool, node_registry(), DryServices(at=when))

    async def call(self, flow_id: int, caller: Caller | None = None) -> CallRecord:
        address = ("127.0.0.1", self.server.port)
        return await run_agi_call(address, f"flow/{flow_id}", caller, clock=self.clock)


@pytest.fixture
async def stored(db_pool, sim_clock) -> AsyncIterator[StoredFlows]:
    host = PluginHost()
    host.load_builtins()
    holder = types.SimpleNamespace()
    server = FastAGIServer(
        host.agi_routes(),
        AgiSettings(),
        clock=sim_clock,
        port=0,  # type: ignore[arg-type]
        services=holder,
    )
    flows = StoredFlows(db_pool, sim_clock, server, holder)
    flows.at(TUESDAY_10H)
    await server.start()
    try:
        yield flows
    finally:
        await server.close(drain_timeout=5.0)


def say(sound: str) -> dict[str, Any]:
    return graph(
        "say", [("say", "play", {"sound": sound}), ("bye", "hangup", {})], [("say", "next", "bye")]
    )


async def test_goto_continues_in_the_target_flows_published_version(stored) -> None:
    target = await add_flow(stored.pool, "target", say("target-v1"))
    await publish(stored.pool, target, say("target-v2"))
    source = await add_flow(
        stored.pool,
        "source",
        graph(
            "hello",
            [("hello", "play", {"sound": "hello-world"}), ("jump", "goto", {"flow_id": target})],
            [("hello", "next", "jump")],
        ),
    )

    record = await stored.call(source)

    assert played(record) == ["hello-world", "target-v2"]
    [row] = await ivr_calls(stored.pool)
    assert (row["flow_id"], row["flow_version"], row["outcome"]) == (target, 2, "completed")
    assert row["path"] == ["hello", "jump", "say", "bye"]


async def test_goto_a_flow_with_no_published_version_ends_in_an_error_naming_it(ivr_call) -> None:
    run: IvrRun = await ivr_call(graph("jump", [("jump", "goto", {"flow_id": 41})]), Caller())
    assert run.result.outcome is Outcome.ERROR
    assert run.result.last_node == "jump"
    assert run.result.error == "flow 41 has no published version"


async def test_a_flow_forced_open_takes_the_calendars_open_exit_out_of_hours(stored) -> None:
    flow = graph(
        "hours",
        [
            ("hours", "calendar", OFFICE),
            ("welcome", "play", {"sound": "welcome"}),
            ("shut", "play", {"sound": "closed"}),
            ("feast", "play", {"sound": "holiday"}),
            ("bye", "hangup", {}),
        ],
        [
            ("hours", "open", "welcome"),
            ("hours", "closed", "shut"),
            ("hours", "holiday", "feast"),
            *((node, "next", "bye") for node in ("welcome", "shut", "feast")),
        ],
    )
    flow_id = await add_flow(stored.pool, "office", flow)
    stored.at(TUESDAY_20H)
    assert played(await stored.call(flow_id)) == ["closed"]

    async with stored.pool.acquire() as conn:
        await conn.execute("UPDATE flows SET emergency_mode = 'open' WHERE id = $1", flow_id)
    assert played(await stored.call(flow_id)) == ["welcome"]
    stored.at(BASTILLE_DAY)
    assert played(await stored.call(flow_id)) == ["welcome"]
