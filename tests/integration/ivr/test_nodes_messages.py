"""The nodes that take a message from the caller — voicemail and record — on simulated calls
through the real FastAGI server.

The simulated channel runs app_voicemail's model (greeting, instructions, beep, message; see
docs/simulator.md) for the boxes it is given, and RECORD FILE as in agi-basic.txt. What the
caller does is scripted: keys pressed during a prompt or at a moment, a hang-up at a moment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pytest
from _ivr_db import graph

from callcore.ivr import CallContext, Outcome, compile_graph
from callcore.ivr.dry_services import DryServices
from callcore.ivr_nodes.record import recording_path
from callcore.sim.agi_channel import Caller, CallRecord, Press, PressDuring
from callcore.sim.ivr_fixtures import IvrRun, node_registry

BOXES = frozenset({"100@default", "200@sales"})
MESSAGE = "voicemail/default/100/INBOX/msg0000"


def voicemail_flow(params: Mapping[str, Any]) -> dict[str, Any]:
    return graph(
        "start",
        [
            ("start", "answer", {}),
            ("vm", "voicemail", params),
            ("bye", "hangup", {}),
            ("on_failed", "hangup", {}),
        ],
        [("start", "next", "vm"), ("vm", "next", "bye"), ("vm", "failed", "on_failed")],
    )


def execs(record: CallRecord, application: str) -> list[str]:
    return [" ".join(c[2:]) for c in record.commands if c[:2] == ("EXEC", application)]


# -- voicemail ---------------------------------------------------------------------------------


async def test_message_ended_with_pound_takes_next(ivr_call) -> None:
    # vm-theperson, vm-isunavail, vm-intro and the beep take 1 s each; # 3 s into the message
    caller = Caller(dtmf=(PressDuring("beep", "#", after=4.0),))
    run: IvrRun = await ivr_call(voicemail_flow({"mailbox": "100"}), caller, mailboxes=BOXES)
    assert run.result.path == ("start", "vm", "bye")
    assert run.result.outcome is Outcome.COMPLETED
    assert execs(run.record, "VoiceMail") == ["100,u"]
    assert run.record.recordings == (MESSAGE,)
    assert run.record.variables["VMSTATUS"] == "SUCCESS"
    assert 7.0 <= run.record.duration < 60.0  # the # ended it, not the 180 s limit
    cleared = run.record.commands.index(("SET", "VARIABLE", "VMSTATUS", ""))
    assert cleared < run.record.commands.index(("EXEC", "VoiceMail", "100,u"))


async def test_hanging_up_to_end_the_message_keeps_it_and_the_flow_goes_on(ivr_call) -> None:
    """The usual end of a message: the webhook after the voicemail still runs (it needs no
    channel); the hangup node after it is where the call is seen to have ended."""
    flow = graph(
        "start",
        [
            ("start", "answer", {}),
            ("vm", "voicemail", {"mailbox": "100"}),
            (
                "notify",
                "webhook",
                {
                    "method": "POST",
                    "url": "https://crm.example/messages",
                    "body": {"from": "{caller_id}"},
                },
            ),
            ("bye", "hangup", {}),
            ("on_failed", "hangup", {}),
        ],
        [
            ("start", "next", "vm"),
            ("vm", "next", "notify"),
            ("vm", "failed", "on_failed"),
            *(("notify", exit_name, "bye") for exit_name in ("ok", "error", "timeout")),
        ],
    )
    services = DryServices()
    run: IvrRun = await ivr_call(
        flow, Caller(number="0612345678", hangup_at=7.0), services=services, mailboxes=BOXES
    )
    assert run.record.recordings == (MESSAGE,)
    assert run.record.variables["VMSTATUS"] == "SUCCESS"
    assert run.result.path == ("start", "vm", "notify", "bye")
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "bye"
    assert [e.as_json() for e in services.effects] == [
        {
            "kind": "http",
            "method": "POST",
            "url": "https://crm.example/messages",
            "body": {"from": "0612345678"},
        }
    ]


async def test_unknown_box_takes_failed(ivr_call) -> None:
    run: IvrRun = await ivr_call(voicemail_flow({"mailbox": "300"}), mailboxes=BOXES)
    assert run.result.path == ("start", "vm", "on_failed")
    assert run.record.variables["VMSTATUS"] == "FAILED"
    assert run.record.recordings == ()


async def test_hanging_up_during_the_greeting_ends_the_call_in_the_voicemail(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        voicemail_flow({"mailbox": "100"}), Caller(hangup_at=1.5), mailboxes=BOXES
    )
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "vm"
    assert run.record.variables["VMSTATUS"] == "FAILED"
    assert run.record.recordings == ()


async def test_star_during_the_greeting_leaves_with_next(ivr_call) -> None:
    caller = Caller(dtmf=(PressDuring("vm-isunavail", "*"),))
    run: IvrRun = await ivr_call(voicemail_flow({"mailbox": "100"}), caller, mailboxes=BOXES)
    assert run.result.path == ("start", "vm", "bye")
    assert run.record.variables["VMSTATUS"] == "USEREXIT"
    assert run.record.recordings == ()


@pytest.mark.parametrize(
    ("params", "data"),
    [
        ({"mailbox": "200@sales", "greeting": "none"}, "200@sales"),
        ({"mailbox": "100", "greeting": "busy"}, "100,b"),
    ],
)
async def test_greeting_options(ivr_call, params: dict[str, str], data: str) -> None:
    caller = Caller(dtmf=(PressDuring("beep", "#", after=2.0),))
    run: IvrRun = await ivr_call(voicemail_flow(params), caller, mailboxes=BOXES)
    assert execs(run.record, "VoiceMail") == [data]
    assert run.result.path[-1] == "bye"


async def test_through_the_simulated_asterisk(ivr_call) -> None:
    from callcore.sim.run import SimConfig

    caller = Caller(dtmf=(PressDuring("beep", "#", after=2.0),))
    run: IvrRun = await ivr_call(
        voicemail_flow({"mailbox": "200@sales"}), caller, simulator=SimConfig(mailboxes=BOXES)
    )
    assert run.result.path == ("start", "vm", "bye")
    assert run.record.recordings == ("voicemail/sales/200/INBOX/msg0000",)


@pytest.mark.parametrize("mailbox", ["100,s", "100&200", "100@sales|x", "100\n", "100@Sales", "1"])
def test_mailboxes_that_could_smuggle_options_are_refused(mailbox: str) -> None:
    flow, problems = compile_graph(voicemail_flow({"mailbox": mailbox}), node_registry())
    assert flow is None
    assert [p.field for p in problems] == ["params/mailbox"]


# -- record ------------------------------------------------------------------------------------


def record_flow(params: Mapping[str, Any]) -> dict[str, Any]:
    return graph(
        "start",
        [
            ("start", "answer", {}),
            ("rec", "record", params),
            ("bye", "hangup", {}),
            ("on_failed", "hangup", {}),
        ],
        [("start", "next", "rec"), ("rec", "recorded", "bye"), ("rec", "failed", "on_failed")],
    )


def records(record: CallRecord) -> list[tuple[str, ...]]:
    return [c[2:] for c in record.commands if c[:2] == ("RECORD", "FILE")]


async def test_recording_ended_by_the_terminator(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        record_flow({"prompt": "leave-message"}),
        Caller(dtmf=(Press("#", at=5.0),)),
        uniqueid="1795557253.42",
    )
    path = "callcore/recordings/noflow-1795557253_42-rec"
    assert records(run.record) == [(path, "wav", "#", "120000", "0", "BEEP")]
    assert run.result.path == ("start", "rec", "bye")
    assert run.context.variables["recording"] == f"{path}.wav"
    assert run.record.recordings == (f"{path}.wav",)
    assert 5.0 <= run.record.duration < 60.0  # the # ended it, not the 120 s limit
    prompt = run.record.commands.index(("STREAM", "FILE", "leave-message", ""))
    assert prompt < run.record.commands.index(("RECORD", "FILE", *records(run.record)[0]))


async def test_recording_ended_by_its_length_with_silence_detection(ivr_call) -> None:
    params = {"max_duration_s": 3, "silence_s": 2, "beep": False, "terminator": "*"}
    run: IvrRun = await ivr_call(record_flow(params), uniqueid="7.1")
    assert records(run.record) == [
        ("callcore/recordings/noflow-7_1-rec", "wav", "*", "3000", "0", "s=2")
    ]
    assert run.result.path == ("start", "rec", "bye")
    assert run.context.variables["recording"] == "callcore/recordings/noflow-7_1-rec.wav"


async def test_hanging_up_while_recording_keeps_the_recording(ivr_call) -> None:
    run: IvrRun = await ivr_call(record_flow({}), Caller(hangup_at=4.0), uniqueid="7.2")
    assert run.context.variables["recording"] == "callcore/recordings/noflow-7_2-rec.wav"
    assert run.record.recordings == ("callcore/recordings/noflow-7_2-rec.wav",)
    assert run.result.path == ("start", "rec", "bye")  # recorded, then the hangup node...
    assert run.result.outcome is Outcome.HANGUP  # ...finds the channel gone
    assert run.result.last_node == "bye"


async def test_hanging_up_during_the_prompt_ends_the_call_in_the_record_node(ivr_call) -> None:
    run: IvrRun = await ivr_call(
        record_flow({"prompt": "leave-message"}),
        Caller(hangup_at=0.5, media={"leave-message": 3.0}),
    )
    assert run.result.outcome is Outcome.HANGUP
    assert run.result.last_node == "rec"
    assert records(run.record) == [] and "recording" not in run.context.variables


async def test_the_path_keeps_only_safe_characters(ivr_call) -> None:
    run: IvrRun = await ivr_call(record_flow({}), uniqueid="1.2/../../etc/x y;rm")
    ((path, *_),) = records(run.record)
    assert path == "callcore/recordings/noflow-1_2_______etc_x_y_rm-rec"
    assert re.fullmatch(r"callcore/recordings/[A-Za-z0-9_-]+", path)


def test_recording_path_names_the_flow_the_call_and_the_node() -> None:
    ctx = CallContext(
        channel=None,
        services=DryServices(),
        uniqueid="1795557253.9",  # type: ignore[arg-type]
        flow_id=12,
    )
    assert recording_path(ctx, "greet.me") == "callcore/recordings/12-1795557253_9-greet_me"
