"""Running a compiled flow over a call, node by node.

The engine knows nothing of node types: it calls ``await node.run(ctx)``, follows the exit it
returns, and stops when an exit leads nowhere, the caller hangs up, a node fails, or the call
exceeds its step limit (a flow that loops through waiting nodes forever still ends). It publishes
``ivr.node_entered`` when a call enters a flow and ``ivr.node_left`` as each node is left, naming
the next node (one event per step: events are most of the engine's cost per node), and returns a
:class:`CallResult` naming the node where the call ended, which the caller of
:meth:`FlowEngine.run` stores.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from callcore.agi.errors import AGIError, AGIHangup
from callcore.events import EventBus
from callcore.ivr.context import CallContext
from callcore.ivr.events import NodeEntered, NodeLeft
from callcore.ivr.graph import CompiledFlow
from callcore.ivr.node import END

logger = logging.getLogger("callcore.ivr")

DEFAULT_STEP_LIMIT = 200
MAX_FLOW_JUMPS = 10

FlowLoader = Callable[[int], Awaitable[tuple[int, CompiledFlow] | None]]
"""Flow id -> (version number, compiled published version), or None when it has none."""


class Outcome(enum.Enum):
    """How a call left the IVR."""

    COMPLETED = "completed"
    """An exit led nowhere (or to a node without exits, such as hangup or a transfer's end)."""
    HANGUP = "hangup"
    """The caller hung up (or the channel left AGI) inside a node."""
    STEP_LIMIT = "step_limit"
    ERROR = "error"
    CLOSED = "closed"
    """An emergency override closed the flow before it ran."""


@attrs.frozen
class CallResult:
    outcome: Outcome
    last_node: str | None
    steps: int
    path: tuple[str, ...]
    error: str | None = None


class FlowEngine:
    """Runs flows; one engine serves every call of a node process (it holds no call state)."""

    def __init__(
        self, bus: EventBus | None = None, *, step_limit: int = DEFAULT_STEP_LIMIT
    ) -> None:
        self._bus = bus
        self._origin = "" if bus is None else bus.node_id
        """Events are stamped here with the bus's node id: the bus would copy each to stamp it."""
        self.step_limit = step_limit

    def _publish(self, event: NodeEntered | NodeLeft) -> None:
        if self._bus is not None:
            self._bus.publish(event)

    async def run(
        self, ctx: CallContext, flow: CompiledFlow, load_flow: FlowLoader | None = None
    ) -> CallResult:
        path: list[str] = []
        node_id: str | None = flow.entry
        jumps = 0
        entering = True  # announce the entry node; the others come with the previous node_left
        while node_id is not None:
            if len(path) >= self.step_limit:
                logger.warning(
                    "IVR call %s stopped after %d steps in flow %s (node %s)",
                    ctx.uniqueid,
                    len(path),
                    ctx.flow_id,
                    node_id,
                )
                return CallResult(Outcome.STEP_LIMIT, path[-1], len(path), tuple(path))
            compiled = flow.nodes[node_id]
            path.append(node_id)
            step = len(path)
            where: dict[str, Any] = {  # what both events of this step say
                "origin": self._origin,
                "uniqueid": ctx.uniqueid,
                "flow_id": ctx.flow_id,
                "node_id": node_id,
                "node_type": compiled.type,
                "step": step,
            }
            if entering:
                entering = False
                self._publish(NodeEntered(**where))
            started = time.perf_counter()
            exit_name: str | None = None
            next_id: str | None = None
            try:
                exit_name = await compiled.node.run(ctx)
                if ctx.pending_flow is None:
                    next_id = compiled.next.get(exit_name)  # type: ignore[arg-type]
            except AGIHangup:
                return CallResult(Outcome.HANGUP, node_id, step, tuple(path))
            except AGIError as exc:
                logger.warning("IVR call %s: node %s failed: %s", ctx.uniqueid, node_id, exc)
                return CallResult(Outcome.ERROR, node_id, step, tuple(path), str(exc))
            except Exception as exc:
                logger.exception(
                    "IVR call %s: node %s (%s) raised", ctx.uniqueid, node_id, compiled.type
                )
                return CallResult(
                    Outcome.ERROR, node_id, step, tuple(path), f"{type(exc).__name__}: {exc}"
                )
            finally:
                self._publish(
                    NodeLeft(
                        **where,
                        exit=exit_name,
                        milliseconds=(time.perf_counter() - started) * 1000,
                        next_node=next_id,
                        next_type=None if next_id is None else flow.nodes[next_id].type,
                    )
                )
            if ctx.pending_flow is not None:
                target, ctx.pending_flow = ctx.pending_flow, None
                jumps += 1
                loaded = (
                    await load_flow(target)
                    if load_flow is not None and jumps <= MAX_FLOW_JUMPS
                    else None
                )
                if loaded is None:
                    reason = (
                        f"too many flow jumps (more than {MAX_FLOW_JUMPS})"
                        if jumps > MAX_FLOW_JUMPS
                        else f"flow {target} has no published version"
                    )
                    return CallResult(Outcome.ERROR, node_id, step, tuple(path), reason)
                ctx.flow_id, (ctx.flow_version, flow) = target, loaded
                node_id = flow.entry
                entering = True
                continue
            if exit_name == END and not compiled.next:
                break
            if exit_name not in compiled.next:
                return CallResult(
                    Outcome.ERROR,
                    node_id,
                    step,
                    tuple(path),
                    f"node {node_id!r} ({compiled.type}) returned unknown exit {exit_name!r}",
                )
            node_id = compiled.next[exit_name]
        return CallResult(Outcome.COMPLETED, path[-1] if path else None, len(path), tuple(path))
