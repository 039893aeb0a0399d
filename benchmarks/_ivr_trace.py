"""Where a call's time goes inside the server process, measured on callcore's own objects.

:meth:`Tracer.install` wraps, for the benchmark's server process only, four points of the
product: ``AGISession.__init__`` (the call's trace starts once its header block is parsed, and
its transport is wrapped so each command's write is timestamped), ``AGISession.deliver`` (a
reply's arrival), ``FastAGIServer._serve`` (the route handler's task: it marks the trace as the
task's current one) and the node's ``services.http`` (each awaited webhook request). From those:

- the **engine time** of each transition between two AGI commands: from the reply's arrival to
  the next command's write, minus the webhook time awaited in between. It is what the engine
  (or the baseline's straight-line code) spends between the PBX's turns, including any wait for
  the event loop;
- **set-up**: header block parsed to first command written (the DID's flow query, the
  ``ivr_calls`` insert, the first node); **teardown**: last reply to the connection's close
  (the ``ivr_calls`` update). Both are mostly awaited database time;
- **webhook**: the time awaited in ``services.http``.

Every figure comes in wall time and in the server thread's CPU time (``cpu_*``) over the same
span. The wrappers cost two clock reads and a list append per event, the same for both set-ups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from time import perf_counter, thread_time
from typing import Any

from _agi_loadgen import percentile

from callcore.agi.protocol import Reply
from callcore.agi.server import FastAGIServer
from callcore.agi.session import AGISession, Transport

Stamp = tuple[float, float]
"""(wall ``perf_counter``, thread CPU ``thread_time``) seconds."""


def stamp() -> Stamp:
    return perf_counter(), thread_time()


class CallTrace:
    """Timestamps of one call, as the server saw it."""

    __slots__ = ("closed", "done", "http", "replies", "started", "writes")

    def __init__(self) -> None:
        self.started = stamp()
        self.writes: list[Stamp] = []
        self.replies: list[Stamp] = []
        self.http: list[tuple[Stamp, Stamp]] = []
        self.closed: Stamp | None = None
        self.done: Stamp | None = None

    def span(self, start: Stamp, end: Stamp, clock: int) -> float:
        """Time from ``start`` to ``end`` on ``clock`` (0 wall, 1 CPU), less the webhook's."""
        low, high = start[clock], end[clock]
        awaited = sum(
            min(e[clock], high) - max(s[clock], low)
            for s, e in self.http
            if s[clock] < high and e[clock] > low
        )
        return high - low - awaited


CURRENT: ContextVar[CallTrace | None] = ContextVar("ivr_bench_trace", default=None)


class TimedTransport:
    """The session's transport, timestamping each command written and the close."""

    __slots__ = ("_trace", "_transport")

    def __init__(self, transport: Transport, trace: CallTrace) -> None:
        self._transport = transport
        self._trace = trace

    def write(self, data: bytes) -> None:
        self._trace.writes.append(stamp())
        self._transport.write(data)

    def close(self) -> None:
        if self._trace.closed is None:
            self._trace.closed = stamp()
        self._transport.close()


