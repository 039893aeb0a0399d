"""The nodes that talk with the caller — answer, play, menu, collect — on simulated calls through
the real FastAGI server.

Every prompt lasts the simulated caller's default 1 s unless ``media`` says otherwise, and the
clock runs at 50×. Each flow wires every exit of the node under test to a hangup node named
``on_<exit>``, so the call's path tells which exit was taken. The last test runs the same
nodes in the editor's dry run, on scripted keys instead of a call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from _ivr_db import graph

from callcore.ivr import Outcome
from callcore.ivr.dry_run import dry_run
from callcore.ivr.dry_services import DryServices
from callcore.sim.agi_channel import Caller, CallRecord, PressDuring
from callcore.sim.ivr_fixtures import IvrRun, compiled, node_registry

KEYS = "0123456789*#"


def single(node_type: str, params: Mapping[str, Any], exits: Iterable[str]) -> dict[str, Any]:
    """A flow of one node under test, ``n``, each exit leading to a hangup node ``on_<exit>``."""
    exits = list(exits)
    return graph(
        "n",
        [("n", node_type, params), *((f"on_{e}", "hangup", {}) for e in exits)],
        [("n", e, f"on_{e}") for e in exits],
    )


def commands(record: CallRecord) -> list[tuple[str, ...]]:
    """The commands the node sent: everything but the hangup node's HANGUP at the end."""
    return [c for c in record.commands if c != ("HANGUP",)]


def stream(sound: str, escape: str = "") -> tuple[str, ...]:
    return ("STREAM", "FILE", sound, escape)


def wait(timeout_ms: int = 5000) -> tuple[str, ...]:
    return ("WAIT", "FOR", "DIGIT", str(timeout_ms))


# -- answer ----------------------------------------------------------------------------------


async def test_answer_picks_up_and_goes_on(ivr_call) -> None:
    run: IvrRun = await ivr_call(single("answer", {}, ["next"]), Caller())
    assert run.result.path == ("n", "on_next")
    assert commands(run.record) == [("ANSWER",)]
    assert run.record.replies[0] == b"200 result=0\n"


@pytest.mark.parametrize("sighup", [True, False], ids=["hangup-line", "agisighup-no"])
async def test_a_caller_gone_before_the_answer_ends_the_call_at_answer(
    ivr_call, sighup: bool
) -> None:
    run: IvrRun = await ivr_call(
        single("answer", {}, ["next"]), Caller(hangup_at=0.0, sighup=sighup)
    )
    assert run.result.outcome is Outcome.HANGUP
    assert (run.result.last_node, run.result.path) == ("n", ("n",))
    assert run.record.ended_by == "hangup"


# -- play ------------------------------------------------------------------------------------


async def test_play_plays_its_sound_to_the_end_and_goes_on(ivr_call) -> None:
    caller = Caller(media={"hello-world": 2.0}, dtmf=(PressDuring("hello-world", "5"),))
    run: IvrRun = await ivr_call(single("play", {"sound": "hello-world"}, ["next"]), caller)
    assert run.result.path == ("n", "on_next")
    assert run.result.outcome is Outcome.COMPLETED
    assert commands(run.record) == [stream("hello-world")]
    assert run.record.replies[0] == b"200 result=0 endpos=16000\n"  # the key did not cut it
    assert "last_digit" not in run.context.variables


async def test_an_interruptible_play_stops_at_a_key_and_keeps_it(ivr_call) -> None:
    caller = Caller(media={"callcore/welcome": 3.0}, dtmf=(PressDuring("callcore/welcome", "#"),))
    flow = single("play", {"sound": "callcore/welcome", "interruptible": True}, ["next"])
    run: IvrRun = await ivr_call(flow, caller)
    assert commands(run.record) == [stream("callcore/welcome", KEYS)]
    assert run.record.replies[0] == b"200 result=35 endpos=4000\n"
    assert run.context.variables["last_digit"] == "#"


async def test_an_interruptible_play_heard_to_the_end_clears_last_digit(ivr_call) -> None:
    flow = single("play", {"sound": "beep", "interruptible": True}, ["next"])
    run: IvrRun = await ivr_call(flow, Caller(), variables={"last_digit": "3"})
    assert run.context.variables["last_digit"] == ""


