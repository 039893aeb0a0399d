"""Where a call's time goes inside the server process, measured on callcore's own objects.

:meth:`Tracer.install` wraps, for the benchmark's server process only, four points of the
product: ``AGISession.__init__`` (the call's trace starts once its header block is parsed, and
its transport is wrapped so each command's write is timestamped), ``AGISession.deliver`` (a
reply's arrival), ``FastAGIServer._serve`` (the route handler's task: it marks the trace as the
task's current one), the node's ``services.http`` (each awaited webhook request) and the
database functions both set-ups await (:data:`DATABASE_CALLS`, each a pooled connection's
query); a ``gc.callbacks`` hook times each collection of Python's cyclic garbage collector.
From those:

- the **engine time** of each transition between two AGI commands: from the reply's arrival to
  the next command's write, minus the webhook and database time awaited in between. It is
  what the engine (or the baseline's straight-line code) spends between the PBX's turns,
  including any wait for the event loop and any garbage collection that ran meanwhile;
- **set-up**: header block parsed to first command written (routing, the call's context, the
  first node), and **teardown**: last reply to the connection's close, both less the database
  time awaited in them (the DID's flow query and the ``ivr_calls`` insert before, its update
  after);
- **webhook** and **database**: the time awaited in ``services.http`` and in each database call;
- **gc**: the collector's pauses, which stop the event loop and so every call at once.

Every figure comes in three readings: wall time; the server thread's CPU time over the same
span (``cpu_*``: the turns the machine's other processes took are left out, the work of other
calls the loop ran inside the span is not); wall time less the collector's pauses (``net_*``).
The wrappers cost two clock reads and a list append per event, the same for both set-ups.
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from time import perf_counter, thread_time
from typing import Any

from _agi_loadgen import percentile

from callcore.agi.protocol import Reply
from callcore.agi.server import FastAGIServer
from callcore.agi.session import AGISession, Transport
from callcore.db import flows as flow_store

Stamp = tuple[float, float]
"""(wall ``perf_counter``, thread CPU ``thread_time``) seconds."""
Interval = tuple[Stamp, Stamp]
READINGS = ("", "cpu_", "net_")
"""Key prefixes of the three readings: wall time, CPU time, wall time less GC pauses."""
DATABASE_CALLS = ("published_for_did", "published_flow", "start_call", "finish_call")
"""The functions of :mod:`callcore.db.flows` a call awaits (``IvrService`` and the baseline)."""


def stamp() -> Stamp:
    return perf_counter(), thread_time()


def span(start: Stamp, end: Stamp, clock: int, excluded: Sequence[Interval] = ()) -> float:
    """Time from ``start`` to ``end`` on ``clock`` (0 wall, 1 CPU), less the union of the
    ``excluded`` intervals inside it."""
    low, high = start[clock], end[clock]
    clipped = sorted(
        (max(s[clock], low), min(e[clock], high))
        for s, e in excluded
        if s[clock] < high and e[clock] > low
    )
    left_out, reach = 0.0, low
    for begin, finish in clipped:
        if finish > reach:
            left_out += finish - max(begin, reach)
            reach = finish
    return high - low - left_out


class CallTrace:
    """Timestamps of one call, as the server saw it."""

    __slots__ = ("closed", "database", "done", "http", "replies", "started", "writes")

    def __init__(self) -> None:
        self.started = stamp()
        self.writes: list[Stamp] = []
        self.replies: list[Stamp] = []
        self.http: list[Interval] = []
        self.database: list[Interval] = []
        self.closed: Stamp | None = None
        self.done: Stamp | None = None


class Pauses:
    """The garbage collector's pauses, in time order (they never overlap)."""

    def __init__(self) -> None:
        self.intervals: list[Interval] = []
        self.generations: list[int] = []
        self._starts: list[float] = []
        self._began: Stamp | None = None

    def callback(self, phase: str, info: Mapping[str, int]) -> None:
        if phase == "start":
            self._began = stamp()
        elif self._began is not None:
            self.intervals.append((self._began, stamp()))
            self.generations.append(info["generation"])
            self._starts.append(self._began[0])
            self._began = None

    def within(self, low: float, high: float) -> list[Interval]:
        """The pauses overlapping the wall-time span ``low``–``high``."""
        found = []
        index = bisect.bisect_left(self._starts, high) - 1
        while index >= 0 and self.intervals[index][1][0] > low:
            found.append(self.intervals[index])
            index -= 1
        return found

    def by_generation(self) -> dict[str, Any]:
        figures: dict[str, Any] = {}
        for generation in sorted(set(self.generations)):
            pauses = [
                (end[0] - begin[0]) * 1000
                for (begin, end), g in zip(self.intervals, self.generations, strict=True)
                if g == generation
            ]
            figures[f"gen{generation}"] = {
                "collections": len(pauses),
                "total_ms": round(sum(pauses), 1),
                "max_ms": round(max(pauses), 3),
            }
        return figures


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
        self.pauses = Pauses()

    def install(self, services: Any) -> None:
        traces = self.traces
        init = AGISession.__init__
        deliver = AGISession.deliver
        serve = FastAGIServer._serve

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
            server: FastAGIServer, connection: Any, route: Any, params: Mapping[str, str]
        ) -> None:
            trace: CallTrace = connection.session._bench_trace
            CURRENT.set(trace)
            try:
                await serve(server, connection, route, params)
            finally:
                trace.done = stamp()

        gc.callbacks.append(self.pauses.callback)
        AGISession.__init__ = traced_init  # type: ignore[method-assign]
        AGISession.deliver = traced_deliver  # type: ignore[method-assign]
        FastAGIServer._serve = traced_serve  # type: ignore[method-assign]
        services.http = _awaited(services.http, "http")
        for name in DATABASE_CALLS:
            setattr(flow_store, name, _awaited(getattr(flow_store, name), "database"))

    def reset(self) -> None:
        """Forget what was traced so far (the warm-up calls)."""
        self.traces.clear()
        gc.callbacks.remove(self.pauses.callback)
        self.pauses = Pauses()
        gc.callbacks.append(self.pauses.callback)

    def measure(self, begin: Stamp, end: Stamp, reading: str, awaited: Sequence[Interval]) -> float:
        """One span in one reading, less the webhook and database time ``awaited`` inside it."""
        excluded = list(awaited)
        if reading == "net_":
            excluded += self.pauses.within(begin[0], end[0])
        return span(begin, end, 1 if reading == "cpu_" else 0, excluded)

    def summary(self, transitions: Sequence[tuple[str, int]], nodes: int) -> dict[str, Any]:
        """Figures over the complete traces; ``transitions`` labels each gap between commands
        with the nodes entered during it, ``nodes`` is the count of nodes a call visits."""
        commands = len(transitions) + 1
        complete = [
            t
            for t in self.traces
            if len(t.writes) == commands and len(t.replies) == commands and t.done is not None
        ]
        gaps: dict[str, list[list[float]]] = {r: [[] for _ in transitions] for r in READINGS}
        calls: dict[str, list[float]] = {r: [] for r in READINGS}
        webhook: dict[str, list[float]] = {r: [] for r in READINGS}
        database: dict[str, list[float]] = {r: [] for r in READINGS}
        setup: dict[str, list[float]] = {r: [] for r in READINGS}
        teardown: dict[str, list[float]] = {r: [] for r in READINGS}
        for t in complete:
            end = t.closed or t.done
            assert end is not None
            awaited = t.http + t.database
            for r in READINGS:
                spans = [
                    self.measure(t.replies[k - 1], t.writes[k], r, awaited)
                    for k in range(1, commands)
                ]
                for values, value in zip(gaps[r], spans, strict=True):
                    values.append(value)
                calls[r].append(sum(spans))
                webhook[r].extend(self.measure(s, e, r, ()) for s, e in t.http)
                database[r].extend(self.measure(s, e, r, ()) for s, e in t.database)
                setup[r].append(self.measure(t.started, t.writes[0], r, awaited))
                teardown[r].append(self.measure(t.replies[-1], end, r, awaited))
        per_transition = {
            label: {"nodes_entered": entered} | _spread({r: gaps[r][index] for r in READINGS})
            for index, (label, entered) in enumerate(transitions)
        }

        def worst(key: str, per_node: bool = False) -> float | None:
            """The worst transition's ``key``; ``per_node``: divided by the nodes it entered
            (a transition inside one node, such as a second prompt, counts as one)."""
            values = [
                v[key] / (max(int(v["nodes_entered"]), 1) if per_node else 1)
                for v in per_transition.values()
                if v[key] is not None
            ]
            return round(max(values), 3) if values else None

        return {
            "calls_traced": len(complete),
            "incomplete_traces": len(self.traces) - len(complete),
            "engine_per_transition": per_transition,
            "engine_transition_p99_ms_worst": worst("p99_ms"),
            "engine_transition_cpu_p99_ms_worst": worst("cpu_p99_ms"),
            "engine_transition_net_p99_ms_worst": worst("net_p99_ms"),
            "engine_node_p99_ms_worst": worst("p99_ms", per_node=True),
            "engine_node_cpu_p99_ms_worst": worst("cpu_p99_ms", per_node=True),
            "engine_node_net_p99_ms_worst": worst("net_p99_ms", per_node=True),
            "engine_call_ms": _spread(calls),
            "engine_per_node_call_average_ms": _spread(
                {r: [c / nodes for c in values] for r, values in calls.items()}
            ),
            "webhook_ms": {"requests": len(webhook[""])} | _spread(webhook),
            "database_ms": {"queries": len(database[""])} | _spread(database),
            "setup_ms": _spread(setup),
            "teardown_ms": _spread(teardown),
            "gc_pauses": self.pauses.by_generation(),
        }


def _awaited(function: Any, kind: str) -> Any:
    """``function`` (a coroutine function), each await of it kept in the current call's trace
    as a ``kind`` (``http`` or ``database``) interval."""

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = stamp()
        try:
            return await function(*args, **kwargs)
        finally:
            trace = CURRENT.get()
            if trace is not None:
                getattr(trace, kind).append((started, stamp()))

    return timed


def _spread(readings: Mapping[str, list[float]]) -> dict[str, Any]:
    """p50, p99 and max of each reading, in ms, keyed with the reading's prefix."""
    figures: dict[str, Any] = {}
    for prefix, values in readings.items():
        figures[f"{prefix}p50_ms"] = percentile(values, 0.50)
        figures[f"{prefix}p99_ms"] = percentile(values, 0.99)
        figures[f"{prefix}max_ms"] = percentile(values, 1.0)
    return figures
