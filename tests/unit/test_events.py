"""The in-process bus and the event JSON form: no database needed."""

from __future__ import annotations

import asyncio
import json
import time
import types
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from callcore.errors import CallcoreError, DuplicateNameError, ValidationError
from callcore.events import (
    MAX_PAYLOAD_BYTES,
    Event,
    EventBus,
    EventDecodeError,
    EventTooLarge,
    Gap,
    GenericEvent,
    SubscriberOverflow,
    event_type,
    from_json,
    model,
    notify_payload,
    pack,
    to_json,
    to_wire,
)


@event_type("test_unit.call_ended", topic="calls")
class CallEnded(Event):
    call_id: str
    cause: int
    tags: tuple[str, ...] = ()
    answered_at: datetime | None = None


def ping(n: int, topic: str = "calls") -> GenericEvent:
    return GenericEvent(topic=topic, type=f"test_unit.{topic}", payload={"n": n})


async def take(subscription, count: int) -> list[Event]:
    async with asyncio.timeout(2):
        return [await anext(subscription) for _ in range(count)]


async def test_every_subscriber_gets_every_event_in_order():
    bus = EventBus("node-a")
    subscribers = [bus.subscribe() for _ in range(3)]
    sent = [bus.publish(ping(n)) for n in range(5)]
    for subscriber in subscribers:
        assert await take(subscriber, 5) == sent


async def test_publish_stamps_the_node_id_and_keeps_an_explicit_origin():
    bus = EventBus("node-a")
    event = ping(1)
    assert event.origin == ""
    stamped = bus.publish(event)
    assert stamped.origin == "node-a"
    assert (stamped.id, stamped.at, stamped.payload) == (event.id, event.at, event.payload)
    assert bus.publish(attrs.evolve(event, origin="node-b")).origin == "node-b"


async def test_topic_filtering_and_wildcard():
    bus = EventBus("node-a")
    calls = bus.subscribe(["calls"])
    calls_and_agents = bus.subscribe(["calls", "agents"])
    everything = bus.subscribe()
    published = [bus.publish(ping(0, "calls")), bus.publish(ping(1, "agents"))]
    published.append(bus.publish(ping(2, "kpis")))
    assert await take(calls, 1) == published[:1]
    assert await take(calls_and_agents, 2) == published[:2]
    assert await take(everything, 3) == published
    assert (len(calls), len(calls_and_agents), len(everything)) == (0, 0, 0)


async def test_bus_topic_reaches_every_subscriber_whatever_its_topics():
    bus = EventBus("node-a")
    calls = bus.subscribe(["calls"])
    agents = bus.subscribe(["agents"])
    gap = bus.publish(Gap(source="test", since=datetime.now(UTC), reason="test"))
    assert await take(calls, 1) == [gap]
    assert await take(agents, 1) == [gap]


async def test_a_waiting_reader_wakes_on_publish():
    bus = EventBus("node-a")
    subscription = bus.subscribe(["calls"])
    reader = asyncio.create_task(take(subscription, 2))
    await asyncio.sleep(0.01)
    assert not reader.done()
    first = bus.publish(ping(1))
    await asyncio.sleep(0.01)
    second = bus.publish(ping(2))
    assert await reader == [first, second]


async def test_slow_subscriber_overflows_alone_and_publish_never_waits():
    bus = EventBus("node-a")
    slow = bus.subscribe(maxsize=100)
    fast = bus.subscribe(maxsize=1000)
    received: list[Event] = []

    async def consume() -> None:
        async for event in fast:
            received.append(event)
            if len(received) == 10_000:
                return

    consumer = asyncio.create_task(consume())
    for n in range(10_000):
        bus.publish(ping(n))
        if n % 100 == 99:
            await asyncio.sleep(0)  # the publisher yields now and then, like a real one
    async with asyncio.timeout(5):
        await consumer
    assert [event.payload["n"] for event in received] == list(range(10_000))
    assert not fast.dropped

    assert slow.dropped == 10_000  # its 100 queued events were released with the rest
    assert len(slow) == 0
    with pytest.raises(SubscriberOverflow) as caught:
        await anext(slow)
    assert caught.value.dropped == 10_000
    assert isinstance(caught.value, CallcoreError)
    assert "queue of 100 events" in str(caught.value)
    assert "10000 events were dropped" in str(caught.value)
    assert slow.closed
    with pytest.raises(StopAsyncIteration):
        await anext(slow)

    stats = bus.stats
    assert (stats.published, stats.delivered, stats.dropped) == (10_000, 10_000, 10_000)
    assert stats.subscribers == 1