class Tracer:
    """Collects a :class:`CallTrace` per session once installed; summarises them in ms."""

    def __init__(self) -> None:
        self.traces: list[CallTrace] = []

    def install(self, services: Any) -> None:
        traces = self.traces
        init = AGISession.__init__
        deliver = AGISession.deliver
        serve = FastAGIServer._serve
        http = services.http

        def traced_init(
            session: AGISession, headers: Any, transport: Transport, **options: Any
        ) -> None:
            trace = CallTrace()
            traces.append(trace)
            init(session, headers, TimedTransport(transport, trace), **options)
            session._bench_trace = trace  # type: ignore[attr-defined]

        def traced_deliver(session: AGISession, event: Any) -> None:
            if type(event) is Reply and event.code != 100 and session.busy:
                session._bench_trace.replies.append(stamp())  # type: ignore[attr-defined]
            deliver(session, event)

        async def traced_serve(
            server: FastAGIServer, session: AGISession, route: Any, params: Mapping[str, str]
        ) -> None:
            trace: CallTrace = session._bench_trace  # type: ignore[attr-defined]
            CURRENT.set(trace)
            try:
                await serve(server, session, route, params)
            finally:
                trace.done = stamp()

        async def timed_http(*args: Any, **kwargs: Any) -> Any:
            started = stamp()
            try:
                return await http(*args, **kwargs)
            finally:
                trace = CURRENT.get()
                if trace is not None:
                    trace.http.append((started, stamp()))

        AGISession.__init__ = traced_init  # type: ignore[method-assign]
        AGISession.deliver = traced_deliver  # type: ignore[method-assign]
        FastAGIServer._serve = traced_serve  # type: ignore[method-assign]
        services.http = timed_http

    def summary(self, transitions: Sequence[tuple[str, int]], nodes: int) -> dict[str, Any]:
        """Figures over the complete traces; ``transitions`` labels each gap between commands
        with the nodes entered during it, ``nodes`` is the count of nodes a call visits.

        Each figure comes in wall time and, as ``cpu_*``, in the server thread's CPU time over
        the same span: CPU time leaves out the turns the machine's other processes took (and
        counts whatever other calls' work the loop ran in between)."""
        commands = len(transitions) + 1
        complete = [
            t
            for t in self.traces
            if len(t.writes) == commands and len(t.replies) == commands and t.done is not None
        ]
        gaps: list[list[list[float]]] = [[[] for _ in transitions] for _ in (0, 1)]
        calls: list[list[float]] = [[], []]
        http: list[list[float]] = [[], []]
        setup: list[list[float]] = [[], []]
        teardown: list[list[float]] = [[], []]
        for t in complete:
            end = t.closed or t.done
            assert end is not None
            for clock in (0, 1):
                spans = [t.span(t.replies[k - 1], t.writes[k], clock) for k in range(1, commands)]
                for values, span in zip(gaps[clock], spans, strict=True):
                    values.append(span)
                calls[clock].append(sum(spans))
                http[clock].extend(e[clock] - s[clock] for s, e in t.http)
                setup[clock].append(t.span(t.started, t.writes[0], clock))
                teardown[clock].append(end[clock] - t.replies[-1][clock])
        per_transition = {
            label: {"nodes_entered": entered, **_spread(wall), **_spread(cpu, "cpu_")}
            for (label, entered), wall, cpu in zip(transitions, *gaps, strict=True)
        }

        def worst(key: str, per_node: bool = False) -> float | None:
            values = [
                (v[key] or 0.0) / (max(v["nodes_entered"], 1) if per_node else 1)
                for v in per_transition.values()
            ]
            return round(max(values), 3) if values else None

        def both(values: list[list[float]]) -> dict[str, Any]:
            return _spread(values[0]) | _spread(values[1], "cpu_")

        return {
            "calls_traced": len(complete),
            "incomplete_traces": len(self.traces) - len(complete),
            "engine_per_transition": per_transition,
            "engine_transition_p99_ms_worst": worst("p99_ms"),
            "engine_transition_cpu_p99_ms_worst": worst("cpu_p99_ms"),
            "engine_node_p99_ms_worst": worst("p99_ms", per_node=True),
            "engine_call_ms": both(calls),
            "engine_per_node_call_average_ms": both([[c / nodes for c in v] for v in calls]),
            "webhook_ms": {"requests": len(http[0]), **both(http)},
            "setup_ms": both(setup),
            "teardown_ms": both(teardown),
        }


def _spread(values: list[float], prefix: str = "") -> dict[str, Any]:
    return {
        f"{prefix}p50_ms": percentile(values, 0.50),
        f"{prefix}p99_ms": percentile(values, 0.99),
        f"{prefix}max_ms": percentile(values, 1.0),
    }
