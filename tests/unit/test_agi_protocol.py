"""The sans-I/O AGI protocol: quoting round trips, injection refused, a parser that never hangs."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.agi import protocol
from callcore.agi.errors import AGIError, AGIInjectionError, AGIProtocolError
from callcore.agi.protocol import (
    ASTERISK_LINE_BYTES,
    HANGUP,
    AGIParser,
    CommandReader,
    HeaderBlock,
    Reply,
    find_command,
    format_command,
    format_header_block,
    format_reply,
    format_usage,
    parse_command,
    parse_header_block,
    parse_reply,
    runs_on_dead_channel,
)

# Arguments as a caller ID, a DTMF string or a variable value may hold them: anything but the
# three characters that end a line.
arguments = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)),
    max_size=40,
)


def send(command: str, *args: str) -> list[str]:
    """What Asterisk's reader and parser make of one formatted command."""
    [line] = CommandReader().feed(format_command(command, *args))
    return parse_command(line)


@given(st.lists(arguments, max_size=8))
def test_every_argument_reaches_asterisk_unchanged(args):
    assert send("SET VARIABLE", *args) == ["SET", "VARIABLE", *args]


@given(arguments, st.sampled_from(["\r", "\n", "\x00"]), arguments)
def test_line_breaks_and_nul_in_an_argument_are_refused(before, bad, after):
    with pytest.raises(AGIInjectionError, match="CR, LF or NUL"):
        format_command("SET VARIABLE", "CALLERID", before + bad + after)


def test_an_injection_attempt_never_becomes_a_second_command():
    with pytest.raises(AGIInjectionError):
        format_command("SET VARIABLE", "X", "y\nEXEC System rm")
    # quotes and backslashes cannot close the argument early either
    evil = '" \\" ; EXEC System x \\'
    assert send("VERBOSE", evil, "1") == ["VERBOSE", evil, "1"]


def test_a_line_asterisk_would_cut_in_two_is_refused():
    fits = "x" * (ASTERISK_LINE_BYTES - len("VERBOSE \n"))
    assert send("VERBOSE", fits) == ["VERBOSE", fits]
    with pytest.raises(AGIInjectionError, match="second command"):
        format_command("VERBOSE", fits + "x")
    # what Asterisk does with such a line, hence the refusal
    assert CommandReader().feed(b"VERBOSE " + b"x" * ASTERISK_LINE_BYTES + b" NOOP\n") == [
        "VERBOSE " + "x" * (ASTERISK_LINE_BYTES - 8),
        "xxxxxxxx NOOP",
    ]


def test_format_command_quotes_only_what_needs_it():
    assert format_command("STREAM FILE", "beep", "0123456789#*") == (
        b"STREAM FILE beep 0123456789#*\n"
    )
    assert format_command("STREAM FILE", "beep", "") == b'STREAM FILE beep ""\n'
    assert format_command("SET VARIABLE", "FOO", "hello world") == (
        b'SET VARIABLE FOO "hello world"\n'
    )
    assert format_command("SET CALLERID", '"Bob" <55>') == b'SET CALLERID "\\"Bob\\" <55>"\n'
    assert format_command("WAIT FOR DIGIT", -1) == b"WAIT FOR DIGIT -1\n"


@pytest.mark.parametrize("command", ["", "STREAM  FILE", "NOOP\nHANGUP", 'SET "X"', "VERBOSE 1"])
def test_malformed_command_words_are_refused(command):
    with pytest.raises(AGIInjectionError, match="ASCII letters"):
        format_command(command)


def test_arguments_must_be_text_or_integers():
    with pytest.raises(AGIInjectionError, match="string or an integer"):
        format_command("VERBOSE", None)  # type: ignore[arg-type]
    with pytest.raises(AGIInjectionError, match="string or an integer"):
        format_command("VERBOSE", ["a list"])  # type: ignore[arg-type]