async def test_publishing_to_a_never_reading_subscriber_returns_promptly():
    bus = EventBus("node-a")
    stuck = bus.subscribe(["calls"], maxsize=1000)
    events = [ping(n) for n in range(10_000)]
    started = time.perf_counter()
    for event in events:
        bus.publish(event)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"publishing 10k events took {elapsed:.3f}s"
    assert stuck.dropped == 9_000 + 1000
    assert len(stuck) == 0  # overflow releases the queue at once


async def test_overflow_names_the_topics():
    bus = EventBus("node-a")
    subscription = bus.subscribe(["calls", "agents"], maxsize=1)
    bus.publish(ping(1))
    bus.publish(ping(2))
    with pytest.raises(SubscriberOverflow, match="subscriber to topics agents, calls fell behind"):
        await anext(subscription)


async def test_close_ends_iteration_detaches_and_is_idempotent():
    bus = EventBus("node-a")
    subscription = bus.subscribe(["calls"])
    bus.publish(ping(1))

    async def drain() -> list[Event]:
        return [event async for event in subscription]

    reader = asyncio.create_task(drain())
    await asyncio.sleep(0.01)
    subscription.close()
    subscription.close()
    async with asyncio.timeout(1):
        assert [event.payload["n"] for event in await reader] == [1]
    assert bus.stats.subscribers == 0
    bus.publish(ping(2))
    assert len(subscription) == 0


async def test_context_manager_closes_even_on_error():
    bus = EventBus("node-a")
    with pytest.raises(KeyError):
        async with bus.subscribe() as subscription:
            assert bus.stats.subscribers == 1
            raise KeyError("boom")
    assert subscription.closed
    assert bus.stats.subscribers == 0


async def test_one_reader_at_a_time():
    bus = EventBus("node-a")
    subscription = bus.subscribe()
    first = asyncio.create_task(anext(subscription))
    await asyncio.sleep(0.01)
    with pytest.raises(RuntimeError, match="one task at a time"):
        await anext(subscription)
    first.cancel()


def test_subscribe_rejects_bad_arguments():
    bus = EventBus("node-a")
    with pytest.raises(TypeError, match="not the string 'calls'"):
        bus.subscribe("calls")
    with pytest.raises(ValueError, match="topics is empty"):
        bus.subscribe([])
    with pytest.raises(ValueError, match="at least 1, got 0"):
        bus.subscribe(maxsize=0)
    with pytest.raises(ValueError, match="node id ' a '"):
        EventBus(" a ")


def test_publish_refuses_undeclared_classes():
    @attrs.frozen(kw_only=True)
    class Undeclared(CallEnded):
        extra: int = 0

    bus = EventBus("node-a")
    with pytest.raises(TypeError, match="Undeclared is not a declared event type"):
        bus.publish(Undeclared(call_id="c", cause=16))


def test_a_refusing_relay_stops_delivery_everywhere():
    bus = EventBus("node-a")
    subscription = bus.subscribe()
    relayed: list[Event] = []

    def relay(event: Event) -> None:
        if event.payload["n"] == 2:
            raise ValidationError("refused")
        relayed.append(event)

    bus.add_relay(relay)
    bus.publish(ping(1))
    with pytest.raises(ValidationError):
        bus.publish(ping(2))
    bus.publish(attrs.evolve(ping(3), origin="node-b"))  # not ours: not relayed
    bus.publish(Gap(source="test", since=datetime.now(UTC), reason="r"))  # bus topic: local only
    bus.remove_relay(relay)
    bus.publish(ping(4))
    assert [event.payload["n"] for event in relayed] == [1]
    assert bus.stats.published == 4
    assert len(subscription) == 4


