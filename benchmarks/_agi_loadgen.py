"""The load generator: many simulated Asterisk channels placing FastAGI calls on one server.

Each channel connects, sends a header block as Asterisk 22 does, and answers the server's
commands with the replies of a script (``--script``: a module's ``SCRIPT`` and ``SCRIPT_PATH``,
:data:`agi_bench.SCRIPT` by default), checking every command line byte for byte (a wrong, extra
or missing command is an error). It is deliberately lean (one
``asyncio.Protocol`` per call, precomputed replies, uvloop) so that the server under test, not the
load generator, is what saturates. It prints one JSON object; run by ``agi_bench.py``.

- ``closed``: ``--concurrency`` calls are kept open, each reply sent at once, a new call placed
  as soon as one ends; after ``--warmup`` s, commands and sessions completed during
  ``--duration`` s are counted, then no new call is placed and the open ones finish.
- ``paced``: ``--concurrency`` calls arrive as a Poisson process over ``--ramp`` s; each reply
  is sent after ``--exec-time`` s ± ``--jitter`` (a fraction), as if a prompt played; the
  turnaround is the time from a reply sent to the next command received, and ``end`` the time
  from the last reply sent to the server closing the connection.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import random
import resource
import time
from typing import cast

import psutil
from agi_bench import HOST, raise_fd_limit, run_on

from callcore.agi.protocol import format_header_block

MARK = "@@ID@@"


def header_template(port: int, script_path: str) -> tuple[bytes, bytes]:
    """Asterisk 22's header block (agi-basic.txt's keys and order), split where the id goes."""
    block = format_header_block(
        {
            "agi_network": "yes",
            "agi_network_script": script_path,
            "agi_request": f"agi://{HOST}:{port}/{script_path}",
            "agi_channel": f"PJSIP/trunk-{MARK}",
            "agi_language": "en",
            "agi_type": "PJSIP",
            "agi_uniqueid": f"1795557253.{MARK}",
            "agi_version": "22.0.0",
            "agi_callerid": "5551234",
            "agi_calleridname": "Alice Caller",
            "agi_callingpres": "0",
            "agi_callingani2": "0",
            "agi_callington": "0",
            "agi_callingtns": "0",
            "agi_dnid": "8005550100",
            "agi_rdnis": "unknown",
            "agi_context": "from-trunk",
            "agi_extension": "8005550100",
            "agi_priority": "2",
            "agi_enhanced": "0.0",
            "agi_accountcode": "",
            "agi_threadid": "140625114658496",
        }
    )
    head, _, tail = block.partition(MARK.encode())
    return head, tail.replace(MARK.encode(), b"%d", 1)


class Generator:
    """Counts, timings and the calls in flight."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.loop = asyncio.get_running_loop()
        script = importlib.import_module(args.script)
        self.lines = tuple(line for line, _ in script.SCRIPT)
        self.replies = tuple(reply for _, reply in script.SCRIPT)
        self.steps = len(script.SCRIPT)
        self.head, self.tail = header_template(args.port, args.script_path or script.SCRIPT_PATH)
        self.calls = 0
        self.open = 0
        self.peak_open = 0
        self.commands = 0
        self.sessions = 0
        self.errors = 0
        self.error_kinds: dict[str, int] = {}
        self.placing = True
        self.turnarounds: list[float] = []
        self.first_commands: list[float] = []
        self.ends: list[float] = []
        self.rng = random.Random(args.seed)
        self.all_done = asyncio.Event()

    def header(self) -> bytes:
        self.calls += 1
        # The channel name's hex suffix and the uniqueid's sequence number, as Asterisk makes.
        return self.head + b"%08x" % self.calls + self.tail % self.calls

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def place(self) -> None:
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(lambda: Call(self), HOST, self.args.port)
        except OSError as exc:
            self.error(f"connect: {exc.strerror or type(exc).__name__}")
            self.ended()

    def place_last(self) -> None:
        self.place()
        self.placing = False

    def ended(self) -> None:
        self.open -= 1
        if self.placing and self.args.mode == "closed":
            self.place()
        elif self.open == 0 and not self.placing:
            self.all_done.set()


