"""The FastAGI server over real loopback sockets, against the simulated Asterisk channel."""

import asyncio
import contextlib
import logging
import socket
import time
import types

import pytest

import callcore
from callcore.agi import (
    NO_TIMEOUT,
    AGIError,
    AGIInjectionError,
    AgiRoute,
    AGISession,
    ChannelStatus,
    DataResult,
    FastAGIServer,
    RecordResult,
    StreamResult,
)
from callcore.agi.errors import AGIConnectionClosed, AGITimeout
from callcore.agi.session import SessionState
from callcore.clock import ScaledClock
from callcore.config import AgiSettings
from callcore.plugin_manager import PluginHost
from callcore.sim.agi_channel import AGIChannel, Caller, Press, PressDuring, run_agi_call

FACTOR = 20.0
"""Simulated seconds per wall second: a 2 s prompt takes 0.1 s of the test's time."""


@contextlib.asynccontextmanager
async def running_server(routes, clock, *, header_timeout=20.0, **settings):
    """A started server whose routes come through ``register_agi_routes``, as a plugin's do.

    ``header_timeout`` is a wall second by default: a garbage collection in the test process
    can hold the loop for a tenth of one, and only the header-timeout test wants it shorter.

    On exit it drains and checks nothing leaked: no open session, no open connection.
    """
    plugin = types.ModuleType("test_routes")

    @callcore.hookimpl
    def register_agi_routes(registry):
        for pattern, handler in routes.items():
            registry.add(AgiRoute(pattern, handler))

    plugin.register_agi_routes = register_agi_routes
    host = PluginHost()
    assert host.register(plugin, "test_routes")
    registry = host.agi_routes()
    assert host.failures == ()
    server = FastAGIServer(
        registry, AgiSettings(**settings), clock=clock, port=0, header_timeout=header_timeout
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close(drain_timeout=5.0)
        assert server.stats.open_sessions == 0
        assert server.stats.open_connections == 0


def address(server):
    return ("127.0.0.1", server.port)


@pytest.fixture
def clock():
    return ScaledClock(FACTOR)


async def test_routing_by_script_path_with_params_and_query(clock):
    seen = {}

    async def inbound(session: AGISession, params):
        seen["inbound"] = (dict(params), session.headers.query, session.headers.args)
        await session.set_variable("CALLCORE_STATUS", "OK")

    async def special(session, params):
        seen["special"] = dict(params)

    async def flow(session, params):
        seen["flow"] = dict(params)

    routes = {"inbound/{did}": inbound, "inbound/special": special, "flow/{flow_id}": flow}
    async with running_server(routes, clock) as server:
        record = await run_agi_call(
            address(server), "inbound/0612345678?lang=fr", clock=clock, args=("a b", "")
        )
        await run_agi_call(address(server), "inbound/special", clock=clock)
        await run_agi_call(address(server), "flow/42", clock=clock)
        assert server.stats.sessions_total == 3
    assert seen["inbound"] == ({"did": "0612345678"}, {"lang": ("fr",)}, ("a b", ""))
    assert seen["special"] == {}
    assert seen["flow"] == {"flow_id": "42"}
    assert record.variables["CALLCORE_STATUS"] == "OK"
    assert record.agi_status == "SUCCESS"
    assert record.ended_by == "server"


async def test_the_typed_session_api_against_the_simulated_channel(clock):
    results = {}

    async def tour(session: AGISession, params):
        await session.answer()
        results["status"] = await session.channel_status()
        results["other"] = await session.channel_status("Local/nonexistent-00000000;1")
        results["stream"] = await session.stream_file("menu", "0123456789#*")
        results["missing"] = await session.stream_file("no-such-file", "#")
        results["data"] = await session.get_data("enter-code", 2000, 4)
        results["data_timeout"] = await session.get_data("enter-code", 1000, 3)
        results["digit"] = await session.wait_for_digit(3000)
        results["no_digit"] = await session.wait_for_digit(500)
        results["say"] = await session.say_digits("123", "#")
        await session.set_variable("FOO", 'hello "world" \\ back')
        results["foo"] = await session.get_variable("FOO")
        results["unset"] = await session.get_variable("NOT_SET_ANYWHERE")
        results["full"] = await session.get_full_variable("${FOO}-${CHANNEL}")
        results["exec"] = await session.exec("Set", "EXECVAR=by exec")
        results["execvar"] = await session.get_variable("EXECVAR")
        await session.gosub("agi-sub", "s", 1, "myarg")
        results["record"] = await session.record_file("/tmp/rec", "wav", "#", 2000, beep=True)
        await session.set_music(True, "default")
        await session.set_music(False)
        await session.verbose("hello from callcore", 1)
        await session.database_put("callcore", "key", "two words")
        results["db"] = await session.database_get("callcore", "key")
        await session.database_del("callcore", "key")
        results["db_gone"] = await session.database_get("callcore", "key")
        await session.noop("bye")

    caller = Caller(
        media={"menu": 3.0, "enter-code": 1.0},
        missing={"no-such-file"},
        dtmf=(
            PressDuring("menu", "5", after=1.14),
            PressDuring("enter-code", "1234", after=0.5),
            Press("7", at=100.0),  # pressed long after: lost while AGI is idle
        ),
    )
    channel = AGIChannel("tour", caller, clock=clock)
    async with running_server({"tour": tour}, clock) as server:
        record = await channel.run(*address(server))
    assert results["status"] is ChannelStatus.UP
    assert results["other"] is None
    assert results["stream"] == StreamResult("5", 9120)
    assert results["missing"] == StreamResult(None, 0, failed=True)
    assert results["data"] == DataResult("1234", timed_out=False)
    assert results["data_timeout"] == DataResult("", timed_out=True)
    assert results["digit"] is None  # the second PressDuring for enter-code was consumed
    assert results["no_digit"] is None
    assert results["say"] is None
    assert results["foo"] == 'hello "world" \\ back'
    assert results["unset"] is None
    assert results["full"] == f'hello "world" \\ back-{channel.channel}'
    assert results["exec"] == 0
    assert results["execvar"] == "by exec"
    assert results["record"] == RecordResult(None, 0, "timeout")
    assert results["db"] == "two words"
    assert results["db_gone"] is None
    assert record.commands[1] == ("CHANNEL", "STATUS")
    assert ("SET", "VARIABLE", "FOO", 'hello "world" \\ back') in record.commands
    assert record.recordings == ("/tmp/rec.wav",)
    assert record.agi_status == "SUCCESS"


async def test_unknown_route_sets_noroute_then_closes(clock):
    async def never(session, params):
        raise AssertionError("not this route")

    async with running_server({"known/{x}": never}, clock) as server:
        record = await run_agi_call(address(server), "unknown/thing", clock=clock)
        assert server.stats.no_route == 1
        assert server.stats.sessions_total == 0
    assert record.commands == (("SET", "VARIABLE", "CALLCORE_STATUS", "NOROUTE"),)
    assert record.variables["CALLCORE_STATUS"] == "NOROUTE"
    assert record.agi_status == "SUCCESS"  # why the variable is needed


async def test_over_the_session_cap_sets_overload(clock):
    release, started = asyncio.Event(), asyncio.Event()

    async def hold(session, params):
        started.set()
        await release.wait()
        await session.set_variable("CALLCORE_STATUS", "OK")

    async with running_server({"hold": hold}, clock, max_sessions=1) as server:
        first = asyncio.create_task(run_agi_call(address(server), "hold", clock=clock))
        await asyncio.wait_for(started.wait(), 5)
        second = await asyncio.wait_for(run_agi_call(address(server), "hold", clock=clock), 5)
        release.set()
        first = await asyncio.wait_for(first, 5)
        assert server.stats.overloaded == 1
    assert second.variables["CALLCORE_STATUS"] == "OVERLOAD"
    assert first.variables["CALLCORE_STATUS"] == "OK"


async def test_client_allowlist(clock, caplog):
    async def ok(session, params):
        await session.set_variable("CALLCORE_STATUS", "OK")

    caplog.set_level(logging.WARNING, logger="callcore.agi")
    async with running_server({"ok": ok}, clock, allowed_clients=("10.0.0.0/8",)) as server:
        record = await asyncio.wait_for(run_agi_call(address(server), "ok", clock=clock), 5)
        assert server.stats.refused_clients == 1
    assert record.commands == ()
    assert "CALLCORE_STATUS" not in record.variables
    assert "AGI client refused peer=127.0.0.1:" in caplog.text

    async with running_server({"ok": ok}, clock, allowed_clients=("127.0.0.1/32",)) as server:
        record = await asyncio.wait_for(run_agi_call(address(server), "ok", clock=clock), 5)
    assert record.variables["CALLCORE_STATUS"] == "OK"


async def _raw_client(server, payload, *, then_close=True):
    reader, writer = await asyncio.open_connection(*address(server))
    writer.write(payload)
    if then_close:
        writer.close()
    try:
        data = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        data = b""  # aborted by the server: closed all the same
    writer.close()
    return data


async def test_bad_clients_do_not_disturb_a_concurrent_good_session(clock, caplog):
    async def ivr(session, params):
        await session.answer()
        result = await session.stream_file("long-prompt", "#")
        await session.set_variable("CALLCORE_STATUS", f"OK {result.endpos}")

    caplog.set_level(logging.WARNING, logger="callcore.agi")
    async with running_server({"ivr": ivr}, clock, header_timeout=1.0) as server:
        good = asyncio.create_task(
            run_agi_call(address(server), "ivr", Caller(media={"long-prompt": 4.0}), clock=clock)
        )
        bad = await asyncio.gather(
            _raw_client(server, b"agi_network: yes\nagi_network_script: ivr\n"),  # cut short
            _raw_client(server, b"", then_close=False),  # silent: dropped by header_timeout
            _raw_client(server, b"agi_x: " + b"x" * 1_000_000 + b"\n\n", then_close=False),
            _raw_client(server, bytes(range(256)) * 64, then_close=False),  # binary garbage
        )
        record = await asyncio.wait_for(good, 5)
        stats = server.stats
    assert bad == [b"", b"", b"", b""]
    assert record.variables["CALLCORE_STATUS"] == "OK 32000"
    assert stats.sessions_total == 1
    assert stats.timeouts == 1
    assert stats.errors == 3
    assert "connection closed in the header block after 2 lines" in caplog.text
    assert "no complete header block in time" in caplog.text
    assert "longer than" in caplog.text


@pytest.mark.parametrize("error", [RuntimeError, TimeoutError])
async def test_handler_exception_is_logged_and_reported_to_the_dialplan(clock, caplog, error):
    async def broken(session, params):
        await session.answer()
        raise error("boom in the handler")

    caplog.set_level(logging.ERROR, logger="callcore.agi")
    channel = AGIChannel("broken", clock=clock)
    async with running_server({"broken": broken}, clock) as server:
        record = await channel.run(*address(server))
        assert server.stats.errors == 1
    assert record.variables["CALLCORE_STATUS"] == "ERROR"
    [message] = [r for r in caplog.records if "AGI handler failed" in r.getMessage()]
    assert channel.channel in message.getMessage()
    assert channel.uniqueid in message.getMessage()
    assert message.uniqueid == channel.uniqueid
    assert "boom in the handler" in message.getMessage()


async def test_graceful_drain_lets_sessions_finish_then_closes_the_rest(clock):
    running = {"slow": asyncio.Event(), "endless": asyncio.Event()}

    async def slow(session, params):
        running["slow"].set()
        await session.stream_file("two-seconds", "")
        await session.set_variable("CALLCORE_STATUS", "FINISHED")

    async def endless(session, params):
        running["endless"].set()
        await session.wait_for_digit(-1)

    caller = Caller(media={"two-seconds": 2.0}, max_duration=30.0)
    async with running_server({"slow": slow, "endless": endless}, clock) as server:
        finishing = asyncio.create_task(run_agi_call(address(server), "slow", caller, clock=clock))
        stuck = asyncio.create_task(run_agi_call(address(server), "endless", caller, clock=clock))
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in running.values())), 5)
        assert server.stats.open_sessions == 2
        listening = address(server)
        await server.close(drain_timeout=4.0)
        assert server.stats.open_sessions == 0
        with pytest.raises(OSError):
            await asyncio.open_connection(*listening)
    finished = await asyncio.wait_for(finishing, 5)
    cut = await asyncio.wait_for(stuck, 5)
    assert finished.variables["CALLCORE_STATUS"] == "FINISHED"
    assert "CALLCORE_STATUS" not in cut.variables
    assert cut.agi_status == "SUCCESS"


