"""The WebSocket hub over real sockets, with real tokens checked against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import attrs
import pytest
from _auth_session import PASSWORD, add_user
from _ws_client import WAIT, log_everyone_in, next_frame, receive_until

from callcore import audit
from callcore.audit_events import AuditEntry, publish_audit
from callcore.config import load_settings
from callcore.errors import ConfigError, DuplicateNameError
from callcore.events import Gap, GenericEvent
from callcore.runtime import Runtime, open_runtime
from callcore.web.app import create_app
from callcore.web.ws import (
    CLOSE_BAD_MESSAGE,
    CLOSE_IDLE,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHENTICATED,
    HUB,
    WS_PATH,
    register_topic,
)


@attrs.frozen
class Node:
    runtime: Runtime
    client: Any  # aiohttp's TestClient
    tokens: dict[str, str]

    @property
    def origin(self) -> str:
        return f"http://{self.client.server.host}:{self.client.server.port}"

    def tune(self, **changes: Any) -> None:
        hub = self.client.app[HUB]
        hub.settings = attrs.evolve(hub.settings, **changes)

    async def connect(self, role: str, **kwargs: Any) -> aiohttp.ClientWebSocketResponse:
        """A non-browser client: no Origin, the token in the first message."""
        ws = await self.client.ws_connect(WS_PATH, **kwargs)
        await ws.send_json({"type": "auth", "token": self.tokens[role]})
        hello = await next_frame(ws)
        assert hello[0]["type"] == "hello", hello
        return ws


@pytest.fixture
async def node(aiohttp_client, callcore_settings) -> AsyncIterator[Node]:
    async with open_runtime(callcore_settings) as runtime:
        client = await aiohttp_client(create_app(runtime), cookie_jar=aiohttp.DummyCookieJar())
        yield Node(runtime, client, await log_everyone_in(runtime, client))


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, str]:
    """Read (and discard) until the server's close frame: its code and reason."""
    while True:
        message = await ws.receive(timeout=WAIT)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return message.data, message.extra
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return ws.close_code, ""


def audit_entry(entry_id: int, label: str = "admin1") -> AuditEntry:
    return AuditEntry(
        entry_id=entry_id,
        logged_at=datetime.now(UTC),
        actor_id=None,
        actor_label=label,
        action="update",
        entity_type="campaign",
        entity_id=str(entry_id),
    )


async def record_change(runtime: Runtime, entity_id: str) -> int:
    """A committed audit row, published after the commit as callers do."""
    async with runtime.database.pool.acquire() as conn:
        async with conn.transaction():
            entry_id = await audit.record(
                conn,
                actor_id=None,
                actor_label="admin1",
                action="update",
                entity_type="trunk",
                entity_id=entity_id,
                before={"host": "a", "password": "old"},
                after={"host": "b", "password": "new"},
            )
        await publish_audit(runtime.bus, conn, entry_id)
    return entry_id


# Authentication -----------------------------------------------------------------------------


async def test_browser_cookie_with_its_own_origin_is_accepted(node):
    headers = {"Origin": node.origin, "Cookie": f"callcore_access={node.tokens['supervisor']}"}
    async with node.client.ws_connect(WS_PATH, headers=headers) as ws:
        (hello,) = await next_frame(ws)
    assert hello["type"] == "hello"
    assert hello["user"]["username"] == "supervisor1"
    assert hello["user"]["role"] == "supervisor"
    assert hello["topics"] == ["agents", "calls", "ivr", "queues"]


