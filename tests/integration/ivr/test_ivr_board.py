"""IvrBoard against a real event bus and PostgreSQL: it follows the ``ivr`` events, and rebuilds
from ``ivr_calls`` when it starts and whenever it may have missed events (a gap, an overflow)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from _ivr_db import add_flow

from callcore.events import EventBus, Gap
from callcore.ivr.board import IvrBoard
from callcore.ivr.events import IvrCallEnded, IvrCallStarted, NodeEntered, NodeLeft


def started(uniqueid: str, flow_id: int | None = 1, **kw: object) -> IvrCallStarted:
    fields: dict[str, object] = {
        "flow_id": flow_id,
        "flow_version": 3,
        "did": "+33123456789",
        "caller_id": "0612345678",
    }
    return IvrCallStarted(uniqueid=uniqueid, **(fields | kw))  # type: ignore[arg-type]


def entered(uniqueid: str, node_id: str, flow_id: int | None = 1) -> NodeEntered:
    return NodeEntered(
        uniqueid=uniqueid, flow_id=flow_id, node_id=node_id, node_type="menu", step=1
    )


def left(uniqueid: str, node_id: str, next_node: str | None) -> NodeLeft:
    return NodeLeft(
        uniqueid=uniqueid,
        flow_id=1,
        node_id=node_id,
        node_type="menu",
        step=1,
        exit="digit_1",
        milliseconds=1.0,
        next_node=next_node,
        next_type=None if next_node is None else "queue",
    )


def ended(uniqueid: str) -> IvrCallEnded:
    return IvrCallEnded(uniqueid=uniqueid, flow_id=1, outcome="completed", last_node="x", steps=1)


async def open_call(pool, uniqueid: str, flow_id: int, *, age_s: float = 0.0) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO ivr_calls (uniqueid, did, caller_id, flow_id, flow_version, started_at) "
            "VALUES ($1, '+33100000000', '0700000000', $2, 2, now() - make_interval(secs => $3))",
            uniqueid,
            flow_id,
            age_s,
        )


async def test_the_board_follows_calls_through_their_nodes(db_pool):
    bus = EventBus()
    async with IvrBoard(bus, db_pool) as board:
        assert await board.snapshot() == []
        bus.publish(started("a.1"))
        bus.publish(started("b.2", flow_id=None, did=None))
        bus.publish(entered("a.1", "welcome"))
        bus.publish(left("a.1", "welcome", "sales"))  # leaving one node is entering the next
        # No sleep: the snapshot waits until what was published is applied.
        calls = await board.snapshot()

        assert [c.uniqueid for c in calls] == ["a.1", "b.2"]
        first = calls[0].as_json()
        assert first["node_id"] == "sales" and first["node_type"] == "queue"
        assert (first["flow_id"], first["flow_version"], first["did"]) == (1, 3, "+33123456789")
        assert first["caller_id"] == "0612345678"
        assert first["entered_at"] >= first["started_at"]
        assert calls[1].node_id is None and calls[1].entered_at is None

        bus.publish(left("a.1", "sales", None))  # the call ends or jumps: no move
        assert (await board.snapshot())[0].node_id == "sales"
        bus.publish(entered("a.1", "other-entry", flow_id=7))  # a goto_flow jump
        bus.publish(ended("b.2"))
        [call] = await board.snapshot()
        assert (call.flow_id, call.flow_version, call.node_id) == (7, None, "other-entry")

        bus.publish(entered("c.3", "late"))  # a call whose start the board never saw
        bus.publish(ended("a.1"))
        [late] = await board.snapshot()
        assert (late.uniqueid, late.node_id, late.caller_id, late.did) == ("c.3", "late", "", None)


async def test_at_start_the_board_loads_the_calls_in_progress_on_every_node(db_pool):
    flow = await add_flow(db_pool, "main")
    await open_call(db_pool, "open.1", flow)
    await open_call(db_pool, "ancient.2", flow, age_s=5 * 3600)  # its node died long ago
    await open_call(db_pool, "done.3", flow)
    async with db_pool.acquire() as conn:
        await conn.execute(
            "UPDATE ivr_calls SET ended_at = now(), outcome = 'completed' WHERE uniqueid = 'done.3'"
        )

    async with IvrBoard(EventBus(), db_pool) as board:
        [call] = await board.snapshot()

    assert (call.uniqueid, call.flow_id, call.flow_version) == ("open.1", flow, 2)
    assert (call.did, call.caller_id, call.node_id) == ("+33100000000", "0700000000", None)


async def test_after_a_gap_the_board_rebuilds_from_the_database(db_pool):
    flow = await add_flow(db_pool, "main")
    bus = EventBus()
    async with IvrBoard(bus, db_pool) as board:
        await board.snapshot()
        await open_call(db_pool, "real.1", flow)
        bus.publish(started("real.1", flow_id=flow))
        bus.publish(entered("real.1", "menu", flow_id=flow))
        bus.publish(started("ghost.2"))  # its end was lost with the other node's connection
        assert {c.uniqueid for c in await board.snapshot()} == {"real.1", "ghost.2"}
        await open_call(db_pool, "missed.3", flow)  # its start was lost too

        now = datetime.now(UTC)
        bus.publish(Gap(source="node-b", since=now - timedelta(seconds=5), reason="test"))
        calls = {c.uniqueid: c for c in await board.snapshot()}

    assert set(calls) == {"real.1", "missed.3"}
    assert calls["real.1"].node_id == "menu"  # what it knew from the events is kept
    assert calls["missed.3"].node_id is None


async def test_an_overflowing_board_resubscribes_and_rebuilds(db_pool, caplog):
    flow = await add_flow(db_pool, "main")
    await open_call(db_pool, "real.1", flow)
    bus = EventBus()
    async with IvrBoard(bus, db_pool, max_calls=10) as board:
        await board.snapshot()
        for number in range(1001):  # more than its queue holds, with no chance to read
            bus.publish(started(f"ghost.{number}"))
        calls = await board.snapshot()
        assert [c.uniqueid for c in calls] == ["real.1"]
        bus.publish(started("after.2"))  # and it follows the bus again
        assert [c.uniqueid for c in await board.snapshot()] == ["real.1", "after.2"]
    assert "IVR board fell behind the event bus" in caplog.text


async def test_the_board_is_bounded_in_size_and_age(db_pool, caplog):
    bus = EventBus()
    async with IvrBoard(bus, db_pool, max_calls=2, max_age_s=60) as board:
        await board.snapshot()
        bus.publish(started("old.0", at=datetime.now(UTC) - timedelta(seconds=61)))
        bus.publish(started("a.1"))
        assert [c.uniqueid for c in await board.snapshot()] == ["a.1"]  # too old to show
        bus.publish(started("b.2"))
        bus.publish(started("c.3"))
        assert [c.uniqueid for c in await board.snapshot()] == ["b.2", "c.3"]
        assert board.evicted == 1
    assert "IVR board full (2 calls)" in caplog.text