def test_lines_formatted_before_do_not_let_lookalike_arguments_through():
    """Formatted lines are reused by (command, args), and True == 1.0 == 1 as keys: neither
    may come back as the line formatted for 1."""
    assert format_command("VERBOSE", "hello", 1) == b"VERBOSE hello 1\n"
    assert format_command("VERBOSE", "hello", 1) == b"VERBOSE hello 1\n"
    for lookalike in (True, 1.0):
        with pytest.raises(AGIInjectionError, match="string or an integer"):
            format_command("VERBOSE", "hello", lookalike)  # type: ignore[arg-type]


def test_parse_command_follows_asterisk_parse_args():
    assert parse_command('STREAM FILE beep "0123456789#*"') == [
        "STREAM",
        "FILE",
        "beep",
        "0123456789#*",
    ]
    assert parse_command('SET CALLERID "Bob Agent" <5559876>') == [
        "SET",
        "CALLERID",
        "Bob Agent",
        "<5559876>",
    ]
    assert parse_command('a"b c"d e\\ f \\\\ "" \t x') == ["ab cd", "e f", "\\", "", "x"]
    assert parse_command("GET VARIABLE AGISCRIPT\r") == ["GET", "VARIABLE", "AGISCRIPT\r"]
    assert parse_command("") == []
    assert len(parse_command(" ".join(["w"] * 200))) == 127


def test_command_table_knows_what_runs_on_a_dead_channel():
    assert find_command(["stream", "file", "beep"]) == ("STREAM", "FILE")
    assert find_command(["GET", "FULL", "VARIABLE", "x"]) == ("GET", "FULL", "VARIABLE")
    assert find_command(["FOO", "BAR"]) is None
    assert find_command([]) is None
    assert runs_on_dead_channel("GET VARIABLE")
    assert runs_on_dead_channel("exec")
    assert not runs_on_dead_channel("STREAM FILE")
    assert not runs_on_dead_channel("NO SUCH THING")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=0", Reply(200, "0")),
        ("200 result=0 endpos=3520", Reply(200, "0", endpos=3520)),
        ("200 result=53 endpos=9120", Reply(200, "53", endpos=9120)),
        ("200 result=0 endpos=-1", Reply(200, "0", endpos=-1)),
        ("200 result=12 (timeout)", Reply(200, "12", "timeout")),
        ("200 result= (timeout)", Reply(200, "", "timeout")),
        ("200 result=0 (timeout) endpos=0", Reply(200, "0", "timeout", 0)),
        ("200 result=35 (dtmf) endpos=0", Reply(200, "35", "dtmf", 0)),
        ("200 result=1 ()", Reply(200, "1", "")),
        ('200 result=1 ("Alice" <555>)', Reply(200, "1", '"Alice" <555>')),
        ("200 result=1 (x) endpos=5)", Reply(200, "1", "x) endpos=5")),
        ("100 result=0 Trying...", Reply(100, "0", text="Trying...")),
        ("200 result=0 Gosub complete", Reply(200, "0", text="Gosub complete")),
        ("510 Invalid or unknown command", Reply(510, text="Invalid or unknown command")),
        ("511 Command Not Permitted", Reply(511, text="Command Not Permitted")),
    ],
)
def test_reply_forms(line, expected):
    assert parse_reply(line) == expected
    assert AGIParser().feed(b"\n" + line.encode() + b"\n")[1:] == [expected]


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("200 result=53 endpos=9120", 53),
        ("200 result=-1", -1),
        ("200 result=123456", 123456),
        ("200 result= (timeout)", None),
        ("200 result=1x", None),
        ("200 result=٣", None),
        ("510 Invalid or unknown command", None),
    ],
)
def test_a_reply_knows_its_result_as_a_number(line, number):
    assert parse_reply(line).number == number


@pytest.mark.parametrize("line", ["", "20", "abc result=0", "2000 result=1", "-12 x", "２００ x"])
def test_lines_that_are_not_replies_are_protocol_errors(line):
    with pytest.raises(AGIProtocolError, match="not an AGI reply"):
        parse_reply(line)