@pytest.mark.parametrize(
    "origin", ["http://evil.example", "null", "https://127.0.0.1", "http://127.0.0.1:1"]
)
async def test_cross_site_origin_is_refused_before_the_upgrade(node, origin):
    headers = {"Origin": origin, "Cookie": f"callcore_access={node.tokens['admin']}"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await node.client.ws_connect(WS_PATH, headers=headers)
    assert refused.value.status == 403


PROXY_ORIGINS = ("https://cc.example.com", "http://10.0.0.5:8080")


@pytest.fixture
async def proxied(aiohttp_client, callcore_settings) -> AsyncIterator[Node]:
    """A node whose ``[web] allowed_origins`` names the sites of two reverse proxies."""
    web_settings = attrs.evolve(callcore_settings.web, allowed_origins=PROXY_ORIGINS)
    settings = attrs.evolve(callcore_settings, web=web_settings)
    async with open_runtime(settings) as runtime:
        client = await aiohttp_client(create_app(runtime), cookie_jar=aiohttp.DummyCookieJar())
        yield Node(runtime, client, await log_everyone_in(runtime, client))


@pytest.mark.parametrize(
    "origin", ["https://cc.example.com", "https://CC.Example.com", "http://10.0.0.5:8080", None]
)
async def test_a_configured_origin_is_accepted_as_well_as_the_own_one(proxied, origin):
    headers = {
        "Origin": origin or proxied.origin,
        "Cookie": f"callcore_access={proxied.tokens['admin']}",
    }
    async with proxied.client.ws_connect(WS_PATH, headers=headers) as ws:
        (hello,) = await next_frame(ws)
        assert hello["user"]["username"] == "admin1"
        await ws.send_json({"type": "subscribe", "topics": ["audit"]})
        (snapshot,) = await next_frame(ws)
    assert snapshot["type"] == "snapshot" and snapshot["topic"] == "audit"


@pytest.mark.parametrize(
    "origin",
    [
        "http://cc.example.com",
        "https://cc.example.com:8443",
        "https://cc.example.com.evil.example",
        "https://evil.example",
        "http://10.0.0.5",
        "null",
    ],
)
async def test_an_origin_not_configured_is_still_refused(proxied, origin):
    headers = {"Origin": origin, "Cookie": f"callcore_access={proxied.tokens['admin']}"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await proxied.client.ws_connect(WS_PATH, headers=headers)
    assert refused.value.status == 403


async def test_allowed_origins_load_from_the_file_and_the_environment(node, tmp_path):
    path = tmp_path / "callcore.toml"
    path.write_text('[web]\nallowed_origins = ["https://cc.example.com"]\n', encoding="utf-8")
    assert load_settings(path, env={}).web.allowed_origins == ("https://cc.example.com",)
    env = {"CALLCORE_WEB_ALLOWED_ORIGINS": " https://cc.example.com , http://10.0.0.5:8080 "}
    assert load_settings(path, env=env).web.allowed_origins == PROXY_ORIGINS
    # The default: no other origin than the page's own.
    assert node.client.app[HUB].settings.allowed_origins == frozenset()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ftp://cc.example.com", "the scheme must be http or https"),
        ("cc.example.com", "the scheme must be http or https"),
        ("https://cc.example.com/", "no path"),
        ("https://cc.example.com/ws", "no path"),
        ("https://user@cc.example.com", "no user name"),
        ("https://cc.example.com:99999", "Port out of range"),
        ("https://*.example.com", "host name"),
        ("https://", "host name"),
    ],
)
async def test_a_bad_allowed_origin_is_refused_by_name(tmp_path, value, reason):
    path = tmp_path / "callcore.toml"
    path.write_text("", encoding="utf-8")
    env = {"CALLCORE_WEB_ALLOWED_ORIGINS": f"https://ok.example,{value}"}
    with pytest.raises(ConfigError) as refused:
        load_settings(path, env=env)
    message = str(refused.value)
    assert message.startswith(f"web.allowed_origins: {value!r} is not an origin"), message
    assert reason in message


async def test_expired_browser_session_is_closed_at_once(node):
    headers = {"Origin": node.origin, "Cookie": "callcore_access=not-a-token"}
    async with node.client.ws_connect(WS_PATH, headers=headers) as ws:
        code, reason = await closed_with(ws)
    assert code == CLOSE_UNAUTHENTICATED
    assert "session expired" in reason


