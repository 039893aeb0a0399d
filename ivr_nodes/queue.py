"""Queue: put the caller in an Asterisk queue until an agent answers or the wait is too long.

The node runs ``EXEC Queue(<name>,,,,<max wait>)`` and reads what app_queue leaves behind:
``QUEUESTATUS`` when the caller left the queue without being connected — ``TIMEOUT`` takes
``timeout``, ``FULL`` ``full``, ``JOINEMPTY``/``LEAVEEMPTY``/``JOINUNAVAIL``/``LEAVEUNAVAIL``
(and ``UNKNOWN``, no such queue) ``empty``. A connected caller gets no ``QUEUESTATUS``: once the
conversation is over the node takes ``answered`` (usually left unwired: the call ends). A caller
who hangs up while waiting (``ABANDONED=TRUE``) ends the call in this node (outcome ``hangup``).
Both variables are cleared first, so a second visit never reads the first one's answer.

``announce_position`` tells the caller, before they join, how many callers wait ahead of them
(``QUEUE_WAITING_COUNT``, with Asterisk's queue-thereare / queue-callswaiting /
queue-youarenext sounds). Queue() has no option for it; the periodic announcements while
waiting are the queue's own settings (queues.conf ``announce-position``).
"""

from __future__ import annotations

import logging
from typing import Final

import callcore
from callcore.agi import NO_TIMEOUT, AGICommandFailed
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.channel_io import play
from callcore.ivr.patterns import whole

logger = logging.getLogger("callcore.ivr")

QUEUE_NAME: Final = whole(r"[a-z][a-z0-9_-]{0,62}")
ANSWERED, TIMEOUT, FULL, EMPTY = "answered", "timeout", "full", "empty"
_STATUS_EXITS: Final = {
    "TIMEOUT": TIMEOUT,
    "WITHDRAW": TIMEOUT,
    "FULL": FULL,
    "JOINEMPTY": EMPTY,
    "LEAVEEMPTY": EMPTY,
    "JOINUNAVAIL": EMPTY,
    "LEAVEUNAVAIL": EMPTY,
    "UNKNOWN": EMPTY,
    "CONTINUE": ANSWERED,
}


class QueueNode(Node):
    name = "queue"
    label = "Queue"
    description = "Put the caller in a queue until an agent answers."
    category = "routing"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["queue"],
        "additionalProperties": False,
        "properties": {
            "queue": {
                "type": "string",
                "title": "Queue",
                "pattern": QUEUE_NAME,
            },
            "max_wait_s": {
                "type": "integer",
                "title": "Longest wait (seconds)",
                "minimum": 10,
                "maximum": 7200,
                "default": 300,
            },
            "announce_position": {
                "type": "boolean",
                "title": "Tell the caller how many callers are ahead",
                "default": False,
            },
        },
    }
    exit_labels = {
        ANSWERED: "Answered",
        TIMEOUT: "Waited too long",
        FULL: "Queue full",
        EMPTY: "No agent",
    }

    def exits(self) -> tuple[str, ...]:
        return (ANSWERED, TIMEOUT, FULL, EMPTY)

    def optional_exits(self) -> frozenset[str]:
        return frozenset({ANSWERED})

    async def run(self, ctx: CallContext) -> str:
        queue = self.params["queue"]
        channel = ctx.channel
        if self.params.get("announce_position", False):
            await self._announce(ctx, queue)
        await channel.set_variable("QUEUESTATUS", "")
        await channel.set_variable("ABANDONED", "")
        wait = str(self.params.get("max_wait_s", 300))
        await channel.exec("Queue", queue, "", "", "", wait, timeout_s=NO_TIMEOUT)
        status = await channel.get_variable("QUEUESTATUS") or ""
        if status:
            if status == "UNKNOWN":
                logger.warning("IVR call %s: there is no queue %r", ctx.uniqueid, queue)
            return _STATUS_EXITS.get(status, EMPTY)
        if await channel.get_variable("ABANDONED") == "TRUE":
            await channel.channel_status()  # needs a live channel: AGIHangup if it is gone
            return TIMEOUT
        return ANSWERED

    async def _announce(self, ctx: CallContext, queue: str) -> None:
        """ "There are N calls waiting", or "you are next" when nobody is ahead."""
        count = await ctx.channel.get_variable(f"QUEUE_WAITING_COUNT({queue})")
        if count is None or not count.isdigit():
            return  # app_queue is not loaded: nothing to say
        if int(count) == 0:
            await play(ctx.channel, "queue-youarenext")
            return
        await play(ctx.channel, "queue-thereare")
        try:
            await ctx.channel.say_number(int(count))
        except AGICommandFailed:
            await ctx.channel.channel_status()  # AGIHangup when the caller hung up meanwhile
            raise
        await play(ctx.channel, "queue-callswaiting")


translations = {
    "fr": {
        "Queue": "File d’attente",
        "Put the caller in a queue until an agent answers.": (
            "Place l’appelant dans une file jusqu’à ce qu’un agent réponde."
        ),
        "Longest wait (seconds)": "Attente maximale (secondes)",
        "Tell the caller how many callers are ahead": (
            "Annoncer à l’appelant combien d’appels le précèdent"
        ),
        "Answered": "Répondu",
        "Waited too long": "Attente trop longue",
        "Queue full": "File pleine",
        "No agent": "Aucun agent",
    }
}


@callcore.hookimpl
def register_ivr_nodes(registry: NodeRegistry) -> None:
    registry.add(QueueNode)