async def test_a_cancelled_command_ends_the_session(clock):
    """A reply to a command whose await was cancelled could answer the next command: a handler
    that carries on after the cancellation gets no further command through, and Asterisk sees
    the connection close."""
    outcome: dict[str, object] = {}

    async def impatient(session, params):
        try:
            async with asyncio.timeout(0.05):
                await session.stream_file("ten-seconds", "")
        except TimeoutError:
            outcome["cancelled"] = True
        try:
            await session.set_variable("AFTER", "yes")
        except AGIError as exc:
            outcome["error"] = exc
        outcome["state"] = session.state

    caller = Caller(media={"ten-seconds": 10.0})
    async with running_server({"long": impatient}, clock) as server:
        record = await asyncio.wait_for(
            run_agi_call(address(server), "long", caller, clock=clock), 5
        )
        assert server.stats.errors == 0
        assert server.stats.timeouts == 0
    assert outcome["cancelled"]
    assert isinstance(outcome["error"], AGIConnectionClosed)
    assert "'STREAM FILE' was cancelled" in str(outcome["error"])
    assert outcome["state"] is SessionState.CLOSED
    assert record.commands == (("STREAM", "FILE", "ten-seconds", ""),)
    assert record.agi_status == "SUCCESS"


async def test_per_command_timeout_closes_the_session(clock, caplog):
    outcome = {}

    async def impatient(session, params):
        try:
            await session.stream_file("five-seconds", "")
        except AGITimeout as exc:
            outcome["error"] = exc
            raise

    caplog.set_level(logging.WARNING, logger="callcore.agi")
    caller = Caller(media={"five-seconds": 5.0})
    async with running_server({"slow": impatient}, clock, command_timeout=1.0) as server:
        record = await asyncio.wait_for(
            run_agi_call(address(server), "slow", caller, clock=clock), 5
        )
        assert server.stats.timeouts == 1
    assert "no reply to 'STREAM FILE' within 1.0s" in str(outcome["error"])
    assert record.commands == (("STREAM", "FILE", "five-seconds", ""),)
    assert "AGI command timed out" in caplog.text