async def test_cookie_without_origin_is_ignored(node):
    headers = {"Cookie": f"callcore_access={node.tokens['admin']}"}
    async with node.client.ws_connect(WS_PATH, headers=headers) as ws:
        await ws.send_json({"type": "subscribe", "topics": ["audit"]})
        code, reason = await closed_with(ws)
    assert code == CLOSE_UNAUTHENTICATED
    assert "auth" in reason


async def test_token_in_first_message(node):
    ws = await node.connect("admin")
    await ws.send_json({"type": "subscribe", "topics": ["audit"]})
    (snapshot,) = await next_frame(ws)
    assert snapshot["type"] == "snapshot"
    await ws.close()


@pytest.mark.parametrize(
    "first",
    [
        {"type": "auth", "token": "forged.token.value"},
        {"type": "auth"},
        {"type": "subscribe", "topics": ["audit"]},
        "not json",
    ],
)
async def test_bad_first_message_is_closed(node, first):
    async with node.client.ws_connect(WS_PATH) as ws:
        await (ws.send_str(first) if isinstance(first, str) else ws.send_json(first))
        code, _ = await closed_with(ws)
    assert code == CLOSE_UNAUTHENTICATED


async def test_no_auth_message_is_closed_after_the_timeout(node):
    node.tune(auth_timeout=0.3)
    async with node.client.ws_connect(WS_PATH) as ws:
        code, reason = await closed_with(ws)
    assert code == CLOSE_UNAUTHENTICATED
    assert "authenticate within 0.3s" in reason


async def test_token_in_the_url_is_refused(node):
    for query in (f"token={node.tokens['admin']}", f"access_token={node.tokens['admin']}"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await node.client.ws_connect(f"{WS_PATH}?{query}")
        assert refused.value.status == 400


async def test_disabled_user_is_disconnected_by_the_next_check(node):
    node.tune(reverify_interval=0.2)
    ws = await node.connect("admin")
    async with node.runtime.database.pool.acquire() as conn:
        await conn.execute(
            "UPDATE users SET is_active = false, token_version = token_version + 1"
            " WHERE username = 'admin1'"
        )
    code, _ = await closed_with(ws)
    assert code == CLOSE_UNAUTHENTICATED


# Topics -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["agent", "supervisor"])
async def test_audit_topic_is_for_admins_only(node, role):
    ws = await node.connect(role)
    await ws.send_json({"type": "subscribe", "topics": ["audit", "nope"]})
    errors = await next_frame(ws)
    assert [(e["type"], e["code"], e["topic"]) for e in errors] == [
        ("error", "forbidden", "audit"),
        ("error", "unknown_topic", "nope"),
    ]
    await record_change(node.runtime, "t1")
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.3)
    await ws.close()


async def test_snapshot_then_deltas_for_the_audit_topic(node):
    before = await record_change(node.runtime, "before")
    ws = await node.connect("admin")
    await ws.send_json({"type": "subscribe", "topics": ["audit"]})
    (snapshot,) = await next_frame(ws)
    assert snapshot["topic"] == "audit"
    entries = snapshot["data"]["entries"]
    assert entries[0]["entry_id"] == before
    assert entries[0]["entity_id"] == "before"
    assert {e["entity_type"] for e in entries} == {"trunk", "user"}  # users made by the fixture
    assert "password" not in json.dumps(snapshot)

    after = await record_change(node.runtime, "after")
    (delta,) = await next_frame(ws)
    assert delta["type"] == "event" and delta["topic"] == "audit"
    assert delta["event"]["type"] == "audit.entry"
    assert delta["event"]["payload"]["entry_id"] == after
    assert delta["event"]["payload"]["actor_label"] == "admin1"

    await ws.send_json({"type": "unsubscribe", "topics": ["audit"]})
    await record_change(node.runtime, "unheard")
    with pytest.raises(TimeoutError):
        await ws.receive(timeout=0.3)
    await ws.close()