def test_asterisk_side_formats_what_the_parser_reads():
    for reply in [
        format_reply(0, endpos=3520),
        format_reply("", data="timeout"),
        format_reply(0, data="timeout", endpos=0),
        format_reply(0, text="Trying...", code=100),
    ]:
        [event] = AGIParser().feed(b"\n" + reply)[1:]
        assert isinstance(event, Reply)
        assert (
            format_reply(
                event.result or "",
                data=event.data,
                endpos=event.endpos,
                text=event.text,
                code=event.code,
            )
            == reply
        )
    frame = format_usage("Usage: GET DATA <file>\nsecond line")
    [_, usage] = AGIParser().feed(b"\n" + frame)
    assert usage == Reply(520, text="Usage: GET DATA <file>\nsecond line")
    with pytest.raises(AGIInjectionError):
        format_usage("520 End of proper usage.")
    with pytest.raises(AGIInjectionError):
        format_reply(1, data="two\nlines")


def test_header_block_any_order_unknown_keys_and_numbered_args():
    block = format_header_block(
        {
            "agi_arg_2": "second",
            "agi_network_script": "/inbound/%2B33123?lang=fr&x=1&x=2&empty=",
            "agi_channel": "PJSIP/trunk-0000002a",
            "agi_arg_10": "tenth",
            "agi_arg_1": "first",
            "agi_custom_thing": "kept",
            "agi_accountcode": "",
        }
    )
    headers = parse_header_block(block)
    assert headers.args == ("first", "second", "tenth")
    assert headers.script_path == "inbound/%2B33123"
    assert headers.query == {"lang": ("fr",), "x": ("1", "2"), "empty": ("",)}
    assert headers.values["agi_custom_thing"] == "kept"
    assert headers.channel == "PJSIP/trunk-0000002a"
    assert headers.accountcode == ""
    assert headers.uniqueid == ""  # absent keys read as empty


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"agi_channel: x\n", "header block after 1 lines"),
        (b"agi_channel x\n\n", "malformed AGI header line"),
        (b"agi_channel: x\nagi_channel: y\n\n", "appears twice"),
        (b"agi_chan", "header block after 0 lines"),
        (b"", "header block after 0 lines"),
    ],
)
def test_a_header_block_cut_short_or_malformed_is_a_clear_error(data, message):
    parser = AGIParser()
    with pytest.raises(AGIProtocolError, match=message):
        parser.feed(data)
        parser.feed_eof()


def test_eof_inside_a_line_or_a_usage_frame_is_an_error():
    parser = AGIParser()
    parser.feed(b"\n200 res")
    with pytest.raises(AGIProtocolError, match="middle of a line"):
        parser.feed_eof()
    parser = AGIParser()
    parser.feed(b"\n520-Invalid command syntax.  Proper usage follows:\nhelp\n")
    with pytest.raises(AGIProtocolError, match="usage frame"):
        parser.feed_eof()


def test_a_one_megabyte_line_is_an_error_not_a_buffer():
    parser = AGIParser()
    parser.feed(b"\n")
    with pytest.raises(AGIProtocolError, match="longer than"):
        for _ in range(16):
            parser.feed(b"x" * 65536)
    # the parser stays failed
    with pytest.raises(AGIProtocolError, match="longer than"):
        parser.feed(b"200 result=0\n")
    with pytest.raises(AGIProtocolError, match="longer than"):
        AGIParser().feed(b"\n" + b"y" * 1_000_000 + b"\n")


def test_hangup_at_any_point_between_replies():
    events = AGIParser().feed(b"agi_channel: c\n\nHANGUP\n200 result=-1 endpos=12160\nHANGUP\n")
    assert isinstance(events[0], HeaderBlock)
    assert events[1:] == [HANGUP, Reply(200, "-1", endpos=12160), HANGUP]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.lists(st.integers(min_value=0, max_value=600), max_size=12))
