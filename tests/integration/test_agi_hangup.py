"""Every hang-up and close scenario of the captures, through the server and the simulated channel.

Each test names the transcript it reproduces (shared/asterisk-captures/agi-*.txt).
"""

import asyncio

import pytest
from test_agi_server import address, running_server

from callcore.agi import (
    AGICommandFailed,
    AGIConnectionClosed,
    AGIDeadChannel,
    AGIHangup,
    AGISession,
    SessionState,
)
from callcore.agi.session import SessionEvent
from callcore.clock import ScaledClock
from callcore.sim.agi_channel import AGIChannel, Caller, run_agi_call


@pytest.fixture
def clock():
    return ScaledClock(20.0)


async def call(clock, handler, caller, **options):
    async with running_server({"scenario": handler}, clock) as server:
        return await asyncio.wait_for(
            run_agi_call(address(server), "scenario", caller, clock=clock, **options), 10
        )


async def test_hangup_while_idle_turns_the_session_dead(clock):
    """agi-hupidle.txt: HANGUP arrives between commands; dead-mode commands still run."""
    seen = {}

    async def handler(session: AGISession, params):
        await session.answer()
        await clock.sleep(2.0)  # the caller hangs up at 1 s, while we do something else
        seen["state"] = session.state
        seen["why"] = session.hangup_reason
        with pytest.raises(AGIHangup):
            await session.channel_status()
        await session.noop()
        seen["cause"] = await session.get_variable("HANGUPCAUSE")
        await session.database_put("callcore", "dead", "yes")
        await session.set_variable("DEADVAR", "x")
        seen["exec"] = await session.exec("NoOp", "deadnoop")
        await session.verbose("still here")

    record = await call(clock, handler, Caller(hangup_at=1.0), database=(db := {}))
    assert seen["state"] is SessionState.DEAD
    assert seen["why"] is SessionEvent.HANGUP_LINE
    assert seen["cause"] == "16"
    assert seen["exec"] == 0
    assert ("CHANNEL", "STATUS") not in record.commands  # refused without being sent
    assert record.replies[1] == b"HANGUP\n"
    assert record.variables["DEADVAR"] == "x"
    assert db == {("callcore", "dead"): "yes"}
    assert record.agi_status == "HANGUP"
    assert record.ended_by == "hangup"


async def test_hangup_during_playback(clock):
    """agi-hupcmd.txt: STREAM FILE answers result=-1 with its endpos, then HANGUP."""
    seen = {}

    async def handler(session, params):
        await session.answer()
        seen["stream"] = await session.stream_file("demo-congrats", "")
        with pytest.raises(AGIHangup):
            await session.wait_for_digit(1000)
        seen["cause"] = await session.get_variable("HANGUPCAUSE")
        seen["status"] = await session.get_variable("AGISTATUS")

    record = await call(clock, handler, Caller(hangup_at=1.52, media={"demo-congrats": 5.0}))
    stream = seen["stream"]
    assert (stream.digit, stream.failed) == (None, True)
    assert 11_000 < stream.endpos <= 12_160  # 1.52 s into the prompt, less what ANSWER took
    assert seen["cause"] == "16"
    assert seen["status"] is None  # AGISTATUS is only set once AGI returns
    assert record.replies[1:3] == (f"200 result=-1 endpos={stream.endpos}\n".encode(), b"HANGUP\n")
    assert ("WAIT", "FOR", "DIGIT", "1000") not in record.commands


async def test_hangup_while_waiting_for_a_digit(clock):
    """agi-hupwait.txt: WAIT FOR DIGIT -1 answers result=-1, then HANGUP; GET DATA is refused."""
    seen = {}

    async def handler(session, params):
        await session.answer()
        with pytest.raises(AGICommandFailed, match="result=-1"):
            await session.wait_for_digit(-1)
        with pytest.raises(AGIHangup):
            await session.get_data("beep", 1000, 2)
        seen["state"] = session.state

    record = await call(clock, handler, Caller(hangup_at=1.5))
    assert seen["state"] is SessionState.DEAD
    assert record.replies[1:] == (b"200 result=-1\n", b"HANGUP\n")