async def test_play_in_another_language_puts_the_channel_language_back(ivr_call) -> None:
    flow = single("play", {"sound": "hello-world", "language": "fr"}, ["next"])
    run: IvrRun = await ivr_call(flow, Caller(), language="en")
    assert commands(run.record) == [
        ("GET", "VARIABLE", "CHANNEL(language)"),
        ("SET", "VARIABLE", "CHANNEL(language)", "fr"),
        stream("hello-world"),
        ("SET", "VARIABLE", "CHANNEL(language)", "en"),
    ]
    assert run.record.variables["CHANNEL(language)"] == "en"


async def test_a_missing_sound_is_logged_and_the_flow_goes_on(ivr_call, caplog) -> None:
    caplog.set_level(logging.WARNING, "callcore.ivr")
    caller = Caller(missing={"callcore/not-uploaded"})
    run: IvrRun = await ivr_call(
        single("play", {"sound": "callcore/not-uploaded"}, ["next"]), caller
    )
    assert run.result.path == ("n", "on_next")
    assert run.result.outcome is Outcome.COMPLETED
    assert commands(run.record) == [stream("callcore/not-uploaded"), ("CHANNEL", "STATUS")]
    assert "could not play 'callcore/not-uploaded'" in caplog.text


@pytest.mark.parametrize("sighup", [True, False], ids=["hangup-line", "agisighup-no"])
async def test_a_caller_hanging_up_during_the_prompt_ends_the_call_at_play(
    ivr_call, sighup: bool
) -> None:
    caller = Caller(media={"hello-world": 3.0}, hangup_at=1.0, sighup=sighup)
    run: IvrRun = await ivr_call(single("play", {"sound": "hello-world"}, ["next"]), caller)
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "n"
    assert run.result.path == ("n",)
    assert run.record.ended_by == "hangup"


# -- menu ------------------------------------------------------------------------------------
# Keys are scripted relative to a prompt's start (PressDuring), with seconds of margin around
# the moments the server's commands start: at 50× a loaded machine's delays are whole seconds.

MENU = {"prompt": "menu-prompt", "options": ["1", "2", "*", "#"]}
MENU_EXITS = ["digit_1", "digit_2", "digit_star", "digit_hash", "timeout", "invalid"]


@pytest.mark.parametrize(
    ("key", "exit_name"),
    [("1", "digit_1"), ("2", "digit_2"), ("*", "digit_star"), ("#", "digit_hash")],
)
async def test_a_key_pressed_during_the_prompt_takes_its_exit(
    ivr_call, key: str, exit_name: str
) -> None:
    caller = Caller(dtmf=(PressDuring("menu-prompt", key),))
    run: IvrRun = await ivr_call(single("menu", MENU, MENU_EXITS), caller)
    assert run.result.path == ("n", f"on_{exit_name}")
    assert run.context.variables["menu_choice"] == key
    assert commands(run.record) == [stream("menu-prompt", KEYS)]


async def test_a_key_pressed_after_the_prompt_is_waited_for(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("menu-prompt", "2", after=6.0),))
    flow = single("menu", {**MENU, "timeout_ms": 20000}, MENU_EXITS)
    run: IvrRun = await ivr_call(flow, caller)
    assert run.result.path == ("n", "on_digit_2")
    assert commands(run.record) == [stream("menu-prompt", KEYS), wait(20000)]
    assert run.record.replies[1] == b"200 result=50\n"


async def test_a_wrong_key_plays_the_invalid_prompt_and_asks_again(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("menu-prompt", "9"), PressDuring("invalid", "1", after=5.0)))
    flow = single("menu", {**MENU, "invalid_prompt": "invalid", "timeout_ms": 20000}, MENU_EXITS)
    run: IvrRun = await ivr_call(flow, caller)
    assert run.result.path == ("n", "on_digit_1")
    assert commands(run.record) == [
        stream("menu-prompt", KEYS),
        stream("invalid"),
        stream("menu-prompt", KEYS),
        wait(20000),
    ]
    assert run.context.variables["menu_choice"] == "1"


