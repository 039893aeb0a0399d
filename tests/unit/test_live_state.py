"""LiveState against the real Asterisk captures: the state each file implies, at the end and at
chosen points; idempotence; resync snapshots and their exact deltas; payload bounds."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from callcore.ami.client import ListResult, ResyncSnapshot
from callcore.ami.events import AMIEvent, parse_event
from callcore.ami.protocol import (
    AMIParser,
    Message,
    MessageKind,
    Role,
    is_list_complete,
    is_list_start,
)
from callcore.events import MAX_PAYLOAD_BYTES, from_json, notify_payload
from callcore.live.events import Op, event_of
from callcore.live.state import (
    ID_LIMIT,
    MAX_LEGS,
    MAX_SPIES,
    TEXT_LIMIT,
    Call,
    CallState,
    Channel,
    ChannelState,
    Delta,
    Kind,
    LiveState,
    MemberState,
    call_transition,
    channel_transition,
    clip,
    member_transition,
)
from callcore.sim.ami_replay import Expect, Send, sessions_of
from callcore.sim.captures import captures_dir, read_transcript, transcripts

SERVER = "pbx1"
Item = AMIEvent | tuple[str, ListResult]


def replay(path: Path, server_id: str = SERVER) -> list[Item]:
    """What the client would see of a capture: unsolicited events, and list answers (with the
    action's name) at the point they completed."""
    items: list[Item] = []
    for steps in sessions_of(read_transcript(path)):
        first = steps[0]
        banner = isinstance(first, Send) and first.data.startswith(b"Asterisk Call Manager/")
        parser = AMIParser(Role.CLIENT, expect_banner=banner)
        names: dict[str | None, str] = {}
        lists: dict[str | None, tuple[Message, list[Message]]] = {}
        for step in steps:
            if isinstance(step, Expect):
                names[step.action.action_id] = step.action.name or ""
                continue
            if not isinstance(step, Send):
                continue
            for message in parser.receive_data(step.data):
                if not isinstance(message, Message):
                    continue
                ref = message.action_id
                if message.kind is MessageKind.RESPONSE and is_list_start(message):
                    lists[ref] = (message, [])
                elif message.kind is MessageKind.EVENT and ref in lists:
                    if is_list_complete(message):
                        response, entries = lists.pop(ref)
                        typed = tuple(parse_event(server_id, e) for e in entries)
                        items.append((names[ref], ListResult(response, typed, message)))
                    else:
                        lists[ref][1].append(message)
                elif message.kind is MessageKind.EVENT:
                    items.append(parse_event(server_id, message))
    return items


def events_of(name: str, server_id: str = SERVER) -> list[AMIEvent]:
    return [i for i in replay(captures_dir() / name, server_id) if isinstance(i, AMIEvent)]


def state_after(events: list[AMIEvent], until: Callable[[AMIEvent], bool]) -> LiveState:
    """The state right after the first event for which ``until`` is true."""
    state = LiveState()
    for event in events:
        state.apply(event)
        if until(event):
            return state
    raise AssertionError("the capture has no such point")


def nth(name: str, count: int) -> Callable[[AMIEvent], bool]:
    seen = 0

    def check(event: AMIEvent) -> bool:
        nonlocal seen
        seen += event.name == name
        return seen == count

    return check


AMI_CAPTURES = list(transcripts("ami-"))


# -- the state each capture implies --------------------------------------------------------


@pytest.mark.parametrize("path", AMI_CAPTURES, ids=lambda p: p.name)
def test_every_capture_ends_with_no_channel_and_no_call(path: Path) -> None:
    state = LiveState()
    for item in replay(path):
        if isinstance(item, AMIEvent):
            state.apply(item)
    assert state.channels() == []
    assert state.calls() == []
    assert state.callers() == []


def test_originate_into_agi_and_dial_bridges_the_two_legs() -> None:
    events = events_of("ami-originate-agi-basic.txt")
    state = state_after(events, nth("BridgeEnter", 2))
    bridged = [c for c in state.channels() if c.bridge_id]
    assert [c.name for c in bridged] == ["Local/s@caller-00000003;1", "Local/100@callee-00000004;1"]
    assert {c.bridge_id for c in bridged} == {"d6725726-fce0-454b-958b-d25e37dee405"}
    (call,) = state.calls()
    assert call.key == (SERVER, "1795557253.6")
    assert call.state is CallState.BRIDGED
    assert call.leg_count == 4
    assert call.legs == ("1795557253.6", "1795557253.7", "1795557283.8", "1795557283.9")
    assert {c.state for c in state.channels()} == {ChannelState.UP}

    state = state_after(events, nth("BridgeDestroy", 1))
    assert all(c.bridge_id is None for c in state.channels())
    assert [c.state for c in state.calls()] == [CallState.UP]


def test_chanspy_barge_the_three_spies_listen_to_the_talking_call() -> None:
    events = events_of("ami-chanspy.txt")
    state = state_after(events, nth("ChanSpyStart", 1))
    spier = state.channel(SERVER, "1795557448.52")
    assert spier is not None and spier.spying_on == "1795557447.50"
    talk = state.call(SERVER, "1795557447.50")
    assert talk is not None and talk.spies == ("1795557448.52",)

    # The barge (qB): the third spy joins; the spier's dialplan half (;2) has hung up.
    state = state_after(
        events, lambda e: e.name == "Hangup" and e.fields["Uniqueid"].endswith(".57")
    )
    names = sorted(c.name for c in state.channels())
    assert names == [
        "Local/s@spier-0000001a;1",
        "Local/s@spier-0000001b;1",
        "Local/s@spier-0000001c;1",
        "Local/talk@callee-00000019;1",
        "Local/talk@callee-00000019;2",
    ]
    talk = state.call(SERVER, "1795557447.50")
    assert talk is not None
    assert talk.state is CallState.UP
    assert talk.legs == ("1795557447.50", "1795557447.51")
    assert talk.spies == ("1795557448.52", "1795557464.54", "1795557481.56")
    assert {c.spying_on for c in state.channels() if "spier" in c.name} == {"1795557447.50"}

    state = state_after(events, nth("ChanSpyStop", 3))
    assert [c.spying_on for c in state.channels() if "spier" in c.name] == [None, None, None]
    talk = state.call(SERVER, "1795557447.50")
    assert talk is not None and talk.spies == ()


def test_queue_caller_rings_a_member_then_abandons() -> None:
    events = events_of("ami-queue-noanswer-abandon.txt")
    state = state_after(events, nth("QueueCallerJoin", 1))
    (caller,) = state.callers()
    assert (caller.queue, caller.position, caller.caller_num) == ("sales", 1, "5550001")
    (paused,) = state.members()
    assert paused.interface == "Local/agent3@agents/n"
    assert (paused.state, paused.paused_reason) == (MemberState.PAUSED, "break")

    state = state_after(events, nth("QueueMemberStatus", 1))
    two = {m.interface: m for m in state.members()}["Local/agent2@agents/n"]
    assert (two.status, two.state, two.membership) == (2, MemberState.IN_CALL, "static")

    state = state_after(events, nth("QueueCallerLeave", 1))
    assert state.callers() == []
    members = {m.interface: m.state for m in state.members()}
    assert members == {
        "Local/agent2@agents/n": MemberState.AVAILABLE,
        "Local/agent3@agents/n": MemberState.PAUSED,
    }
    caller_channel = state.channel(SERVER, "1795557425.44")
    assert caller_channel is not None and caller_channel.state is ChannelState.UP

    final = state_after(events, nth("QueueMemberRemoved", 1))
    assert [m.interface for m in final.members()] == ["Local/agent2@agents/n"]


def test_queue_admin_pause_penalty_and_removal() -> None:
    events = events_of("ami-queue-admin.txt")
    key = ("pbx1", "support", "Local/agent3@agents/n")

    def member(until: Callable[[AMIEvent], bool]) -> tuple[object, ...] | None:
        found = {m.key: m for m in state_after(events, until).members()}.get(key)
        if found is None:
            return None
        return (found.state, found.penalty, found.paused_reason, found.membership)

    assert member(nth("QueueMemberAdded", 1)) == (MemberState.AVAILABLE, 2, "", "dynamic")
    assert member(nth("QueueMemberPause", 1)) == (MemberState.PAUSED, 2, "lunch", "dynamic")
    assert member(nth("QueueMemberPause", 2)) == (MemberState.AVAILABLE, 2, "", "dynamic")
    assert member(nth("QueueMemberPenalty", 1)) == (MemberState.AVAILABLE, 5, "", "dynamic")
    assert member(nth("QueueMemberRemoved", 1)) is None


# -- idempotence -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", AMI_CAPTURES, ids=lambda p: p.name)
def test_every_event_applied_twice_changes_nothing_the_second_time(path: Path) -> None:
    events = [i for i in replay(path) if isinstance(i, AMIEvent)]
    once, twice = LiveState(), LiveState()
    for event in events:
        once.apply(event)
        twice.apply(event)
        assert twice.apply(event) == []
        assert twice.view() == once.view()


@pytest.mark.parametrize(
    "name",
    ["ami-originate-agi-basic.txt", "ami-chanspy.txt", "ami-queue-noanswer-abandon.txt"],
)
def test_events_replayed_over_a_later_snapshot_converge(name: str) -> None:
    """A resync delivers the events held since Login after a snapshot that may already reflect
    some of them: replaying any suffix over a later state must land on the same final state."""
    events = events_of(name)
    straight = LiveState()
    states = []
    for event in events:
        states.append(copy.deepcopy(straight))
        straight.apply(event)
    step = max(1, len(events) // 25)
    for k in range(0, len(events), step):
        for back in (1, 5, 20, 60):
            replayed = copy.deepcopy(states[k])
            for event in events[max(0, k - back) :]:
                replayed.apply(event)
            assert replayed.view() == straight.view(), (k, back)


# -- resync -----------------------------------------------------------------------------------


def listed(name: str, action: str, index: int = 0) -> ListResult:
    found = [i[1] for i in replay(captures_dir() / name) if isinstance(i, tuple) and i[0] == action]
    return found[index]


def until_list(name: str, action: str) -> LiveState:
    """The state built from the capture's events up to its first ``action`` list."""
    state = LiveState()
    for item in replay(captures_dir() / name):
        if isinstance(item, tuple) and item[0] == action:
            return state
        if isinstance(item, AMIEvent):
            state.apply(item)
    raise AssertionError(f"{name} has no {action}")


@pytest.mark.parametrize(
    ("name", "actions"),
    [
        ("ami-actions.txt", ("CoreShowChannels", "Status")),
        ("ami-queue-noanswer-abandon.txt", ("QueueStatus",)),
    ],
)
def test_a_captured_snapshot_matches_the_state_built_from_events(
    name: str, actions: tuple[str, ...]
) -> None:
    state = until_list(name, actions[0])
    before = state.view()
    snapshot = ResyncSnapshot(SERVER, {a: listed(name, a) for a in actions}, {})
    assert state.resync(snapshot) == []
    assert state.view() == before
    assert before  # the snapshot is of a live call, not of nothing


def with_values(message: Message, **values: str) -> Message:
    for key, value in values.items():
        message = message.with_field(key, value)
    return message


def test_a_differing_snapshot_gives_exactly_the_right_deltas() -> None:
    state = until_list("ami-actions.txt", "CoreShowChannels")
    other = LiveState()
    for event in events_of("ami-actions.txt", "pbx2")[:60]:
        state.apply(event)
        other.apply(event)
    pbx2 = state.view("pbx2")
    assert pbx2

    shown = listed("ami-actions.txt", "CoreShowChannels")
    agi_leg, wait_leg = shown.events
    moved = with_values(agi_leg.fields, Application="Playback")
    newcomer = with_values(
        wait_leg.fields,
        Channel="PJSIP/trunk-00000001",
        Uniqueid="1795557999.90",
        Linkedid="1795557999.90",
        ChannelState="5",
        CallerIDNum="5550199",
    )
    entries = tuple(parse_event(SERVER, m) for m in (moved, newcomer))
    snapshot = ResyncSnapshot(SERVER, {"CoreShowChannels": attrs.evolve(shown, events=entries)}, {})
    deltas = state.resync(snapshot)

    summary = [(d.kind, d.key, d.removed) for d in deltas]
    assert summary == [
        (Kind.CHANNEL, (SERVER, "1795557570.75"), True),
        (Kind.CHANNEL, (SERVER, "1795557570.74"), False),
        (Kind.CHANNEL, (SERVER, "1795557999.90"), False),
        (Kind.CALL, (SERVER, "1795557570.74"), False),
        (Kind.CALL, (SERVER, "1795557999.90"), False),
    ]
    changed = state.channel(SERVER, "1795557570.74")
    assert changed is not None and changed.application == "Playback"
    new_call = state.call(SERVER, "1795557999.90")
    assert new_call is not None and new_call.state is CallState.RINGING
    old_call = state.call(SERVER, "1795557570.74")
    assert old_call is not None and (old_call.legs, old_call.leg_count) == (("1795557570.74",), 1)
    assert state.view("pbx2") == pbx2 == other.view("pbx2")


def test_a_snapshot_without_queue_status_keeps_the_members() -> None:
    state = until_list("ami-queue-noanswer-abandon.txt", "QueueStatus")
    members = state.members()
    assert members and state.callers()
    empty = ListResult(Message([("Response", "Success")]), (), None)
    deltas = state.resync(ResyncSnapshot(SERVER, {"CoreShowChannels": empty}, {}))
    assert {(d.kind, d.removed) for d in deltas} == {
        (Kind.CHANNEL, True),
        (Kind.CALL, True),
        (Kind.CALLER, True),  # its channel is gone
    }
    assert (state.members(), state.callers(), state.channels()) == (members, [], [])

    deltas = state.resync(ResyncSnapshot(SERVER, {"QueueStatus": empty}, {}))
    assert [(d.kind, d.removed) for d in deltas] == [(Kind.MEMBER, True)] * 2
    assert state.members() == []


def test_spying_survives_a_resync_while_both_channels_exist() -> None:
    events = events_of("ami-chanspy.txt")
    state = state_after(events, nth("ChanSpyStart", 1))
    entries = []
    for channel in state.channels():
        fields = [
            ("Event", "CoreShowChannel"),
            ("Channel", channel.name),
            ("ChannelState", "6"),
            ("CallerIDNum", channel.caller_num),
            ("CallerIDName", channel.caller_name),
            ("ConnectedLineNum", channel.connected_num),
            ("ConnectedLineName", channel.connected_name),
            ("Context", channel.context),
            ("Exten", channel.exten),
            ("Uniqueid", channel.uniqueid),
            ("Linkedid", channel.linkedid),
            ("Application", channel.application),
            ("BridgeId", ""),
        ]
        entries.append(parse_event(SERVER, Message(fields)))
    result = ListResult(Message([("Response", "Success")]), tuple(entries), None)
    assert state.resync(ResyncSnapshot(SERVER, {"CoreShowChannels": result}, {})) == []
    talk = state.call(SERVER, "1795557447.50")
    assert talk is not None and talk.spies == ("1795557448.52",)


# -- transitions ------------------------------------------------------------------------------


def test_a_channel_never_moves_back() -> None:
    assert channel_transition(None, ChannelState.DOWN) is ChannelState.DOWN
    assert channel_transition(ChannelState.DOWN, ChannelState.RINGING) is ChannelState.RINGING
    assert channel_transition(ChannelState.RINGING, ChannelState.UP) is ChannelState.UP
    assert channel_transition(ChannelState.UP, ChannelState.RINGING) is ChannelState.UP
    assert channel_transition(ChannelState.UP, ChannelState.DOWN) is ChannelState.UP
    assert channel_transition(ChannelState.RINGING, ChannelState.BUSY) is ChannelState.BUSY
    assert channel_transition(ChannelState.BUSY, ChannelState.UP) is ChannelState.BUSY


def test_member_state_precedence() -> None:
    assert member_transition(1, False, False) is MemberState.AVAILABLE
    assert member_transition(1, True, False) is MemberState.PAUSED
    assert member_transition(2, True, False) is MemberState.IN_CALL
    assert member_transition(6, False, False) is MemberState.RINGING
    assert member_transition(5, True, False) is MemberState.UNAVAILABLE
    assert member_transition(4, False, False) is MemberState.UNAVAILABLE
    assert member_transition(1, False, True) is MemberState.IN_CALL


def test_call_state_follows_its_legs() -> None:
    ringing = Channel("s", "1.1", "1.1", "A", ChannelState.RINGING)
    up = attrs.evolve(ringing, uniqueid="1.2", state=ChannelState.UP)
    assert call_transition([ringing]) is CallState.RINGING
    assert call_transition([ringing, up]) is CallState.UP
    assert call_transition([ringing, attrs.evolve(up, bridge_id="b")]) is CallState.BRIDGED


# -- payloads ---------------------------------------------------------------------------------


def test_clip_bounds_json_bytes_and_repairs_undecodable_bytes() -> None:
    assert clip("Alice") == "Alice"
    assert clip(None) == ""
    for text in ("é" * 500, "\x01" * 500, '"' * 500, "\U0001f600" * 500, "a\udcff" * 200):
        clipped = clip(text, 100)
        assert len(json.dumps(clipped, ensure_ascii=False).encode()) - 2 <= 100
        assert text.startswith(clipped) or "\ufffd" in clipped
    assert clip("ok\udcff") == "ok\ufffd"


def test_the_largest_channel_and_call_fit_in_one_notification() -> None:
    nasty = "\x01\U0001f600" * 1000
    ids = [clip(f"{i}{nasty}", ID_LIMIT) for i in range(MAX_LEGS + MAX_SPIES + 1)]
    text = clip(nasty, TEXT_LIMIT)
    channel = Channel(
        "pbx1",
        ids[0],
        ids[1],
        text,
        ChannelState.UP,
        *([text] * 7),
        bridge_id=ids[2],
        spying_on=ids[3],
    )
    call = Call(
        "pbx1",
        ids[0],
        CallState.BRIDGED,
        tuple(ids[:MAX_LEGS]),
        10_000,
        text,
        text,
        tuple(ids[MAX_LEGS : MAX_LEGS + MAX_SPIES]),
    )
    for record in (channel, call):
        for removed in (False, True):
            event = event_of(Delta(record, removed=removed))
            payload = notify_payload(event)
            assert len(payload.encode()) <= MAX_PAYLOAD_BYTES
            decoded = from_json(payload)
            assert decoded == event
            assert decoded.op is (Op.REMOVE if removed else Op.UPSERT)  # type: ignore[attr-defined]


def test_a_hostile_event_is_clipped_on_the_way_in() -> None:
    huge = "x" * 100_000
    event = parse_event(
        SERVER,
        Message(
            [
                ("Event", "Newchannel"),
                ("Channel", huge),
                ("ChannelState", "0"),
                ("CallerIDName", huge),
                ("Uniqueid", "1.1"),
                ("Linkedid", "1.1"),
            ]
        ),
    )
    state = LiveState()
    (channel_delta, call_delta) = state.apply(event)
    assert len(channel_delta.record.name) == TEXT_LIMIT  # type: ignore[union-attr]
    for delta in (channel_delta, call_delta):
        assert len(notify_payload(event_of(delta)).encode()) < 2000