def test_typed_event_round_trips_through_json():
    event = CallEnded(
        call_id="srv1/1700000000.12",
        cause=16,
        tags=("vip", "é"),
        answered_at=datetime(2026, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=1))),
        origin="node-a",
    )
    text = to_json(event)
    wire = json.loads(text)
    assert wire["type"] == "test_unit.call_ended"
    assert wire["topic"] == "calls"
    assert wire["origin"] == "node-a"
    assert wire["payload"] == {
        "call_id": "srv1/1700000000.12",
        "cause": 16,
        "tags": ["vip", "é"],
        "answered_at": "2026-01-05T10:00:00+01:00",
    }
    assert "é" in text  # UTF-8, not \\u escapes: the NOTIFY limit is in bytes
    assert from_json(text) == event


def test_extra_payload_keys_from_a_newer_version_are_ignored():
    event = CallEnded(call_id="c", cause=17, origin="node-a")
    wire = json.loads(to_json(event))
    wire["payload"]["added_later"] = True
    assert from_json(json.dumps(wire)) == event


def test_unknown_type_becomes_a_generic_event_with_its_raw_payload():
    text = json.dumps(
        {
            "type": "future.thing",
            "topic": "campaigns",
            "id": "6f1c1ad8-5d4a-4b59-9d75-3f3c1b1d2e3f",
            "at": "2026-01-05T10:00:00+00:00",
            "origin": "node-new",
            "payload": {"nested": {"list": [1, 2.5, None, "x"]}, "flag": True},
        }
    )
    event = from_json(text)
    assert isinstance(event, GenericEvent)
    assert (event.type, event.topic, event.origin) == ("future.thing", "campaigns", "node-new")
    assert event.at == datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert event.payload == {"nested": {"list": [1, 2.5, None, "x"]}, "flag": True}
    assert json.loads(to_json(event)) == json.loads(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(payload=st.dictionaries(st.text(max_size=8), json_values, max_size=5))
def test_generic_payloads_round_trip(payload):
    event = GenericEvent(topic="t", type="test_unit.any", payload=payload, origin="n")
    assert from_json(to_json(event)) == event


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "an event must be JSON"),
        ("[1]", "must be a JSON object, got list"),
        ('{"type": "x.y", "topic": "t"}', "event 'x.y' lacks id, at, origin, payload"),
        (
            '{"type":"x.y","topic":"t","id":"i","at":"2026-01-05T10:00:00","origin":"o",'
            '"payload":{}}',
            "has no time zone",
        ),
        (
            '{"type":"x.y","topic":"t","id":"i","at":"yesterday","origin":"o","payload":{}}',
            "event 'x.y' is malformed",
        ),
        (
            '{"type":"x.y","topic":"t","id":"i","at":"2026-01-05T10:00:00Z","origin":"o",'
            '"payload":[]}',
            "payload must be an object",
        ),
        (
            '{"type":"test_unit.call_ended","topic":"calls","id":"i",'
            '"at":"2026-01-05T10:00:00Z","origin":"o","payload":{"call_id":"c"}}',
            r"event 'test_unit.call_ended' is malformed: .*cause",
        ),
    ],
)
def test_malformed_events_are_refused_with_a_clear_error(text, message):
    with pytest.raises(EventDecodeError, match=message):
        from_json(text)


def test_naive_timestamps_are_refused():
    with pytest.raises(ValidationError, match="has no time zone"):
        GenericEvent(topic="t", type="x.y", at=datetime(2026, 1, 5))


def test_event_type_declaration_errors():
    with pytest.raises(DuplicateNameError, match=r"test_unit\.call_ended.*CallEnded.*Again"):

        @event_type("test_unit.call_ended", topic="calls")
        class Again(Event):
            pass

    with pytest.raises(ValueError, match="field name 'topic' is reserved"):

        @event_type("test_unit.reserved", topic="calls")
        class Reserved(Event):
            topic: str

    with pytest.raises(ValueError, match="topic ' calls' must be"):
        event_type("test_unit.blank", topic=" calls")