async def test_silence_retries_with_the_timeout_prompt_then_takes_timeout(ivr_call) -> None:
    params = {**MENU, "timeout_ms": 2000, "max_attempts": 2, "timeout_prompt": "no-answer"}
    run: IvrRun = await ivr_call(single("menu", params, MENU_EXITS), Caller())
    assert run.result.path == ("n", "on_timeout")
    assert commands(run.record) == [
        stream("menu-prompt", KEYS),
        wait(2000),
        stream("no-answer"),  # before the second attempt only, not after the last
        stream("menu-prompt", KEYS),
        wait(2000),
    ]
    assert "menu_choice" not in run.context.variables
    assert run.record.duration >= 7.0  # three 1 s prompts and two 2 s waits took their time


async def test_the_last_attempt_says_which_exit_wrong_key_after_silence(ivr_call) -> None:
    # attempt 1: silence; "no-answer"; attempt 2: 7 pressed during the 10 s prompt
    caller = Caller(media={"menu-prompt": 10.0}, dtmf=(PressDuring("no-answer", "7", after=4.0),))
    params = {**MENU, "timeout_ms": 1000, "max_attempts": 2, "timeout_prompt": "no-answer"}
    run: IvrRun = await ivr_call(single("menu", params, MENU_EXITS), caller)
    assert run.result.path == ("n", "on_invalid")


async def test_the_last_attempt_says_which_exit_silence_after_wrong_key(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("menu-prompt", "7"),))
    params = {**MENU, "timeout_ms": 1000, "max_attempts": 2}
    run: IvrRun = await ivr_call(single("menu", params, MENU_EXITS), caller)
    assert run.result.path == ("n", "on_timeout")


async def test_an_unconnected_timeout_exit_ends_the_call_at_the_menu(ivr_call) -> None:
    params = {"prompt": "menu-prompt", "options": ["1"], "timeout_ms": 1000, "max_attempts": 1}
    run: IvrRun = await ivr_call(single("menu", params, ["digit_1"]), Caller())
    assert run.result.outcome is Outcome.COMPLETED
    assert run.result.path == ("n",)
    assert run.result.last_node == "n"


@pytest.mark.parametrize("sighup", [True, False], ids=["hangup-line", "agisighup-no"])
async def test_a_hang_up_while_the_menu_waits_ends_the_call_at_the_menu(
    ivr_call, sighup: bool
) -> None:
    caller = Caller(hangup_at=10.0, sighup=sighup)
    run: IvrRun = await ivr_call(single("menu", {**MENU, "timeout_ms": 30000}, MENU_EXITS), caller)
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "n"
    assert commands(run.record)[:2] == [stream("menu-prompt", KEYS), wait(30000)]


# -- collect ---------------------------------------------------------------------------------

COLLECT = {"prompt": "enter-account", "variable": "account", "min_length": 4, "max_length": 8}
COLLECT_EXITS = ["ok", "invalid", "timeout"]


def get_data(prompt: str = "enter-account", timeout_ms: int = 5000, most: int = 8) -> tuple:
    return ("GET", "DATA", prompt, str(timeout_ms), str(most))


async def test_digits_ended_with_pound_are_stored_in_the_flow_and_on_the_channel(
    ivr_call,
) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "12345#"),))
    run: IvrRun = await ivr_call(single("collect", COLLECT, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_ok")
    assert run.context.variables["account"] == "12345"
    assert run.record.variables["CALLCORE_ACCOUNT"] == "12345"
    assert commands(run.record) == [
        get_data(),
        ("SET", "VARIABLE", "CALLCORE_ACCOUNT", "12345"),
    ]


async def test_input_stops_at_the_most_digits(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "1234567890"),))
    run: IvrRun = await ivr_call(single("collect", COLLECT, COLLECT_EXITS), caller)
    assert run.context.variables["account"] == "12345678"


async def test_input_ends_when_the_caller_stops_typing(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "4321"),))
    params = {**COLLECT, "timeout_ms": 2000}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_ok")
    assert run.context.variables["account"] == "4321"
    assert run.record.replies[0] == b"200 result=4321 (timeout)\n"


async def test_too_short_input_is_retried_with_the_invalid_prompt(ivr_call) -> None:
    caller = Caller(
        dtmf=(PressDuring("enter-account", "12#"), PressDuring("invalid", "9876#", after=3.0))
    )
    params = {**COLLECT, "invalid_prompt": "invalid"}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_ok")
    assert run.context.variables["account"] == "9876"
    assert commands(run.record)[:3] == [get_data(), stream("invalid"), get_data()]


