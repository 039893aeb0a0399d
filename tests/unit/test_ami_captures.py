"""Every AMI capture, both directions, through the one codec: nothing lost, nothing malformed."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from callcore.ami.events import EVENT_TYPES, RawEvent, parse_event
from callcore.ami.protocol import (
    AMIParser,
    Banner,
    EventList,
    Message,
    MessageKind,
    Role,
    is_list_start,
    serialize,
)
from callcore.sim.ami_replay import Close, Expect, Send, sessions_of
from callcore.sim.captures import read_transcript, transcripts

CAPTURES = list(transcripts("ami-"))


def test_there_are_ami_captures() -> None:
    assert len(CAPTURES) >= 10


def connections(path: Path) -> list[bytes]:
    """The bytes Asterisk sent, per connection (the replay server's split into sessions)."""
    return [
        b"".join(step.data for step in steps if isinstance(step, Send))
        for steps in sessions_of(read_transcript(path))
    ]


def from_asterisk(path: Path) -> list[Banner | Message]:
    items: list[Banner | Message] = []
    for sent in connections(path):
        parser = AMIParser(Role.CLIENT, expect_banner=sent.startswith(b"Asterisk Call Manager/"))
        parsed = parser.receive_data(sent) + parser.receive_data(b"")
        assert all(isinstance(i, Banner | Message) for i in parsed), parsed
        items += parsed  # type: ignore[arg-type]
    return items


def raw_lines(path: Path, prefix: str) -> int:
    return len(re.findall(rf"^{re.escape(prefix)}", path.read_text(encoding="utf-8"), re.M))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_asterisk_side_parses_and_writes_back_byte_for_byte(path: Path) -> None:
    for sent in connections(path):
        banner = sent.startswith(b"Asterisk Call Manager/")
        parser = AMIParser(Role.CLIENT, expect_banner=banner)
        items = parser.receive_data(sent) + parser.receive_data(b"")
        written = b""
        for item in items:
            if isinstance(item, Banner):
                assert item.version == "11.0.0"
                written += (item.text + "\r\n").encode()
            else:
                assert isinstance(item, Message)
                written += serialize(item)
        assert written == sent


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_counts_of_events_and_responses_match_the_file(path: Path) -> None:
    items = from_asterisk(path)
    kinds = [i.kind for i in items if isinstance(i, Message)]
    assert kinds.count(MessageKind.EVENT) == raw_lines(path, "<< Event: ")
    assert kinds.count(MessageKind.RESPONSE) == raw_lines(path, "<< Response: ") - sum(
        1 for i in items if isinstance(i, Message) and i.name == "OriginateResponse"
    )
    assert sum(isinstance(i, Banner) for i in items) == raw_lines(path, "<< Asterisk Call Manager/")
    assert MessageKind.UNKNOWN not in kinds


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_our_side_parses_as_actions_in_server_role(path: Path) -> None:
    total = 0
    for steps in sessions_of(read_transcript(path)):
        actions = [s.action for s in steps if isinstance(s, Expect)]
        total += len(actions)
        assert all(a.kind in (MessageKind.ACTION, MessageKind.UNKNOWN) for a in actions)
    # Every captured message we sent ends with an empty line; count those, not "Action:" lines
    # (ami-actions.txt also sends one without an Action header, and one in lower case).
    assert total == raw_lines(path, ">> \\r\\n") + raw_lines(path, ">> \\n")


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_list_actions_assemble_into_their_listed_number_of_entries(path: Path) -> None:
    lists: dict[str, EventList] = {}
    finished: list[EventList] = []
    for item in from_asterisk(path):
        if isinstance(item, Banner):
            continue
        if item.kind is MessageKind.RESPONSE and is_list_start(item):
            lists[item.action_id or ""] = EventList(item.action_id or "")
        collector = lists.get(item.action_id or "")
        if collector is not None and collector.feed(item):
            finished.append(lists.pop(collector.action_id))
    assert not lists, f"lists never completed: {list(lists)}"
    for collected in finished:
        assert collected.complete_event is not None
        assert len(collected.events) == int(collected.complete_event["ListItems"])
        names = {e.name for e in collected.events}
        assert all(n and not n.endswith("Complete") for n in names)


def test_known_lists_of_the_captures() -> None:
    """Spot checks of what the files show: CoreShowChannels 2 channels, QueueStatus entries."""
    actions = [i for i in from_asterisk(CAPTURES[0]) if isinstance(i, Message)]
    assert CAPTURES[0].name == "ami-actions.txt"
    channels = [m for m in actions if m.name == "CoreShowChannel"]
    assert [m["Uniqueid"] for m in channels] == ["1795557570.74", "1795557570.75"]


def test_repeated_keys_are_all_kept() -> None:
    path = next(p for p in CAPTURES if p.name == "ami-actions.txt")
    messages = [i for i in from_asterisk(path) if isinstance(i, Message)]
    outputs = [m.getall("Output") for m in messages if "Output" in m]
    assert sum(len(o) for o in outputs) == raw_lines(path, "<< Output:")
    queue = next(o for o in outputs if o[0].startswith("support has 0 calls"))
    assert queue[1] == "   Members: " and queue[-1] == ""
    variables = [m.getall("Variable") for m in messages if m.name == "Status"]
    assert ["FROMAGI=held", "AGISCRIPT=hold"] in variables


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_captured_event_of_a_typed_name_types_cleanly(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="callcore.ami.events"):
        for item in from_asterisk(path):
            if isinstance(item, Message) and item.kind is MessageKind.EVENT:
                event = parse_event("pbx1", item)
                assert event.server_id == "pbx1" and event.fields is item
                typed = (item.name or "").lower() in EVENT_TYPES
                assert isinstance(event, RawEvent) is not typed, item.name
    assert caplog.records == []


def test_closing_notes_become_close_steps() -> None:
    path = next(p for p in CAPTURES if p.name == "ami-login-logoff.txt")
    sessions = sessions_of(read_transcript(path))
    assert len(sessions) == 3
    assert all(isinstance(steps[-1], Close) for steps in sessions)
