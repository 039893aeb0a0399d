"""panoramisk's Manager, a widely used AMI client that shares no code with callcore, against the
simulator: so the simulator is not only checked against callcore's own parser."""

from __future__ import annotations

import asyncio

from panoramisk import Manager

from callcore.clock import ScaledClock
from callcore.sim.run import SimConfig, Simulator


async def test_panoramisk_logs_in_runs_actions_and_receives_events() -> None:
    clock = ScaledClock(50.0)
    async with Simulator(SimConfig(), clock=clock, seed=3) as sim:
        manager = Manager(
            loop=asyncio.get_running_loop(),
            host="127.0.0.1",
            port=sim.ami_port,
            username="callcore",
            secret="s3cret",
            ping_delay=0,
            reconnect_timeout=0.1,
        )
        events: list[str] = []

        def on_event(_: Manager, event: object) -> None:
            events.append(event.get("Event"))  # type: ignore[attr-defined]

        manager.register_event("*", on_event)
        await asyncio.wait_for(manager.connect(), 5)
        try:
            pong = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), 5)
            assert pong.Response == "Success" and pong.Ping == "Pong"

            originate = await asyncio.wait_for(
                manager.send_action(
                    {
                        "Action": "Originate",
                        "Channel": "Local/talk@callee",
                        "Context": "park-wait",
                        "Exten": "s",
                        "Priority": "1",
                        "Async": "true",
                        "CallerID": '"Talker" <5557777>',
                    }
                ),
                5,
            )
            # panoramisk waits for an async Originate's OriginateResponse (ActionID matched).
            assert [m.Response for m in originate] == ["Success", "Success"]
            assert originate[-1].Event == "OriginateResponse" and originate[-1].Reason == "4"

            channels = await asyncio.wait_for(
                manager.send_action({"Action": "CoreShowChannels"}), 5
            )
            listed = [m for m in channels if m.get("Event") == "CoreShowChannel"]
            assert sorted(m.Channel[-2:] for m in listed) == [";1", ";2"]
            assert channels[-1].Event == "CoreShowChannelsComplete"
            assert channels[-1].ListItems == "2"

            queues = await asyncio.wait_for(manager.send_action({"Action": "QueueStatus"}), 5)
            names = [m.get("Event") for m in queues]
            assert queues[0].Response == "Success" and queues[0].EventList == "start"
            assert names[1] == "QueueParams" and names[-1] == "QueueStatusComplete"
            assert {m.Queue for m in queues if m.get("Event") == "QueueParams"} == {
                "support",
                "sales",
            }
        finally:
            manager.close()
    for expected in ("Newchannel", "LocalBridge", "DialBegin", "Newstate", "DialEnd"):
        assert expected in events, f"panoramisk received no {expected} event"
    assert events.index("Newchannel") < events.index("DialBegin") < events.index("DialEnd")