def test_declared_events_are_frozen_keyword_only_values():
    event = CallEnded(call_id="c", cause=16)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        event.cause = 17  # type: ignore[misc]
    with pytest.raises(TypeError):
        CallEnded("c", 16)  # type: ignore[misc]
    assert CallEnded.topic == "calls"
    assert CallEnded.type == "test_unit.call_ended"
    assert not hasattr(event, "__dict__")


def test_event_ids_are_distinct_random_uuids():
    ids = [CallEnded(call_id="c", cause=16).id for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
    # Every bit left random is random: each hex digit takes all its values somewhere.
    for position in (0, 9, 15, 20, 35):
        assert len({text[position] for text in ids}) == 16, position
    assert {text[19] for text in ids} == set("89ab")


def test_notify_payload_enforces_the_postgresql_limit_in_bytes():
    def sized(total: int, char: str = "x") -> GenericEvent:
        event = GenericEvent(topic="t", type="test_unit.big", payload={"s": ""}, origin="n")
        filler = total - len(to_json(event).encode())
        return attrs.evolve(event, payload={"s": char * (filler // len(char.encode()))})

    fits = sized(MAX_PAYLOAD_BYTES)
    assert len(notify_payload(fits).encode()) == MAX_PAYLOAD_BYTES
    with pytest.raises(EventTooLarge, match=r"event 'test_unit.big' is 8000 bytes as JSON"):
        notify_payload(sized(MAX_PAYLOAD_BYTES + 1))
    # 3999 two-byte characters: short in characters, too long in bytes
    with pytest.raises(EventTooLarge, match="over the 7999-byte limit"):
        notify_payload(sized(MAX_PAYLOAD_BYTES + 2, "é"))


@given(st.lists(st.integers(min_value=0, max_value=MAX_PAYLOAD_BYTES - 200), max_size=40))
def test_events_are_packed_in_order_into_notifications_within_the_limit(fillers):
    """Every event once, in order; each notification within the limit in bytes, an array only
    when it carries more than one event, and none that could also have taken the next event."""
    payloads = [
        to_json(GenericEvent(topic="t", type="test_unit.p", payload={"s": "é" * (n // 2)}))
        for n in fillers
    ]
    notifications = list(pack(payloads))
    start = 0
    for text, count in notifications:
        assert len(text.encode()) <= MAX_PAYLOAD_BYTES
        group = payloads[start : start + count]
        data = json.loads(text)
        assert data == ([json.loads(p) for p in group] if count > 1 else json.loads(group[0]))
        start += count
        if start < len(payloads):
            with_next = "[" + ",".join([*group, payloads[start]]) + "]"
            assert len(with_next.encode()) > MAX_PAYLOAD_BYTES
    assert start == len(payloads)


def test_unserialisable_payload_is_a_clear_error():
    event = GenericEvent(topic="t", type="test_unit.bad", payload={"s": object()})
    with pytest.raises(ValidationError, match=r"event 'test_unit\.bad' cannot be serialised"):
        to_json(event)


_SCALAR_VALUES = {
    str: st.text(),
    int: st.integers(),
    float: st.floats(allow_nan=False),
    bool: st.booleans(),
    type(None): st.none(),
}


@given(st.data())
def test_events_of_scalar_fields_serialise_as_through_cattrs(data):
    import callcore.audit_events
    import callcore.ivr.events

    assert {cls.type for cls in model._flat_writers} >= {"ivr.node_left", "ivr.call_started"}
    assert callcore.audit_events.AuditEntry not in model._flat_writers  # it holds mappings
    for cls in model._flat_writers:
        hints = typing.get_type_hints(cls)
        values = {
            field.name: data.draw(
                st.one_of(*(_SCALAR_VALUES[kind] for kind in typing.get_args(hints[field.name])))
                if isinstance(hints[field.name], types.UnionType)
                else _SCALAR_VALUES[hints[field.name]]
            )
            for field in attrs.fields(cls)
            if field.name not in ("id", "at", "origin")
        }
        event = cls(**values, origin=data.draw(st.text()))
        assert to_wire(event) == model._converted(event)
        assert list(to_wire(event)["payload"]) == list(model._converted(event)["payload"])
        assert from_json(to_json(event)) == event
