"""AMIClient and AMIManager against AMIReplayServer over loopback, replaying real captures."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from callcore.ami.client import AMIClient, Backoff, ConnectionState, ResyncSnapshot
from callcore.ami.errors import (
    AMIActionError,
    AMIAuthError,
    AMIConnectionLost,
    AMIEventOverflow,
    AMIInjectionError,
    AMIProtocolError,
    AMITimeout,
)
from callcore.ami.events import AMIEvent, OriginateResponse, RawEvent
from callcore.ami.manager import AMIManager
from callcore.clock import ScaledClock
from callcore.config import AmiServerSettings, Secret
from callcore.sim.ami_replay import AMIReplayServer
from callcore.sim.captures import captures_dir

TIMEOUT = 10.0
FAST = Backoff(initial=0.05, cap=0.2)


def settings(port: int, *, secret: str = "s3cret", server_id: str = "pbx1") -> AmiServerSettings:
    return AmiServerSettings(
        id=server_id, username="callcore", secret=Secret(secret), port=port, connect_timeout=5.0
    )


def capture(name: str) -> str:
    return (captures_dir() / name).read_text(encoding="utf-8")


def block(text: str, start: str, end: str) -> str:
    """The transcript lines from the one starting with ``start`` to the one starting with ``end``
    (included)."""
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i in range(first, len(lines)) if lines[i].startswith(end))
    return "".join(lines[first : last + 1])


ACTIONS = capture("ami-actions.txt")
LOGIN = block(ACTIONS, "<< Asterisk Call Manager", "<< SessionTV") + "<< \\r\\n\n"
CORE_SHOW_CHANNELS = block(ACTIONS, ">> Action: CoreShowChannels", "<< ListItems: 2")
CORE_SHOW_CHANNELS += "<< \\r\\n\n"
EOF_NOTE = "## <EOF from Asterisk: connection closed by peer>\n"
LF_PING = block(ACTIONS, ">> Action: Ping\\n", "<< \\r\\n")
LOGOFF = block(ACTIONS, ">> Action: Logoff", "<< \\r\\n") + EOF_NOTE


async def ready_client(port: int, **options: object) -> AMIClient:
    client = AMIClient(settings(port), **options)  # type: ignore[arg-type]
    client.start()
    await client.wait_ready(TIMEOUT)
    return client


async def test_login_ping_logoff_against_the_capture() -> None:
    # The second connection of the capture is a successful login; the first is a refusal.
    async with AMIReplayServer(
        captures_dir() / "ami-login-logoff.txt", skip_unmatched=True
    ) as server:
        server.sessions = server.sessions[1:]
        events: list[AMIEvent] = []
        client = AMIClient(settings(server.port), resync_actions=())
        client.on_event(events.append)
        async with client:
            await client.wait_ready(TIMEOUT)
            pong = await client.action("Ping", timeout=TIMEOUT)
            assert pong["Ping"] == "Pong" and pong.action_id is not None
            assert client.pending_count == 0
        assert client.state is ConnectionState.CLOSED
        assert [e.name for e in events] == ["FullyBooted", "SuccessfulAuth"]
        assert [a.name for a in server.received] == ["Login", "Ping", "Logoff"]
        assert server.received[0]["Secret"] == "s3cret"
        assert server.mismatches == []


async def test_wrong_secret_is_an_auth_error_and_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with AMIReplayServer(
        captures_dir() / "ami-login-logoff.txt", skip_unmatched=True
    ) as server:
        client = AMIClient(settings(server.port, secret="wrong"), backoff=FAST)
        client.start()
        with pytest.raises(AMIAuthError, match=r"'pbx1' \(127.0.0.1:\d+\).*Authentication failed"):
            await client.wait_ready(TIMEOUT)
        await asyncio.sleep(0.5)  # several backoff periods: a retry would have connected again
        assert server.accepted == 1
        assert client.state is ConnectionState.FAILED
        await client.close()
    assert "wrong" not in caplog.text


async def test_resync_snapshot_then_lists_and_command_output() -> None:
    async with AMIReplayServer(captures_dir() / "ami-actions.txt", skip_unmatched=True) as server:
        snapshots: list[ResyncSnapshot] = []
        client = AMIClient(settings(server.port))
        client.on_resync(snapshots.append)
        async with client:
            await client.wait_ready(TIMEOUT)
            (snapshot,) = snapshots
            assert [c.channel for c in snapshot.channels] == [
                "Local/s@caller-00000025;1",
                "Local/s@caller-00000025;2",
            ]
            assert [s.key for s in snapshot.statuses] == [
                ("pbx1", "1795557570.74"),
                ("pbx1", "1795557570.75"),
            ]
            assert set(snapshot.errors) == {"QueueStatus"}  # not in this capture

            one = await client.list_action(
                "Status", {"Channel": "Local/s@caller-00000025;1", "Variables": "FROMAGI,AGISCRIPT"}
            )
            (status,) = one.events
            assert status.fields.getall("Variable") == ["FROMAGI=held", "AGISCRIPT=hold"]
            assert one.complete is not None and one.complete["ListItems"] == "1"
            with pytest.raises(AMIActionError, match="No such channel"):
                await client.list_action("Status", {"Channel": "Local/nope-00000000;1"})

            await client.action("Command", {"Command": "core show version"})
            channels = await client.action("Command", {"Command": "core show channels"})
            assert len(channels.getall("Output")) == 6
            assert channels.getall("Output")[-1] == "59 calls processed"
            assert client.pending_count == 0


async def test_queue_status_list_in_the_resync() -> None:
    async with AMIReplayServer(
        captures_dir() / "ami-queue-admin.txt", skip_unmatched=True
    ) as server:
        snapshots: list[ResyncSnapshot] = []
        client = AMIClient(settings(server.port))
        client.on_resync(snapshots.append)
        async with client:
            await client.wait_ready(TIMEOUT)
            (snapshot,) = snapshots
            assert {q.queue for q in snapshot.queues} == {"support", "sales"}
            assert {(m.queue, m.interface) for m in snapshot.queue_members} >= {
                ("support", "Local/agent1@agents/n")
            }
            assert set(snapshot.errors) == {"CoreShowChannels", "Status"}
            one = await client.list_action("QueueStatus", {"Queue": "support"})
            assert [e.name for e in one.events] == ["QueueParams", "QueueMember"]


async def test_originate_failures_and_their_reasons() -> None:
    async with AMIReplayServer(
        captures_dir() / "ami-originate-failures.txt", skip_unmatched=True
    ) as server:
        client = await ready_client(server.port, resync_actions=())
        outcomes: dict[str, OriginateResponse] = {}
        client.on_event(
            lambda e: (
                outcomes.setdefault(e.action_id or "", e)
                if isinstance(e, OriginateResponse)
                else None
            )
        )
        queued = []
        for channel in ["nope", "busy", "congest", "noanswer"]:
            response = await client.action(
                "Originate",
                {
                    "CallerID": '"Out Dialer" <4000>',
                    "Channel": f"Local/{channel}@callee",
                    "Context": "park-wait",
                    "Exten": "s",
                    "Priority": 1,
                    "Async": True,
                },
            )
            queued.append(response.action_id)
        await client.action("Originate", {"Channel": "Bogus/xyz", "Async": True})
        with pytest.raises(AMIActionError, match="Extension does not exist"):
            await client.action("Originate", {"Channel": "Local/100@callee", "Async": True})
        with pytest.raises(AMIActionError, match="Originate failed"):
            await client.action("Originate", {"Channel": "Local/busy@callee"}, timeout=TIMEOUT)
        assert [outcomes[a].reason for a in queued] == [0, 5, 8, 3]
        assert not any(outcomes[a].succeeded for a in queued)
        assert client.pending_count == 0
        await client.close()
        assert server.mismatches == []


async def test_injection_never_reaches_the_wire() -> None:
    async with AMIReplayServer(captures_dir() / "ami-actions.txt") as server:
        client = await ready_client(server.port, resync_actions=())
        with pytest.raises(AMIInjectionError, match="'Value'"):
            await client.action("Setvar", {"Variable": "X", "Value": "x\r\nAction: Command"})
        assert client.pending_count == 0
        await client.close()
        assert [a.name for a in server.received] == ["Login", "Logoff"]


async def test_connection_dropped_mid_list_fails_the_list_then_reconnects_and_resyncs() -> None:
    first_entry = CORE_SHOW_CHANNELS.split("<< \\r\\n\n")
    cut = "<< \\r\\n\n".join(first_entry[:2]) + "<< \\r\\n\n"  # Response + one entry
    text = LOGIN + CORE_SHOW_CHANNELS + cut + EOF_NOTE + LOGIN + CORE_SHOW_CHANNELS + LOGOFF
    snapshots: list[ResyncSnapshot] = []
    states: list[ConnectionState] = []
    async with AMIReplayServer.from_text(text) as server:
        client = AMIClient(
            settings(server.port), resync_actions=("CoreShowChannels",), backoff=FAST
        )
        client.on_resync(snapshots.append)
        client.on_state(states.append)
        async with client:
            await client.wait_ready(TIMEOUT)
            with pytest.raises(AMIConnectionLost, match="CoreShowChannels after 1 entries"):
                await client.list_action("CoreShowChannels", timeout=TIMEOUT)
            await client.wait_ready(TIMEOUT)
            assert client.connections == 2
            assert [len(s.channels) for s in snapshots] == [2, 2]
            assert states[:4] == [
                ConnectionState.SYNCING,
                ConnectionState.READY,
                ConnectionState.DISCONNECTED,
                ConnectionState.SYNCING,
            ]
            assert client.pending_count == 0
        assert server.mismatches == []


async def test_malformed_message_and_event_missing_keys_are_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = (
        "<< Event: Newchannel\\r\\n\n<< this line has no colon\\r\\n\n<< Channel: X\\r\\n\n"
        "<< \\r\\n\n"
        "<< Event: Hangup\\r\\n\n<< Channel: Local/x;1\\r\\n\n<< Cause: 16\\r\\n\n<< \\r\\n\n"
    )
    text = LOGIN + bad + LF_PING + LOGOFF
    events: list[AMIEvent] = []
    async with AMIReplayServer.from_text(text) as server:
        client = AMIClient(settings(server.port), resync_actions=())
        client.on_event(events.append)
        with caplog.at_level(logging.WARNING):
            async with client:
                await client.wait_ready(TIMEOUT)
                pong = await client.action("Ping", timeout=TIMEOUT)
                assert pong["Ping"] == "Pong"
        assert client.connections == 1
    hangup = [e for e in events if e.name == "Hangup"]
    assert len(hangup) == 1 and isinstance(hangup[0], RawEvent)
    assert "Newchannel" not in [e.name for e in events]
    assert "this line has no colon" in caplog.text
    assert "missing key 'Uniqueid'" in caplog.text and "server=pbx1" in caplog.text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_manager_keeps_one_server_working_while_another_is_down() -> None:
    late_port = free_port()
    login_logoff = captures_dir() / "ami-login-logoff.txt"
    clock = ScaledClock(20)
    async with AMIReplayServer(captures_dir() / "ami-actions.txt", skip_unmatched=True) as up:
        servers = [settings(up.port, server_id="pbx1"), settings(late_port, server_id="pbx2")]
        async with AMIManager(servers, clock, resync_actions=(), backoff=FAST) as manager:
            await manager["pbx1"].wait_ready(TIMEOUT)
            channels = await manager["pbx1"].list_action("CoreShowChannels", timeout=TIMEOUT)
            assert {e.fields["Uniqueid"] for e in channels.events} == {
                "1795557570.74",
                "1795557570.75",
            }
            assert manager["pbx2"].state is ConnectionState.DISCONNECTED
            late = AMIReplayServer(login_logoff, port=late_port)
            late.sessions = late.sessions[1:]
            async with late:
                await manager["pbx2"].wait_ready(TIMEOUT)
                pong = await manager["pbx2"].action("Ping", timeout=TIMEOUT)
                assert pong["Ping"] == "Pong"
                assert sorted(manager) == ["pbx1", "pbx2"]
        assert all(c.state is ConnectionState.CLOSED for c in manager.values())
        assert all(c.pending_count == 0 for c in manager.values())


async def test_malformed_answer_fails_its_action_and_the_session_goes_on() -> None:
    spoilt = (
        ">> Action: Ping\\r\\n\n>> ActionID: spoilt-1\\r\\n\n>> \\r\\n\n"
        "<< Response: Success\\r\\n\n<< ActionID: spoilt-1\\r\\n\n"
        "<< garbage here\\r\\n\n<< \\r\\n\n"
    )
    async with AMIReplayServer.from_text(LOGIN + spoilt + LF_PING + LOGOFF) as server:
        client = await ready_client(server.port, resync_actions=())
        with pytest.raises(AMIProtocolError, match=r"answer to Ping was malformed.*garbage here"):
            await client.action("Ping", timeout=TIMEOUT)
        assert (await client.action("Ping", timeout=TIMEOUT))["Ping"] == "Pong"
        assert client.pending_count == 0 and client.connections == 1
        await client.close()


async def test_unanswered_action_times_out_and_leaves_nothing_pending() -> None:
    unanswered = ">> Action: Ping\\r\\n\n>> ActionID: never-1\\r\\n\n>> \\r\\n\n"
    async with AMIReplayServer.from_text(LOGIN + unanswered) as server:
        client = await ready_client(server.port, resync_actions=(), clock=ScaledClock(50))
        with pytest.raises(AMITimeout, match=r"Ping \(ActionID [\w-]+\) within 5.0s"):
            await client.action("Ping", timeout=5.0)  # 0.1 s of wall time
        assert client.pending_count == 0
        await client.close()


async def test_a_stream_that_is_not_read_overflows_without_blocking_the_client() -> None:
    async with AMIReplayServer.from_text(LOGIN + LF_PING + LOGOFF) as server:
        client = AMIClient(settings(server.port), resync_actions=())
        stream = client.events(maxsize=1)
        async with client:
            await client.wait_ready(TIMEOUT)  # FullyBooted and SuccessfulAuth: one too many
            assert (await client.action("Ping", timeout=TIMEOUT))["Ping"] == "Pong"
            with pytest.raises(AMIEventOverflow, match="2 events dropped"):
                await anext(stream)
            with pytest.raises(StopAsyncIteration):
                await anext(stream)