async def test_session_timeout_ends_a_handler_that_runs_too_long(clock, caplog):
    """Between commands (a slow lookup) the dialplan learns CALLCORE_STATUS=ERROR; inside a
    command that may wait for ever, the session is cut. Either way the server goes on."""
    outcome = {}

    async def thinking(session, params):
        await session.answer()
        try:
            await clock.sleep(30)
        except asyncio.CancelledError:
            outcome["cancelled"] = True
            raise

    async def waiting(session, params):
        await session.exec("Wait", "30", timeout_s=NO_TIMEOUT)

    async def quick(session, params):
        await session.set_variable("CALLCORE_STATUS", "OK")

    caplog.set_level(logging.WARNING, logger="callcore.agi")
    routes = {"thinking": thinking, "waiting": waiting, "quick": quick}
    async with running_server(routes, clock, session_timeout=2.0) as server:
        calls = [
            run_agi_call(address(server), path, Caller(max_duration=60.0), clock=clock)
            for path in routes
        ]
        started = clock.monotonic()
        thought, waited, quick_call = await asyncio.wait_for(asyncio.gather(*calls), 5)
        elapsed = clock.monotonic() - started
        assert server.stats.timeouts == 2
        assert server.stats.errors == 2
    assert 2.0 <= elapsed < 10.0
    assert outcome["cancelled"]
    assert thought.variables["CALLCORE_STATUS"] == "ERROR"
    assert thought.commands[-1][:2] == ("SET", "VARIABLE")
    assert waited.commands == (("EXEC", "Wait", "30"),)
    assert "CALLCORE_STATUS" not in waited.variables
    assert quick_call.variables["CALLCORE_STATUS"] == "OK"
    assert caplog.text.count("AGI session exceeded session_timeout=2.0s") == 2