async def test_agisighup_no_only_511_tells(clock):
    """agi-nosighup.txt: no HANGUP line; a live command gets 511, which makes the session dead."""
    seen = {}

    async def handler(session, params):
        await session.answer()
        await clock.sleep(2.0)
        seen["before"] = session.state
        with pytest.raises(AGIDeadChannel, match="511"):
            await session.stream_file("beep", "")
        seen["after"] = session.state
        seen["why"] = session.hangup_reason
        await session.noop()
        with pytest.raises(AGIHangup):
            await session.stream_file("beep", "")  # not sent this time

    record = await call(clock, handler, Caller(hangup_at=1.0, sighup=False))
    assert seen["before"] is SessionState.LIVE  # nothing told us yet
    assert seen["after"] is SessionState.DEAD
    assert seen["why"] is SessionEvent.DEAD_REPLY
    assert b"HANGUP\n" not in record.replies
    assert record.commands.count(("STREAM", "FILE", "beep", "")) == 1
    assert record.replies[-2:] == (
        b"511 Command Not Permitted on a dead channel or intercept routine\n",
        b"200 result=0\n",
    )


async def test_agiexitonhangup_closes_the_connection(clock):
    """agi-hupidleexit.txt: HANGUP (twice), then Asterisk closes; nothing can be sent."""
    seen = {}

    async def handler(session, params):
        await session.answer()
        await clock.sleep(2.0)
        with pytest.raises(AGIConnectionClosed):
            await session.get_variable("HANGUPCAUSE")
        seen["state"] = session.state

    record = await call(clock, handler, Caller(hangup_at=1.0, exit_on_hangup=True))
    assert seen["state"] is SessionState.CLOSED
    assert record.replies[1:] == (b"HANGUP\n", b"HANGUP\n")
    assert record.ended_by == "exit_on_hangup"
    assert record.agi_status == "HANGUP"


async def test_redirect_takes_the_channel_out_of_agi(clock):
    """agi-redirectcmd.txt: the same lines as a hang-up; variables stay readable."""
    seen = {}

    async def handler(session, params):
        await session.answer()
        await session.set_variable("FROMAGI", "held")
        seen["stream"] = await session.stream_file("demo-congrats", "")
        seen["var"] = await session.get_variable("FROMAGI")
        with pytest.raises(AGIHangup):
            await session.stream_file("beep", "")

    record = await call(clock, handler, Caller(redirect_at=1.52, media={"demo-congrats": 5.0}))
    assert seen["stream"].failed
    assert seen["var"] == "held"
    assert record.ended_by == "redirect"
    assert record.agi_status == "HANGUP"


async def test_our_own_hangup_makes_the_session_dead_at_once(clock):
    """agi-basic.txt's end: HANGUP answers 1, then the HANGUP line; live commands are refused."""
    seen = {}

    async def handler(session, params):
        await session.answer()
        await session.hangup()
        seen["state"] = session.state
        with pytest.raises(AGIHangup):
            await session.answer()
        await session.verbose("still here")
        seen["var"] = await session.get_variable("CHANNEL")

    channel = AGIChannel("scenario", clock=clock)
    async with running_server({"scenario": handler}, clock) as server:
        record = await asyncio.wait_for(channel.run(*address(server)), 10)
    assert seen == {"state": SessionState.DEAD, "var": channel.channel}
    assert record.commands == (
        ("ANSWER",),
        ("HANGUP",),
        ("VERBOSE", "still here", "1"),
        (
            "GET",
            "VARIABLE",
            "CHANNEL",
        ),
    )
    assert record.replies[1:3] == (b"200 result=1\n", b"HANGUP\n")


async def test_hangup_after_a_number_of_commands(clock):
    async def handler(session, params):
        await session.answer()
        await session.noop()
        with pytest.raises(AGIHangup):
            await session.stream_file("menu", "")

    record = await call(clock, handler, Caller(hangup_after_commands=1))
    assert record.commands == (("ANSWER",), ("NOOP",))


@pytest.mark.parametrize(
    ("scenario", "after"),
    [("closeafterheader", 0), ("closeafteranswer", 2)],
)
async def test_server_closing_first_reads_as_success(clock, scenario, after):
    """agi-closeafterheader.txt, agi-closeafteranswer.txt: AGISTATUS=SUCCESS either way."""

    async def handler(session, params):
        if after:
            await session.answer()
            await session.set_variable("FROMAGI", "before-close")

    record = await call(clock, handler, Caller())
    assert len(record.commands) == after
    assert record.agi_status == "SUCCESS"
    assert record.ended_by == "server"


async def test_server_closing_mid_command(clock):
    """agi-closemidcmd.txt: the server gives up during STREAM FILE; the channel stays alive."""

    async def handler(session, params):
        await session.answer()
        await asyncio.wait_for(session.stream_file("demo-congrats", ""), clock.to_wall(0.5))

    record = await call(clock, handler, Caller(media={"demo-congrats": 10.0}))
    assert record.commands[-1] == ("STREAM", "FILE", "demo-congrats", "")
    assert len(record.replies) == 1  # no reply to the abandoned command
    assert record.agi_status == "SUCCESS"
    assert record.duration < 5.0  # Asterisk stops playing when the script goes away
