"""The sans-I/O AMI codec: framing, repeated keys, bad input, and the injection rule."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcore.ami.errors import AMIFieldError, AMIInjectionError
from callcore.ami.protocol import (
    AMIParser,
    Banner,
    EventList,
    MalformedMessage,
    Message,
    MessageKind,
    Role,
    format_action,
    format_banner,
    format_event,
    format_response,
    serialize,
)

keys = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,15}", fullmatch=True)
safe_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=40
)
fields = st.lists(st.tuples(keys, safe_text), max_size=12)


def parse(data: bytes, role: Role = Role.SERVER, **caps: int) -> list:
    parser = AMIParser(role, **caps)
    return parser.receive_data(data) + parser.receive_data(b"")


def split_feed(data: bytes, cuts: list[int], role: Role = Role.SERVER) -> list:
    parser = AMIParser(role)
    items: list = []
    start = 0
    for cut in sorted(set(cuts) - {0}):  # an empty read means end of stream
        items += parser.receive_data(data[start:cut])
        start = cut
    return items + parser.receive_data(data[start:]) + parser.receive_data(b"")


def test_message_is_an_ordered_case_insensitive_multimap() -> None:
    msg = Message([("Event", "Status"), ("Variable", "A=1"), ("variable", "B=2")])
    assert msg["VARIABLE"] == "A=1"
    assert msg.getall("Variable") == ["A=1", "B=2"]
    assert msg.keys() == ["Event", "Variable"]
    assert msg.kind is MessageKind.EVENT and msg.name == "Status"
    assert "variable" in msg and "Missing" not in msg
    with pytest.raises(KeyError, match="'Missing'"):
        msg["Missing"]
    assert msg.with_field("ActionID", "x").action_id == "x"


def test_originate_response_event_is_an_event_despite_its_response_field() -> None:
    msg = Message([("Event", "OriginateResponse"), ("Response", "Failure")])
    assert msg.kind is MessageKind.EVENT


def test_client_role_reads_banner_then_messages() -> None:
    data = format_banner() + format_response("Success", "a-1", {"Ping": "Pong"})
    banner, response = parse(data, Role.CLIENT)
    assert banner == Banner("Asterisk Call Manager/11.0.0")
    assert banner.version == "11.0.0"
    assert response.kind is MessageKind.RESPONSE and response["Ping"] == "Pong"


def test_bare_lf_and_crlf_are_both_line_ends_but_a_lone_cr_is_data() -> None:
    first, second = parse(b"Action: Ping\nActionID: lf\n\nAction: Ping\r\nX: a\rb\r\n\r\n")
    assert first.action_id == "lf"
    assert second["X"] == "a\rb"


def test_value_keeps_its_own_leading_spaces_and_colons() -> None:
    (msg,) = parse(b"Response: Success\r\nOutput:    Members: \r\nOutput:\r\nK:v\r\n\r\n")
    assert msg.getall("Output") == ["   Members: ", ""]
    assert msg["K"] == "v"


def test_line_without_colon_spoils_only_its_message() -> None:
    data = b"Event: A\r\nActionID: x-1\r\nthis line has no colon\r\nMore: y\r\n\r\nEvent: B\r\n\r\n"
    bad, good = parse(data, Role.SERVER)
    assert isinstance(bad, MalformedMessage)
    assert bad.line == b"this line has no colon"
    assert bad.partial.action_id == "x-1" and bad.partial["More"] == "y"
    assert "this line has no colon" in bad.describe()
    assert good == Message([("Event", "B")])


@pytest.mark.parametrize("caps", [{"max_message_bytes": 64}, {"max_lines": 3}])
def test_oversized_message_is_reported_and_skipped(caps: dict[str, int]) -> None:
    big = b"Event: Big\r\n" + b"".join(b"K%d: %s\r\n" % (i, b"v" * 20) for i in range(10))
    items = parse(big + b"\r\nEvent: Next\r\n\r\n", **caps)
    assert isinstance(items[0], MalformedMessage) and "exceeds" in items[0].reason
    assert items[1:] == [Message([("Event", "Next")])]


def test_a_line_longer_than_the_cap_never_grows_the_buffer_unbounded() -> None:
    parser = AMIParser(Role.SERVER, max_message_bytes=1024)
    first = parser.receive_data(b"Event: X\r\nHuge: " + b"a" * 5000)
    assert isinstance(first[0], MalformedMessage)
    for _ in range(100):
        assert parser.receive_data(b"a" * 5000) == []
    assert parser.receive_data(b"\r\n\r\nEvent: After\r\n\r\n") == [Message([("Event", "After")])]


def test_stream_cut_mid_message_is_reported_at_eof() -> None:
    (item,) = parse(b"Response: Success\r\nActionID: z\r\n")
    assert isinstance(item, MalformedMessage) and item.partial.action_id == "z"


def test_legacy_response_follows_is_folded_into_output_fields() -> None:
    data = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c-1\r\n"
        b"Channel  Location: here\n\n2 active channels\n--END COMMAND--\r\n\r\n"
        b"Event: After\r\n\r\n"
    )
    msg, after = parse(data)
    assert msg.action_id == "c-1"
    assert msg.getall("Output") == ["Channel  Location: here", "", "2 active channels"]
    assert after.name == "After"


def test_format_action_repeats_keys_from_a_sequence_and_renders_scalars() -> None:
    data = format_action(
        "Originate", "o-1", {"Variable": ["A=1", "B=2"], "Async": True, "Timeout": 3000}
    )
    assert data == (
        b"Action: Originate\r\nActionID: o-1\r\nVariable: A=1\r\nVariable: B=2\r\n"
        b"Async: true\r\nTimeout: 3000\r\n\r\n"
    )


def test_injection_is_refused_naming_the_field_not_the_value() -> None:
    with pytest.raises(AMIInjectionError, match=r"'CallerID'.*LF") as caught:
        format_action("Originate", "o", {"CallerID": "x\r\nAction: Command"})
    assert "Action: Command" not in str(caught.value)
    with pytest.raises(AMIInjectionError, match="NUL"):
        format_action("Setvar", "s", [("Value", "a\x00b")])


@pytest.mark.parametrize("key", ["Bad Key", "", "A:B", "X\r\nY", 7])
def test_bad_keys_are_refused(key: object) -> None:
    with pytest.raises(AMIFieldError, match="field name"):
        format_action("Ping", "p", [(key, "v")])  # type: ignore[list-item]


@pytest.mark.parametrize("key", ["Action", "actionid"])
def test_reserved_keys_cannot_be_smuggled_in_fields(key: str) -> None:
    with pytest.raises(AMIFieldError, match="set by the function"):
        format_action("Ping", "p", {key: "Command"})


def test_event_list_assembles_entries_until_complete() -> None:
    msgs = [
        Message([("Response", "Success"), ("ActionID", "l"), ("EventList", "start")]),
        Message([("Event", "CoreShowChannel"), ("ActionID", "l")]),
        Message([("Event", "CoreShowChannel"), ("ActionID", "l")]),
        Message(
            [("Event", "CoreShowChannelsComplete"), ("ActionID", "l"), ("EventList", "Complete")]
        ),
    ]
    collected = EventList("l")
    assert [collected.feed(m) for m in msgs] == [False, False, False, True]
    assert len(collected.events) == 2 and collected.complete_event == msgs[-1]
    refused = EventList("e")
    assert refused.feed(Message([("Response", "Error"), ("ActionID", "e")]))


@given(st.lists(fields.filter(bool), max_size=5), st.sampled_from(["Event", "Response"]))
def test_round_trip_of_arbitrary_messages(messages: list, head: str) -> None:
    fmt = format_event if head == "Event" else format_response
    data = b"".join(
        fmt("N", m, action_id="id") if head == "Event" else fmt("N", "id", m) for m in messages
    )
    items = parse(data)
    assert items == [Message([(head, "N"), ("ActionID", "id"), *m]) for m in messages]
    assert b"".join(serialize(m) for m in items) == data


@given(fields, st.lists(st.integers(0, 2000), max_size=8))
def test_bytes_split_anywhere_parse_the_same(message: list, cuts: list[int]) -> None:
    data = format_banner() + format_response("Success", "r", message) * 2
    whole = parse(data, Role.CLIENT)
    assert split_feed(data, [c % (len(data) + 1) for c in cuts], Role.CLIENT) == whole


@settings(max_examples=300)
@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=10), st.sampled_from(Role))
def test_arbitrary_bytes_never_crash_and_stay_bounded(
    data: bytes, cuts: list[int], role: Role
) -> None:
    parser = AMIParser(role, max_message_bytes=512, max_lines=20)
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts} - {0}):
        for item in parser.receive_data(data[start:cut]):
            assert isinstance(item, Banner | Message | MalformedMessage)
        assert len(parser._buffer) <= 512 + len(data)
        start = cut
    parser.receive_data(data[start:])
    parser.receive_data(b"")


@given(keys, st.text(max_size=30), st.text(max_size=30))
def test_injection_fuzz(key: str, before: str, after: str) -> None:
    for bad in "\r\n\x00":
        with pytest.raises(AMIInjectionError, match=repr(key)):
            format_action("Setvar", "s-1", {key: before + bad + after})


@given(
    st.lists(
        st.tuples(
            keys.filter(lambda k: k.lower() not in {"action", "actionid"}), st.text(max_size=40)
        ),
        max_size=8,
    )
)
def test_any_accepted_action_reparses_to_exactly_one_action(pairs: list) -> None:
    try:
        data = format_action("Setvar", "s-1", pairs)
    except AMIFieldError:
        assert any(
            set(v) & set("\r\n\x00") or any("\ud800" <= c <= "\udfff" for c in v) for _, v in pairs
        )
        return
    (action,) = parse(data)
    assert action.kind is MessageKind.ACTION and action.name == "Setvar"
    assert action.getall("Action") == ["Setvar"]
    assert action.fields()[2:] == tuple(pairs)