async def test_input_that_fails_the_validation_takes_invalid_after_the_attempts(
    ivr_call,
) -> None:
    caller = Caller(
        dtmf=(PressDuring("enter-account", "5555#"), PressDuring("invalid", "5678#", after=3.0))
    )
    params = {
        **COLLECT,
        "validation": "^1[0-9]{3}$",
        "max_attempts": 2,
        "invalid_prompt": "invalid",
    }
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_invalid")
    assert [r for r in run.record.replies if b"result=5" in r] == [
        b"200 result=5555\n",
        b"200 result=5678\n",
    ]
    assert "account" not in run.context.variables
    assert "CALLCORE_ACCOUNT" not in run.record.variables


async def test_a_star_makes_the_input_invalid(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "24*68#"),))
    run = await ivr_call(single("collect", {**COLLECT, "max_attempts": 1}, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_invalid")
    assert run.record.replies[0] == b"200 result=24*68\n"


async def test_silence_takes_timeout_after_the_timeout_prompt(ivr_call) -> None:
    params = {**COLLECT, "timeout_ms": 1000, "max_attempts": 2, "timeout_prompt": "no-answer"}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), Caller())
    assert run.result.path == ("n", "on_timeout")
    assert commands(run.record) == [
        get_data(timeout_ms=1000),
        stream("no-answer"),
        get_data(timeout_ms=1000),
    ]


async def test_a_missing_prompt_is_logged_and_counts_as_no_input(ivr_call, caplog) -> None:
    caplog.set_level(logging.WARNING, "callcore.ivr")
    caller = Caller(missing={"enter-account"})
    params = {**COLLECT, "max_attempts": 1}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_timeout")
    assert commands(run.record) == [get_data(), ("CHANNEL", "STATUS")]
    assert "could not play 'enter-account'" in caplog.text


@pytest.mark.parametrize("sighup", [True, False], ids=["hangup-line", "agisighup-no"])
async def test_a_hang_up_while_typing_ends_the_call_at_collect(ivr_call, sighup: bool) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "12"),), hangup_at=3.0, sighup=sighup)
    run: IvrRun = await ivr_call(single("collect", COLLECT, COLLECT_EXITS), caller)
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "n"
    assert "account" not in run.context.variables


# -- collect with another terminator: Read through EXEC ------------------------------------------

READ_RESULT = ("GET", "FULL", "VARIABLE", "${READSTATUS},${CALLCORE_read}")


def read(terminator: str, timeout_s: str = "5", most: int = 8) -> tuple[str, ...]:
    return ("EXEC", "Read", f"CALLCORE_read,enter-account,{most},nt({terminator}),,{timeout_s}")


async def test_digits_ended_with_star_are_read_by_read_then_stored(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "12345*"),))
    params = {**COLLECT, "terminator": "*"}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_ok")
    assert run.context.variables["account"] == "12345"
    assert run.record.variables["CALLCORE_ACCOUNT"] == "12345"
    assert commands(run.record) == [
        read("*"),
        READ_RESULT,
        ("SET", "VARIABLE", "CALLCORE_ACCOUNT", "12345"),
    ]
    assert run.record.replies[:2] == (b"200 result=0\n", b"200 result=1 (OK,12345)\n")


@pytest.mark.parametrize("keys", ["24#68*", "*"], ids=["pound-inside", "star-alone"])
async def test_a_pound_or_the_star_alone_is_invalid_when_star_ends_the_input(
    ivr_call, keys: str
) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", keys),))
    params = {**COLLECT, "terminator": "*", "max_attempts": 1}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_invalid")
    assert run.record.replies[1] == f"200 result=1 (OK,{keys[:-1]})\n".encode()
    assert "CALLCORE_ACCOUNT" not in run.record.variables


async def test_with_no_terminator_input_stops_at_the_most_digits(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "1234567890"),))
    params = {**COLLECT, "terminator": ""}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_ok")
    assert run.context.variables["account"] == "12345678"
    assert commands(run.record)[:2] == [read(""), READ_RESULT]


async def test_with_no_terminator_a_pound_is_a_key_like_the_others(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "1234#5678"),))
    params = {**COLLECT, "terminator": "", "max_attempts": 1}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_invalid")
    assert run.record.replies[1] == b"200 result=1 (OK,1234#567)\n"


