"""AGISession fed replies directly: what typed commands make of them."""

import asyncio

import pytest

from callcore.agi.errors import AGIProtocolError
from callcore.agi.protocol import AGIHeaders, parse_reply
from callcore.agi.session import AGISession, StreamResult


class Wire:
    """What the session wrote, and whether it closed."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True


async def answered(command, reply_line: str):
    wire = Wire()
    headers = AGIHeaders.from_pairs([("agi_channel", "PJSIP/a-1"), ("agi_uniqueid", "1.2")])
    session = AGISession(headers, wire)
    pending = asyncio.ensure_future(command(session))
    await asyncio.sleep(0)
    session.deliver(parse_reply(reply_line))
    return wire, await pending


async def test_a_numeric_result_becomes_the_typed_result():
    wire, result = await answered(lambda s: s.stream_file("menu", "12"), "200 result=50 endpos=96")
    assert result == StreamResult("2", 96)
    assert wire.written == [b"STREAM FILE menu 12\n"]


@pytest.mark.parametrize("result", ["abc", "", "1x"])
async def test_a_result_that_is_no_number_is_a_protocol_error_naming_it(result):
    with pytest.raises(AGIProtocolError) as caught:
        await answered(lambda s: s.answer(), f"200 result={result}")
    assert f"ANSWER: result {result!r} is not a number" in str(caught.value)
    assert "PJSIP/a-1" in str(caught.value)
