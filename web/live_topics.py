"""The WebSocket topics of the live boards: telephony state and the calls in the IVR.

``calls``, ``agents`` and ``queues`` carry the live state (docs/live.md): the snapshot is one
upsert event per record, in the deltas' own wire form, so a board applies both the same way
(upsert by key, delete on ``remove``). ``ivr`` carries the calls now in a flow with their node
(:class:`~callcore.ivr.board.IvrBoard`); its deltas are the ``ivr.*`` events. Admins and
supervisors only: nothing here is scoped to an agent's own rows.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from callcore.auth.principal import Principal
from callcore.events import to_wire
from callcore.ivr.events import IVR_TOPIC
from callcore.live.events import TOPIC_KINDS
from callcore.web.keys import RUNTIME
from callcore.web.ws import SnapshotProvider, register_topic

BOARD_ROLES = ("admin", "supervisor")


def _live_snapshot(topic: str) -> SnapshotProvider:
    async def snapshot(app: web.Application, principal: Principal) -> list[dict[str, Any]]:
        return [to_wire(event) for event in app[RUNTIME].live.snapshot(topic)]

    return snapshot


async def _ivr_snapshot(app: web.Application, principal: Principal) -> dict[str, Any]:
    """``{"calls": [...]}``, oldest first; deltas are the ``ivr.*`` events that follow."""
    calls = await app[RUNTIME].ivr_board.snapshot()
    return {"calls": [call.as_json() for call in calls]}


def setup_live_topics(app: web.Application) -> None:
    """Register the board topics on the hub (after ``setup_ws``)."""
    for topic in TOPIC_KINDS:
        register_topic(app, topic, BOARD_ROLES, _live_snapshot(topic), topic)
    register_topic(app, IVR_TOPIC, BOARD_ROLES, _ivr_snapshot, IVR_TOPIC)
