"""Conformance with the real Asterisk 22 AGI transcripts in shared/asterisk-captures."""

import pytest

from callcore.agi.protocol import (
    COMMANDS,
    AGIParser,
    CommandReader,
    Hangup,
    HeaderBlock,
    Reply,
    find_command,
    format_command,
    parse_command,
    parse_reply,
)
from callcore.sim.captures import Chunk, Direction, read_transcript, side, transcripts

AGI_CAPTURES = list(transcripts("agi-"))


def test_every_agi_capture_is_here():
    names = {path.name for path in AGI_CAPTURES}
    assert {"agi-basic.txt", "agi-hupidle.txt", "agi-nosighup.txt", "agi-redirectcmd.txt"} <= names
    assert len(names) == 14


@pytest.mark.parametrize("path", AGI_CAPTURES, ids=lambda p: p.name)
def test_every_line_from_asterisk_parses(path):
    records = read_transcript(path)
    events = AGIParser().feed(side(records, Direction.FROM_ASTERISK))
    assert isinstance(events[0], HeaderBlock)
    assert all(isinstance(event, Reply | Hangup) for event in events[1:])


def _commands(records):
    """The commands our side sent, as Asterisk's reader cut them (pieces joined)."""
    return CommandReader().feed(side(records, Direction.TO_ASTERISK))


@pytest.mark.parametrize("path", AGI_CAPTURES, ids=lambda p: p.name)
def test_replaying_asterisk_gives_one_final_reply_per_command(path):
    records = read_transcript(path)
    events = AGIParser().feed(side(records, Direction.FROM_ASTERISK))
    finals = [e for e in events[1:] if isinstance(e, Reply) and not e.interim]
    commands = _commands(records)
    # every command got its reply, except the one the server abandoned when it closed
    abandoned = 1 if path.name == "agi-closemidcmd.txt" else 0
    assert len(finals) == len(commands) - abandoned
    for line, reply in zip(commands, finals, strict=False):
        words = parse_command(line)
        command = find_command(words)
        if command is None:
            assert reply.code == 510, line
        elif reply.code == 520:
            assert line.upper().split() in (
                ["STREAM", "FILE"],
                ["GET", "DATA"],
                ["SAY", "NUMBER", "ABC", '"#"'],
                ["WAIT", "FOR", "DIGIT"],
                ["DATABASE", "GET", "ONLYFAMILY"],
            )
        else:
            assert reply.code in (200, 511), line


@pytest.mark.parametrize("path", AGI_CAPTURES, ids=lambda p: p.name)
def test_511_only_ever_answers_commands_that_need_a_live_channel(path):
    records = read_transcript(path)
    events = AGIParser().feed(side(records, Direction.FROM_ASTERISK))
    finals = [e for e in events[1:] if isinstance(e, Reply) and not e.interim]
    for line, reply in zip(_commands(records), finals, strict=False):
        command = find_command(parse_command(line))
        if reply.code == 511:
            assert command is not None and not COMMANDS[command], line
        elif command is not None and reply.code == 200 and _after_hangup(events, reply):
            assert COMMANDS[command], line


def _after_hangup(events, reply):
    position = next(i for i, e in enumerate(events) if e is reply)
    return any(isinstance(e, Hangup) for e in events[:position])


def test_agi_basic_header_block():
    records = read_transcript(next(p for p in AGI_CAPTURES if p.name == "agi-basic.txt"))
    [block, *_] = AGIParser().feed(side(records, Direction.FROM_ASTERISK))
    headers = block.headers
    assert headers.args == ("arg1", "arg 2 with spaces", "", "last")
    assert headers.script_path == "basic"
    assert headers.query == {"x": ("1",), "y": ("two",)}
    assert headers.channel == "Local/s@caller-00000003;1"
    assert headers.uniqueid == "1795557253.6"
    assert headers.callerid == "5551234"
    assert headers.calleridname == "Alice Caller"
    assert headers.dnid == "unknown"
    assert headers.context == "test-ivr"
    assert headers.extension == "s"
    assert headers.language == "en"
    assert headers.accountcode == ""
    assert headers.values["agi_threadid"] == "140625114658496"


def test_agi_basic_replies_in_detail():
    records = read_transcript(next(p for p in AGI_CAPTURES if p.name == "agi-basic.txt"))
    replies = [e for e in AGIParser().feed(side(records, Direction.FROM_ASTERISK))[1:]]
    assert Reply(200, "53", endpos=9120) in replies
    assert Reply(200, "", "timeout") in replies
    assert Reply(200, "12", "timeout") in replies
    assert Reply(200, "0", "timeout", 0) in replies
    assert Reply(200, "1", "hello world-Local/s@caller-00000003;1") in replies
    assert Reply(100, "0", text="Trying...") in replies
    assert Reply(200, "0", text="Gosub complete") in replies
    usage = [r for r in replies if isinstance(r, Reply) and r.code == 520]
    assert len(usage) == 5
    assert usage[-1].text.startswith("Retrieves an entry in the Asterisk database")
    assert usage[-1].text.endswith("Example return code: 200 result=1 (testvariable)")


def test_every_command_we_sent_formats_back_to_the_same_words():
    """Our formatter writes each captured command so that Asterisk reads the same arguments."""
    checked = 0
    for path in AGI_CAPTURES:
        for line in _commands(read_transcript(path)):
            words = parse_command(line)
            command = find_command(words)
            if command is None or "\r" in line:
                continue
            args = words[len(command) :]
            [again] = CommandReader().feed(format_command(" ".join(command), *args))
            assert parse_command(again) == [*command, *args]
            checked += 1
    assert checked > 100


def test_ami_agi_exec_events_carry_commands_our_parser_splits():
    """AGIExecStart/End events in the AMI captures name AGI commands: they split the same way."""
    seen = 0
    for path in transcripts("ami-"):
        for record in read_transcript(path):
            if isinstance(record, Chunk) and record.data.startswith(b"Command: "):
                line = record.data[len(b"Command: ") :].removesuffix(b"\r\n").decode()
                words = parse_command(line)
                if words and find_command(words):
                    seen += 1
    assert seen > 50


@pytest.mark.parametrize(
    "line",
    sorted(
        {
            r.data.decode().removesuffix("\n")
            for p in AGI_CAPTURES
            for r in read_transcript(p)
            if isinstance(r, Chunk)
            and r.direction is Direction.FROM_ASTERISK
            and r.data[:3].isdigit()
            and r.data[3:4] == b" "
        }
    ),
)
def test_each_distinct_reply_line(line):
    reply = parse_reply(line)
    assert reply.code in (100, 200, 510, 511, 520)