class Call(asyncio.Protocol):
    """One simulated channel."""

    __slots__ = ("buffer", "connected_at", "gen", "paced", "sent_at", "step", "transport")

    def __init__(self, gen: Generator) -> None:
        self.gen = gen
        self.paced = gen.args.mode == "paced"
        self.step = 0
        self.buffer = b""
        self.sent_at = 0.0
        self.connected_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not derive from asyncio's classes: no isinstance check here.
        self.transport = transport = cast(asyncio.Transport, transport)
        self.connected_at = time.perf_counter()
        transport.write(self.gen.header())

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.buffer + data if self.buffer else data
        end = buffer.find(b"\n")
        while end >= 0:
            self.command(buffer[: end + 1], now)
            buffer = buffer[end + 1 :]
            end = buffer.find(b"\n")
        self.buffer = buffer

    def command(self, line: bytes, now: float) -> None:
        gen = self.gen
        step = self.step
        steps = gen.steps
        if step >= steps or line != gen.lines[step]:
            gen.error("extra command" if step >= steps else f"wrong command at step {step + 1}")
            self.step = steps + 1
            assert self.transport is not None
            self.transport.abort()
            return
        self.step = step + 1
        if not self.paced:
            gen.commands += 1
            assert self.transport is not None
            self.transport.write(gen.replies[step])
            return
        if step == 0:
            gen.first_commands.append(now - self.connected_at)
        else:
            gen.turnarounds.append(now - self.sent_at)
        args = gen.args
        delay = args.exec_time * (1 + gen.rng.uniform(-args.jitter, args.jitter))
        gen.loop.call_later(delay, self.reply, gen.replies[step])

    def reply(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self.gen.commands += 1
            self.sent_at = time.perf_counter()
            transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        gen = self.gen
        steps = gen.steps
        if self.step == steps and not self.buffer:
            gen.sessions += 1
            if self.paced:
                gen.ends.append(time.perf_counter() - self.sent_at)
        elif self.step <= steps:
            gen.error(f"closed after {self.step} commands" + (f": {exc}" if exc else ""))
        self.transport = None
        gen.ended()


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine spent (busy = total minus idle and iowait)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile in milliseconds."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))
    return round(ordered[index] * 1000, 3)


async def closed(args: argparse.Namespace) -> dict[str, object]:
    gen = Generator(args)
    server = psutil.Process(args.server_pid)
    for _ in range(args.concurrency):
        gen.place()
    await asyncio.sleep(args.warmup)
    commands, sessions = gen.commands, gen.sessions
    cpu, own, busy = cpu_seconds(server), own_cpu_seconds(), machine_busy_seconds()
    wall = time.perf_counter()
    await asyncio.sleep(args.duration)
    commands, sessions = gen.commands - commands, gen.sessions - sessions
    cpu, own = cpu_seconds(server) - cpu, own_cpu_seconds() - own
    busy = machine_busy_seconds() - busy
    wall = time.perf_counter() - wall
    gen.placing = False
    drained = await wait_all(gen, 30.0)
    return {
        "commands": commands,
        "sessions": sessions,
        "commands_per_s": round(commands / wall, 1),
        "sessions_per_s": round(sessions / wall, 1),
        "measured_s": round(wall, 3),
        "server_cpu_s_per_1000_commands": round(cpu / commands * 1000, 4) if commands else None,
        "server_cpu_s": round(cpu, 4),
        "server_cpu_util": round(cpu / wall, 3),
        "loadgen_cpu_util": round(own / wall, 3),
        "other_cpu_util": round(max(busy - cpu - own, 0.0) / wall, 3),
        "peak_open_calls": gen.peak_open,
        "calls_placed": gen.calls,
        "calls_completed": gen.sessions,
        "errors": gen.errors + (0 if drained else gen.open),
        "error_kinds": gen.error_kinds,
    }


async def paced(args: argparse.Namespace) -> dict[str, object]:
    gen = Generator(args)
    server = psutil.Process(args.server_pid)
    cpu, own, busy = cpu_seconds(server), own_cpu_seconds(), machine_busy_seconds()
    wall = time.perf_counter()
    at = 0.0
    start = gen.loop.time()
    for index in range(args.concurrency):
        at += gen.rng.expovariate(args.concurrency / args.ramp)
        last = index == args.concurrency - 1
        gen.loop.call_at(start + at, gen.place_last if last else gen.place)
    drained = await wait_all(gen, at + gen.steps * args.exec_time * (1 + args.jitter) + 10.0)
    cpu, own = cpu_seconds(server) - cpu, own_cpu_seconds() - own
    busy = machine_busy_seconds() - busy
    wall = time.perf_counter() - wall
    return {
        "commands": gen.commands,
        "sessions": gen.sessions,
        "turnaround_p50_ms": percentile(gen.turnarounds, 0.50),
        "turnaround_p90_ms": percentile(gen.turnarounds, 0.90),
        "turnaround_p99_ms": percentile(gen.turnarounds, 0.99),
        "turnaround_max_ms": percentile(gen.turnarounds, 1.0),
        "first_command_p50_ms": percentile(gen.first_commands, 0.50),
        "first_command_p99_ms": percentile(gen.first_commands, 0.99),
        "end_p50_ms": percentile(gen.ends, 0.50),
        "end_p99_ms": percentile(gen.ends, 0.99),
        "measured_s": round(wall, 3),
        "server_cpu_s_per_1000_commands": (
            round(cpu / gen.commands * 1000, 4) if gen.commands else None
        ),
        "server_cpu_s": round(cpu, 4),
        "server_cpu_util": round(cpu / wall, 3),
        "loadgen_cpu_util": round(own / wall, 3),
        "other_cpu_util": round(max(busy - cpu - own, 0.0) / wall, 3),
        "peak_open_calls": gen.peak_open,
        "calls_placed": gen.calls,
        "calls_completed": gen.sessions,
        "errors": gen.errors + (0 if drained else gen.open),
        "error_kinds": gen.error_kinds,
    }


async def wait_all(gen: Generator, limit: float) -> bool:
    """Wait up to ``limit`` seconds for every call to end; False if some are still open."""
    if gen.open == 0 and not gen.placing:
        return True
    try:
        async with asyncio.timeout(limit):
            await gen.all_done.wait()
    except TimeoutError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--mode", choices=("closed", "paced"), required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--exec-time", type=float, default=1.0)
    parser.add_argument("--jitter", type=float, default=0.25)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loop", default="uvloop", choices=("uvloop", "asyncio"))
    parser.add_argument(
        "--script", default="agi_bench", help="module (in benchmarks/) with SCRIPT and SCRIPT_PATH"
    )
    parser.add_argument("--script-path", help="agi_network_script instead of SCRIPT_PATH")
    args = parser.parse_args()
    raise_fd_limit(args.concurrency)
    result = run_on(args.loop, lambda: (closed if args.mode == "closed" else paced)(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
