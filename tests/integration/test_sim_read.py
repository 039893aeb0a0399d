"""The simulated channel's Read application (EXEC Read), against apps/app_read.c's behaviour:
its terminators, its default waits, READSTATUS, answering, and a dead channel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from callcore.agi import AGISession, ChannelStatus, SessionState
from callcore.clock import ScaledClock
from callcore.sim.agi_channel import Caller, CallRecord, PressDuring, run_agi_call
from callcore.sim.fixtures import serving_agi_routes

Steps = Callable[[AGISession], Awaitable[None]]


@pytest.fixture
def clock() -> ScaledClock:
    return ScaledClock(50.0)


async def read(
    clock: ScaledClock, data: str, caller: Caller, then: Steps | None = None
) -> tuple[int, str, CallRecord]:
    """EXEC Read with ``data``, then ``then``: Read's result, ``${READSTATUS},${V}``, record."""
    seen: dict[str, object] = {}

    async def handler(session: AGISession, params: object) -> None:
        seen["result"] = await session.exec("Read", data)
        seen["read"] = await session.get_full_variable("${READSTATUS},${V}")
        if then is not None:
            await then(session)

    async with serving_agi_routes({"read": handler}, clock) as server:
        record = await run_agi_call(("127.0.0.1", server.port), "read", caller, clock=clock)
    return seen["result"], seen["read"], record  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("options", "keys", "expected"),
    [
        ("", "12#3", "OK,12"),  # no t option: # ends the input
        ("t(*)", "1#2*3", "OK,1#2"),
        ("t(*#)", "12#3", "OK,12"),  # several terminators
        ("t()", "1#*", "TIMEOUT,1#*"),  # none: only silence or the most keys end it
        ("t", "1#*", "TIMEOUT,1#*"),  # t without parentheses is none as well
        ("t(*)", "*", "OK,"),  # the terminator alone
    ],
)
async def test_terminators(clock, options: str, keys: str, expected: str) -> None:
    caller = Caller(dtmf=(PressDuring("enter-pin", keys),))
    result, got, _ = await read(clock, f"V,enter-pin,,{options},,2", caller)
    assert (result, got) == (0, expected)


async def test_the_most_digits_end_the_input_and_255_bounds_them(clock) -> None:
    caller = Caller(dtmf=(PressDuring("enter-pin", "123456"),))
    assert (await read(clock, "V,enter-pin,4,t(),,2", caller))[1] == "OK,1234"
    caller = Caller(dtmf=(PressDuring("enter-pin", "123456"),))
    assert (await read(clock, "V,enter-pin,300,t(),,1.5", caller))[1] == "TIMEOUT,123456"


async def test_with_no_timeout_the_dialplans_response_and_digit_timeouts_apply(clock) -> None:
    """1 s of prompt, then 10 s for the first key; after a key, 5 s for the next."""
    _, got, record = await read(clock, "V,enter-pin", Caller())
    assert got == "TIMEOUT,"
    assert 11.0 <= record.duration < 12.0
    caller = Caller(dtmf=(PressDuring("enter-pin", "7", after=2.0),))
    _, got, record = await read(clock, "V,enter-pin", caller)
    assert got == "TIMEOUT,7"
    assert 7.0 <= record.duration < 8.0


async def test_a_fractional_timeout_in_seconds(clock) -> None:
    _, got, record = await read(clock, "V,enter-pin,,,,0.5", Caller())
    assert got == "TIMEOUT,"
    assert 1.5 <= record.duration < 2.0


@pytest.mark.parametrize(("options", "status"), [("", ChannelStatus.UP), ("n", ChannelStatus.RING)])
async def test_read_answers_the_channel_unless_told_not_to(clock, options, status) -> None:
    seen: dict[str, ChannelStatus | None] = {}

    async def after(session: AGISession) -> None:
        seen["status"] = await session.channel_status()

    await read(clock, f"V,enter-pin,1,{options},,1", Caller(), after)
    assert seen["status"] is status


async def test_a_missing_prompt_is_an_error_at_once(clock) -> None:
    result, got, record = await read(clock, "V,enter-pin,,,,5", Caller(missing={"enter-pin"}))
    assert (result, got) == (0, "ERROR,")
    assert record.duration < 1.0


async def test_a_hang_up_is_read_from_readstatus_not_from_the_result(clock) -> None:
    caller = Caller(dtmf=(PressDuring("enter-pin", "12"),), hangup_at=2.0)
    result, got, record = await read(clock, "V,enter-pin,,t(*),,5", caller)
    assert (result, got) == (0, "HANGUP,12")
    assert record.replies[:2] == (b"200 result=0\n", b"HANGUP\n")


async def test_on_a_dead_channel_read_says_hangup_at_once(clock) -> None:
    seen: dict[str, object] = {}

    async def after(session: AGISession) -> None:
        await clock.sleep(1.0)  # the caller hangs up meanwhile
        seen["state"] = session.state
        started = clock.monotonic()
        seen["result"] = await session.exec("Read", "V,enter-pin,,t(*),,5")
        seen["read"] = await session.get_full_variable("${READSTATUS},${V}")
        seen["took"] = clock.monotonic() - started

    caller = Caller(hangup_at=1.5, media={"enter-pin": 0.5})
    await read(clock, "V,enter-pin,,t(*),,0.5", caller, after)  # times out at 1 s
    assert seen["state"] is SessionState.DEAD
    assert (seen["result"], seen["read"]) == (0, "HANGUP,")
    assert seen["took"] < 1.0