async def test_commands_that_wait_on_purpose_outlive_the_command_timeout(clock):
    """A recording or key wait longer than command_timeout, and an application the caller ends
    (a queue, a voicemail message), are not cut short; a plain prompt still is."""
    outcome = {}

    async def patient(session, params):
        outcome["digit"] = await session.wait_for_digit(3000)
        outcome["record"] = await session.record_file("msg", "wav", "#", 3000)
        outcome["exec"] = await session.exec("Wait", "3", timeout_s=NO_TIMEOUT)
        await session.set_variable("CALLCORE_STATUS", "DONE")

    async with running_server({"patient": patient}, clock, command_timeout=1.0) as server:
        record = await asyncio.wait_for(run_agi_call(address(server), "patient", clock=clock), 5)
        assert server.stats.timeouts == 0
    assert outcome["digit"] is None and outcome["record"].reason == "timeout"
    assert outcome["exec"] == 0 and record.variables["CALLCORE_STATUS"] == "DONE"


async def test_an_explicit_timeout_replaces_the_default_and_names_itself(clock):
    outcome = {}

    async def hasty(session, params):
        try:
            await session.exec("Wait", "3", timeout_s=0.5)
        except AGITimeout as exc:
            outcome["error"] = exc

    async with running_server({"hasty": hasty}, clock, command_timeout=10.0) as server:
        await asyncio.wait_for(run_agi_call(address(server), "hasty", clock=clock), 5)
        assert server.stats.timeouts == 1
    assert "no reply to 'EXEC' within 0.5s" in str(outcome["error"])