@pytest.mark.parametrize(
    ("keys", "exit_name"), [("4321", "ok"), ("12", "invalid"), ("", "timeout")]
)
async def test_with_no_terminator_silence_ends_the_input(
    ivr_call, keys: str, exit_name: str
) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", keys),) if keys else ())
    params = {**COLLECT, "terminator": "", "timeout_ms": 2500, "max_attempts": 1}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", f"on_{exit_name}")
    assert commands(run.record)[:2] == [read("", timeout_s="2.5"), READ_RESULT]
    assert run.record.replies[1] == f"200 result=1 (TIMEOUT,{keys})\n".encode()
    assert run.context.variables.get("account") == (keys if exit_name == "ok" else None)


async def test_a_missing_prompt_for_read_is_logged_and_counts_as_no_input(ivr_call, caplog) -> None:
    caplog.set_level(logging.WARNING, "callcore.ivr")
    caller = Caller(missing={"enter-account"})
    params = {**COLLECT, "terminator": "*", "max_attempts": 1}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.path == ("n", "on_timeout")
    assert commands(run.record) == [read("*"), READ_RESULT]
    assert run.record.replies[1] == b"200 result=1 (ERROR,)\n"
    assert "could not play 'enter-account'" in caplog.text


@pytest.mark.parametrize("sighup", [True, False], ids=["hangup-line", "agisighup-no"])
async def test_a_hang_up_during_read_ends_the_call_at_collect(ivr_call, sighup: bool) -> None:
    caller = Caller(dtmf=(PressDuring("enter-account", "12"),), hangup_at=3.0, sighup=sighup)
    params = {**COLLECT, "terminator": "*"}
    run: IvrRun = await ivr_call(single("collect", params, COLLECT_EXITS), caller)
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "n"
    assert commands(run.record)[:2] == [read("*"), READ_RESULT]
    assert run.record.replies[0] == b"200 result=0\n"  # Read returns 0 even then
    assert run.record.variables["READSTATUS"] == "HANGUP"
    assert "account" not in run.context.variables
    assert "CALLCORE_ACCOUNT" not in run.record.variables


# -- the editor's dry run ----------------------------------------------------------------------


async def test_the_same_nodes_answer_a_dry_runs_scripted_keys() -> None:
    flow = graph(
        "hours",
        [
            ("hours", "calendar", {"hours": [{"days": [2], "start": "09:00", "end": "18:00"}]}),
            ("menu", "menu", {"prompt": "menu-prompt", "options": ["1", "2"], "max_attempts": 2}),
            ("account", "collect", {**COLLECT, "max_attempts": 2, "invalid_prompt": "invalid"}),
            ("bye", "hangup", {}),
        ],
        [
            ("hours", "open", "menu"),
            ("hours", "closed", "bye"),
            ("hours", "holiday", "bye"),
            ("menu", "digit_1", "account"),
            ("menu", "digit_2", "bye"),
            ("account", "ok", "bye"),
        ],
    )
    tuesday_10h = datetime(2025, 2, 4, 9, 0, tzinfo=UTC)
    result = await dry_run(
        compiled(flow, node_registry()),
        services=DryServices(at=tuesday_10h),
        digits=["9", "1", "12#", "5678#"],
    )
    assert [(s.node, s.exit) for s in result.path] == [
        ("hours", "open"),
        ("menu", "digit_1"),
        ("account", "ok"),
        ("bye", ""),
    ]
    assert result.variables == {"menu_choice": "1", "account": "5678"}
    assert 'STREAM FILE invalid ""' in result.commands


async def test_a_dry_run_answers_read_like_get_data_with_its_terminator() -> None:
    params = {**COLLECT, "terminator": "*", "max_attempts": 2, "invalid_prompt": "invalid"}
    result = await dry_run(
        compiled(single("collect", params, COLLECT_EXITS), node_registry()),
        services=DryServices(),
        digits=["12#4*", "5678"],
    )
    assert [(s.node, s.exit) for s in result.path] == [("n", "ok"), ("on_ok", "")]
    assert result.variables == {"account": "5678"}
    assert result.effects == ()
    assert result.commands[:2] == (
        "EXEC Read CALLCORE_read,enter-account,8,nt(*),,5",
        "GET FULL VARIABLE ${READSTATUS},${CALLCORE_read}",
    )