async def test_publish_audit_refuses_to_run_before_the_commit(node):
    async with node.runtime.database.pool.acquire() as conn, conn.transaction():
        entry_id = await audit.record(
            conn, actor_id=None, actor_label="x", action="create", entity_type="t", entity_id=1
        )
        with pytest.raises(RuntimeError, match=f"entry {entry_id} inside a transaction"):
            await publish_audit(node.runtime.bus, conn, entry_id)


async def test_gap_on_the_bus_resyncs_subscribers(node):
    ws = await node.connect("admin")
    await ws.send_json({"type": "subscribe", "topics": ["audit"]})
    await next_frame(ws)
    now = datetime.now(UTC)
    node.runtime.bus.publish(Gap(source="peer", since=now, reason="connection lost"))
    messages: list[dict[str, Any]] = []
    while not any(m["type"] == "snapshot" for m in messages):
        messages.extend(await next_frame(ws))
    assert [m["type"] for m in messages] == ["resync", "snapshot"]
    assert "connection lost" in messages[0]["reason"]
    await ws.close()


async def test_protocol_errors(node):
    ws = await node.connect("admin")
    await ws.send_str("{")
    await ws.send_json({"type": "subscribe", "topics": "audit"})
    await ws.send_json({"type": "auth", "token": node.tokens["admin"]})
    errors, _ = await receive_until(ws, 3, kind="error")
    assert [e["code"] for e in errors] == ["bad_message"] * 3
    assert "already authenticated" in errors[2]["message"]
    await ws.send_bytes(b"\x00")
    code, _ = await closed_with(ws)
    assert code == CLOSE_BAD_MESSAGE


async def test_idle_connection_is_closed(node):
    node.tune(idle_timeout=0.3)
    ws = await node.connect("agent")
    code, _ = await closed_with(ws)
    assert code == CLOSE_IDLE


async def test_row_filter_scopes_deltas_per_client(aiohttp_client, callcore_settings):
    async def my_rows(app: Any, principal: Any) -> dict[str, Any]:
        return {"user_id": principal.user_id}

    def mine(principal: Any, event: Any) -> bool:
        return event.payload["user_id"] == principal.user_id

    async with open_runtime(callcore_settings) as runtime:
        app = create_app(runtime)
        register_topic(app, "acme.mine", ["agent", "supervisor"], my_rows, "acme.bus", mine)
        with pytest.raises(DuplicateNameError, match=r"acme\.mine"):
            register_topic(app, "acme.mine", ["agent"], my_rows, "acme.bus")
        with pytest.raises(ValueError, match="root"):
            register_topic(app, "acme.other", ["root"], my_rows, "acme.bus")
        client = await aiohttp_client(app, cookie_jar=aiohttp.DummyCookieJar())
        with pytest.raises(RuntimeError, match="after the hub started"):
            register_topic(app, "acme.late", ["agent"], my_rows, "acme.bus")
        node = Node(runtime, client, await log_everyone_in(runtime, client))
        agent, supervisor = await node.connect("agent"), await node.connect("supervisor")
        ids = {}
        for role, ws in (("agent", agent), ("supervisor", supervisor)):
            await ws.send_json({"type": "subscribe", "topics": ["acme.mine"]})
            (snapshot,) = await next_frame(ws)
            ids[role] = snapshot["data"]["user_id"]
        for user_id in (ids["supervisor"], ids["agent"], ids["supervisor"]):
            runtime.bus.publish(
                GenericEvent(topic="acme.bus", type="acme.row", payload={"user_id": user_id})
            )
        (delta,) = await next_frame(agent)
        assert delta["event"]["payload"] == {"user_id": ids["agent"]}
        deltas, _ = await receive_until(supervisor, 2)
        assert [d["event"]["payload"]["user_id"] for d in deltas] == [ids["supervisor"]] * 2
        with pytest.raises(TimeoutError):
            await agent.receive(timeout=0.3)
        await agent.close()
        await supervisor.close()