async def test_commands_go_one_at_a_time_and_injection_is_refused_before_sending(clock):
    outcome = {}

    async def handler(session, params):
        first = asyncio.create_task(session.stream_file("prompt", ""))
        await asyncio.sleep(0)
        with pytest.raises(AGIError, match="one at a time"):
            await session.noop()
        await first
        with pytest.raises(AGIInjectionError):
            await session.set_variable("CALLERID", "x\nEXEC System reboot")
        outcome["done"] = True

    async with running_server({"h": handler}, clock) as server:
        record = await run_agi_call(address(server), "h", clock=clock)
    assert outcome == {"done": True}
    assert record.commands == (("STREAM", "FILE", "prompt", ""),)


async def test_open_sessions_return_to_zero_after_many_calls(clock):
    async def short(session, params):
        await session.answer()
        await session.get_variable("X")

    async with running_server({"s/{n}": short}, clock) as server:
        records = await asyncio.gather(
            *(run_agi_call(address(server), f"s/{n}", clock=clock) for n in range(50))
        )
        assert server.stats.sessions_total == 50
        assert server.stats.open_sessions == 0
    assert {r.agi_status for r in records} == {"SUCCESS"}


async def test_a_burst_of_calls_while_the_loop_is_busy_waits_in_the_listen_queue(clock):
    """Asterisk connects once per call: a burst that arrives while the server's loop is busy
    must be queued by the kernel, not dropped (a dropped connection attempt is retried a second
    later at best, and under SYN cookies can come back as a reset: AGISTATUS=FAILURE)."""
    burst = 300

    async def short(session, params):
        await session.answer()

    def connect_all(port: int) -> list[float]:
        took, sockets = [], []
        try:
            for _ in range(burst):
                started = time.perf_counter()
                sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                took.append(time.perf_counter() - started)
        finally:
            for sock in sockets:
                sock.close()
        return took

    async with running_server({"s": short}, clock, max_sessions=burst) as server:
        loop = asyncio.get_running_loop()
        connecting = loop.run_in_executor(None, connect_all, server.port)
        time.sleep(1.5)  # noqa: ASYNC251 - on purpose: the loop is busy, nothing is accepted
        took = await asyncio.wait_for(connecting, 30)
    assert len(took) == burst
    assert max(took) < 0.9, f"a connection waited {max(took):.2f}s for the listen queue"