def test_arbitrary_bytes_in_arbitrary_pieces_only_ever_raise_protocol_errors(data, cuts):
    parser = AGIParser(max_line=128)
    points = sorted({c for c in cuts if c <= len(data)} | {0, len(data)})
    try:
        for start, end in itertools.pairwise(points):
            parser.feed(data[start:end])
        parser.feed_eof()
    except AGIProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(lambda r, d: format_reply(r, data=d), st.integers(-2, 999), arguments),
            st.builds(lambda e: format_reply(0, endpos=e), st.integers(-1, 10**6)),
            st.just(b"HANGUP\n"),
            st.just(b"100 result=0 Trying...\n"),
            st.builds(format_usage, st.text(alphabet="abc <>\t", max_size=30)),
        ),
        max_size=10,
    ),
    st.data(),
)
def test_a_valid_stream_gives_the_same_events_however_it_is_cut(lines, data):
    stream = format_header_block({"agi_channel": "c", "agi_arg_1": "a"}) + b"".join(lines)
    whole = AGIParser().feed(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    parser = AGIParser()
    pieces = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        pieces.extend(parser.feed(stream[start:end]))
    parser.feed_eof()
    assert pieces == whole
    assert len(whole) == 1 + len(lines)


reply_lines = st.lists(
    st.one_of(
        st.builds(lambda r, d: format_reply(r, data=d), st.integers(-2, 999), arguments),
        st.builds(lambda e: format_reply(0, endpos=e), st.integers(-1, 10**6)),
        st.just(b"HANGUP\n"),
        st.just(b"200 result=0\r\n"),
        st.just(b"100 result=0 Trying...\n"),
    ),
    max_size=10,
)


@settings(max_examples=200, deadline=None)
@given(reply_lines)
def test_remembered_reply_lines_give_what_a_first_parse_gives(lines):
    protocol._KNOWN_LINES.clear()
    header = format_header_block({"agi_channel": "c"})
    first = AGIParser().feed(header + b"".join(lines))[1:]
    parser = AGIParser()
    parser.feed(header)
    # Now from the remembered lines, one chunk per line (the whole-chunk path) and all at once.
    one_by_one = [event for line in lines for event in parser.feed(line)]
    at_once = AGIParser().feed(header + b"".join(lines))[1:]
    expected = [
        HANGUP if line == b"HANGUP\n" else parse_reply(line.decode().rstrip("\r\n"))
        for line in lines
    ]
    assert first == one_by_one == at_once == expected


def test_remembered_reply_lines_stay_few_and_short():
    protocol._KNOWN_LINES.clear()
    parser = AGIParser()
    parser.feed(format_header_block({"agi_channel": "c"}))
    long_line = format_reply(1, data="x" * 100)
    assert parser.feed(long_line) == [Reply(200, "1", data="x" * 100)]
    assert long_line not in protocol._KNOWN_LINES
    for number in range(protocol._KNOWN_LINES_MAX + 10):
        assert parser.feed(format_reply(1, data=str(number))) == [Reply(200, "1", str(number))]
    assert 0 < len(protocol._KNOWN_LINES) <= protocol._KNOWN_LINES_MAX
    # A usage frame after remembered lines is still read as one reply.
    assert parser.feed(format_usage("Usage: ANSWER")) == [Reply(520, text="Usage: ANSWER")]
    assert parser.feed(b"200 result=1 (0)\n") == [Reply(200, "1", "0")]


def test_error_ladder():
    from callcore.agi import errors
    from callcore.errors import CallcoreError

    assert issubclass(errors.AGIError, CallcoreError)
    assert issubclass(errors.AGIDeadChannel, errors.AGIHangup)
    assert issubclass(errors.AGIHangup, AGIError)
    assert issubclass(errors.AGIUsageError, AGIError)
    assert issubclass(errors.AGIInvalidCommand, AGIError)
    assert issubclass(AGIInjectionError, ValueError)