# Delivery -----------------------------------------------------------------------------------


async def test_event_from_another_node_arrives_once(aiohttp_client, callcore_settings):
    async with open_runtime(callcore_settings) as node_a, open_runtime(callcore_settings) as b:
        client_b = await aiohttp_client(create_app(b), cookie_jar=aiohttp.DummyCookieJar())
        node_b = Node(b, client_b, await log_everyone_in(b, client_b))
        assert node_a.node_id != b.node_id
        ws = await node_b.connect("admin")
        await ws.send_json({"type": "subscribe", "topics": ["audit"]})
        await next_frame(ws)

        from_a = await record_change(node_a, "on-a")
        from_b = await record_change(b, "on-b")
        events, _ = await receive_until(ws, 2)
        origins = {e["event"]["payload"]["entry_id"]: e["event"]["origin"] for e in events}
        assert origins == {from_a: node_a.node_id, from_b: b.node_id}
        with pytest.raises(TimeoutError):
            await ws.receive(timeout=0.5)
        await ws.close()


async def test_a_burst_is_coalesced_into_few_frames_in_order(node):
    ws = await node.connect("admin")
    await ws.send_json({"type": "subscribe", "topics": ["audit"]})
    await next_frame(ws)
    for entry_id in range(1, 1001):
        node.runtime.bus.publish(audit_entry(entry_id))
    events, frames = await receive_until(ws, 1000)
    assert [e["event"]["payload"]["entry_id"] for e in events] == list(range(1, 1001))
    assert frames <= 10
    await ws.close()


def small_receive_buffer(addr_info: Any) -> socket.socket:
    """A socket whose kernel buffer cannot grow to megabytes: a reader that stops stalls soon."""
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    return sock


async def test_a_slow_client_is_dropped_and_the_others_get_everything(node):
    node.tune(max_queue=1000)
    connector = aiohttp.TCPConnector(socket_factory=small_receive_buffer)
    async with aiohttp.ClientSession(connector=connector) as session:
        slow = await session.ws_connect(node.client.make_url(WS_PATH))
        await slow.send_json({"type": "auth", "token": node.tokens["admin"]})
        await next_frame(slow)
        await overrun(node, slow)


async def overrun(node: Node, slow: aiohttp.ClientWebSocketResponse) -> None:
    """Publish far more than ``slow`` reads while another client keeps up."""
    fast = await node.connect("admin")
    for ws in (slow, fast):
        await ws.send_json({"type": "subscribe", "topics": ["audit"]})
        await next_frame(ws)
    total = 4000
    reading = asyncio.create_task(receive_until(fast, total))
    label = "x" * 3000  # big events fill the slow client's socket buffers sooner
    for start in range(0, total, 50):
        for entry_id in range(start, start + 50):
            node.runtime.bus.publish(audit_entry(entry_id, label))
        await asyncio.sleep(0.005)
    events, _ = await asyncio.wait_for(reading, WAIT * 3)
    assert [e["event"]["payload"]["entry_id"] for e in events] == list(range(total))

    code, reason = await closed_with(slow)
    assert code == CLOSE_TOO_SLOW
    assert "fresh snapshot" in reason
    assert not fast.closed
    await fast.close()


async def test_server_shutdown_closes_sockets_with_going_away(aiohttp_server, callcore_settings):
    async with open_runtime(callcore_settings) as runtime:
        server = await aiohttp_server(create_app(runtime))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
            await add_user(runtime.database.pool, "admin1", "admin")
            response = await session.post(
                server.make_url("/api/v1/auth/login"),
                json={"username": "admin1", "password": PASSWORD},
            )
            token = (await response.json())["access_token"]
            ws = await session.ws_connect(server.make_url(WS_PATH))
            await ws.send_json({"type": "auth", "token": token})
            await next_frame(ws)
            closing = asyncio.create_task(server.close())
            code, _ = await closed_with(ws)
            await closing
    assert code == aiohttp.WSCloseCode.GOING_AWAY
