"""FastAGI benchmark: callcore's server against panoramisk's FastAGI and a bare asyncio server.

Every server runs the same 20-command IVR script (:data:`SCRIPT`) per call, each in its own
process; the simulated Asterisk channels come from a load generator in another process
(``_agi_loadgen.py``), which checks every command line byte for byte and answers as Asterisk 22
does. Two modes, as issue 5 item 8 defines them:

- **closed loop**: the load generator answers every command at once and opens a new call as soon
  as one ends, keeping N calls open; commands/s and sessions/s are throughput (any latency seen
  there is only queueing, N / throughput);
- **paced**: calls arrive spread out and each command takes a jittered ~1 s to "execute" (a
  prompt playing); the figure is the server's turnaround, from a reply sent to the next command
  received, p50/p99, and the errors.

For each run: peak RSS of the server process, server CPU seconds per 1000 commands, and the
ratios. One JSON object goes to stdout; progress goes to stderr. ``--quick`` is a reduced run
(under 45 s) with the same keys. Loopback only; every run is bounded in time and count.

    python benchmarks/agi_bench.py [--quick] [--repeat N] [--only SETUP ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
ROUTE = "bench/{flow}"
SCRIPT_PATH = "bench/main-menu"
"""``agi_network_script`` of every call: callcore's route ``bench/{flow}`` with flow ``main-menu``
(panoramisk routes exact paths, so it gets this one)."""

SCRIPT: tuple[tuple[bytes, bytes], ...] = (
    (b"ANSWER\n", b"200 result=0\n"),
    (b"GET VARIABLE CALLERID(num)\n", b"200 result=1 (5551234)\n"),
    (b"GET FULL VARIABLE ${CALLERID(all)}\n", b'200 result=1 ("Alice Caller" <5551234>)\n'),
    (b"SET VARIABLE CALLCORE_FLOW main-menu\n", b"200 result=1\n"),
    (b'VERBOSE "IVR main-menu start" 1\n', b"200 result=1\n"),
    (b'STREAM FILE welcome ""\n', b"200 result=0 endpos=16000\n"),
    (b"STREAM FILE main-menu 123\n", b"200 result=50 endpos=9600\n"),
    (b"GET DATA enter-account 5000 6\n", b"200 result=123456\n"),
    (b"SET VARIABLE ACCOUNT 123456\n", b"200 result=1\n"),
    (b"DATABASE GET accounts 123456\n", b"200 result=1 (gold)\n"),
    (b'SAY DIGITS 123456 ""\n', b"200 result=0\n"),
    (b"EXEC Set TIER=gold\n", b"200 result=0\n"),
    (b"CHANNEL STATUS\n", b"200 result=6\n"),
    (b"WAIT FOR DIGIT 2000\n", b"200 result=49\n"),
    (b"EXEC Playback please-hold\n", b"200 result=0\n"),
    (b"SET MUSIC on default\n", b"200 result=0\n"),
    (b"GET VARIABLE QUEUE_WAIT\n", b"200 result=0\n"),
    (b"SET MUSIC off\n", b"200 result=0\n"),
    (b"DATABASE PUT lastcall 123456 gold\n", b"200 result=1\n"),
    (b"SET VARIABLE CALLCORE_STATUS OK\n", b"200 result=1\n"),
)
"""The call, as (command line the server must send, reply Asterisk 22 gives), in order: an IVR
that answers, reads the caller, plays a welcome and a menu (``2`` pressed), collects an account
number, looks it up, reads it back, queues with music, and reports its status."""

SETUPS: tuple[tuple[str, str], ...] = (
    ("callcore", "uvloop"),
    ("callcore", "asyncio"),
    ("panoramisk", "asyncio"),
    ("bare", "uvloop"),
    ("bare", "asyncio"),
)
"""(server, event loop) pairs. panoramisk runs as its users run it, on the stdlib loop."""
CALLCORE_DEFAULT_LOOP = "uvloop"
"""The loop of callcore's set-up that ``ratio_vs_panoramisk`` measures."""

FD_HEADROOM = 512


# -- shared by the processes -----------------------------------------------------------------


def raise_fd_limit(connections: int) -> None:
    """Let this process hold ``connections`` sockets (plus headroom), up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = connections + FD_HEADROOM
    if soft < want:
        limit = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < want:
        raise SystemExit(f"open-file limit {hard} is below the {want} descriptors needed")


def run_on(loop_name: str, main: Callable[[], Any]) -> Any:
    """Run the coroutine function ``main`` on ``uvloop`` or the stdlib ``asyncio`` loop."""
    if loop_name == "uvloop":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    if loop_name != "asyncio":
        raise SystemExit(f"unknown event loop {loop_name!r}: use uvloop or asyncio")
    return asyncio.run(main())


async def serve_until_stdin_closes(port: int, close: Callable[[], Any]) -> None:
    """Announce ``port`` to the orchestrator, then serve until it closes our stdin."""
    print(f"PORT {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)
    await close()


# -- the servers under test (the bare one is in _bare_agi_server.py) --------------------------


def callcore_server(loop_name: str, max_sessions: int) -> None:
    """callcore's FastAGI server, its route registered by a plugin through the hook."""
    import callcore
    from callcore.agi import AgiRoute, AGISession, FastAGIServer
    from callcore.config import AgiSettings
    from callcore.plugin_manager import PluginHost
    from callcore.runtime import settle_heap

    async def main_menu(session: AGISession, params: Mapping[str, str]) -> None:
        flow = params["flow"]
        await session.answer()
        await session.get_variable("CALLERID(num)")
        await session.get_full_variable("${CALLERID(all)}")
        await session.set_variable("CALLCORE_FLOW", flow)
        await session.verbose(f"IVR {flow} start", 1)
        await session.stream_file("welcome")
        await session.stream_file("main-menu", "123")
        account = (await session.get_data("enter-account", 5000, 6)).digits
        await session.set_variable("ACCOUNT", account)
        tier = await session.database_get("accounts", account) or "standard"
        await session.say_digits(account)
        await session.exec("Set", f"TIER={tier}")
        await session.channel_status()
        await session.wait_for_digit(2000)
        await session.exec("Playback", "please-hold")
        await session.set_music(True, "default")
        await session.get_variable("QUEUE_WAIT")
        await session.set_music(False)
        await session.database_put("lastcall", account, tier)
        await session.set_variable("CALLCORE_STATUS", "OK")

    class BenchPlugin:
        @callcore.hookimpl
        def register_agi_routes(self, registry: Any) -> None:
            registry.add(AgiRoute(ROUTE, main_menu))

    async def main() -> None:
        host = PluginHost()
        host.load_builtins()
        host.register(BenchPlugin(), "agi-bench")
        settings = AgiSettings(host=HOST, max_sessions=max_sessions)
        server = FastAGIServer(host.agi_routes(), settings, port=0)
        await server.start()
        settle_heap()  # as `callcore serve` does once it has started
        await serve_until_stdin_closes(server.port, server.close)

    run_on(loop_name, main)


def panoramisk_server(loop_name: str) -> None:
    """panoramisk's FastAGI ``Application`` on ``asyncio.start_server``, as its docs show.

    panoramisk 1.4 runs on Python 3.11 without a shim when its ``Application`` is built inside
    the running loop and the route is a coroutine function (``asyncio.coroutine`` is only
    reached for plain functions).
    """
    from panoramisk.fast_agi import Application, Request

    commands = [line.decode().rstrip("\n") for line, _ in SCRIPT]

    async def main_menu(request: Request) -> None:
        for command in commands:
            await request.send_command(command)

    async def main() -> None:
        app = Application(loop=asyncio.get_running_loop())
        app.add_route(SCRIPT_PATH, main_menu)
        server = await asyncio.start_server(app.handler, HOST, 0)

        async def close() -> None:
            server.close()
            await server.wait_closed()

        await serve_until_stdin_closes(server.sockets[0].getsockname()[1], close)

    run_on(loop_name, main)


# -- the orchestrator ------------------------------------------------------------------------


def scenarios(quick: bool) -> dict[str, dict[str, Any]]:
    """The runs, by key; ``--quick`` keeps the keys with smaller counts and shorter times.

    Quick paced runs keep the full runs' command rates (concurrency / execution time) with a
    twenty-fifth of the execution time and concurrency, so each takes about a second.
    """
    if quick:
        closed = {"warmup": 0.2, "duration": 0.8}
        paced = {"exec_time": 0.04, "ramp": 0.3}
        low, high, paced_low, paced_high = 100, 500, 40, 200
    else:
        closed = {"warmup": 1.0, "duration": 5.0}
        paced = {"exec_time": 1.0, "ramp": 5.0}
        low, high, paced_low, paced_high = 100, 500, 1000, 5000
    return {
        "closed_low": {"mode": "closed", "concurrency": low, **closed},
        "closed_high": {"mode": "closed", "concurrency": high, **closed},
        "paced_low": {"mode": "paced", "concurrency": paced_low, "jitter": 0.25, **paced},
        "paced_high": {"mode": "paced", "concurrency": paced_high, "jitter": 0.25, **paced},
    }


def server_command(server: str, loop_name: str, max_sessions: int) -> list[str]:
    if server == "bare":
        command = [sys.executable, str(HERE / "_bare_agi_server.py")]
    else:
        command = [sys.executable, str(Path(__file__).resolve()), "serve", server]
    return [*command, "--loop", loop_name, "--max-sessions", str(max_sessions)]


class RssSampler(threading.Thread):
    """Samples a process's RSS every 20 ms; ``peak`` is the largest seen (or Linux's VmHWM)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        import psutil

        self._process = psutil.Process(pid)
        self._pid = pid
        self._stop_event = threading.Event()
        self.peak = self._process.memory_info().rss
        self.start_rss = self.peak

    def run(self) -> None:
        import psutil

        while not self._stop_event.wait(0.02):
            try:
                self.peak = max(self.peak, self._process.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        status = Path(f"/proc/{self._pid}/status")
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak = max(self.peak, int(line.split()[1]) * 1024)
        return self.peak


@contextlib.contextmanager
def running_server(command: list[str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Start a server process, wait for its port, and stop it (stdin closed) on the way out."""
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("PORT "):
            process.kill()
            raise RuntimeError(
                f"server {command[1:]} did not start: {line!r}\n{log.read_text()[-2000:]}"
            )
        yield process, int(line.split()[1])
    finally:
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_one(server: str, loop_name: str, scenario: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """One server process, one load-generator process, one scenario; the figures."""
    concurrency = scenario["concurrency"]
    with tempfile.TemporaryDirectory(prefix="agi-bench-") as tmp:
        log = Path(tmp) / "server.log"
        command = server_command(server, loop_name, max_sessions=concurrency * 2)
        with running_server(command, log) as (process, port):
            sampler = RssSampler(process.pid)
            sampler.start()
            loadgen = [
                sys.executable,
                str(HERE / "_agi_loadgen.py"),
                "--port",
                str(port),
                "--server-pid",
                str(process.pid),
                "--seed",
                str(seed),
                "--mode",
                scenario["mode"],
                "--concurrency",
                str(concurrency),
            ]
            for option in ("warmup", "duration", "exec_time", "ramp", "jitter"):
                if option in scenario:
                    loadgen += [f"--{option.replace('_', '-')}", str(scenario[option])]
            done = subprocess.run(loadgen, capture_output=True, timeout=600, check=False)
            peak = sampler.stop()
            start_rss = sampler.start_rss
        server_log = log.read_text(errors="replace").splitlines()
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    figures: dict[str, Any] = json.loads(done.stdout)
    figures["server_rss_start_mib"] = round(start_rss / 2**20, 1)
    figures["server_rss_peak_mib"] = round(peak / 2**20, 1)
    figures["server_log_lines"] = len(server_log)
    if server_log:
        print(f"  server log ({len(server_log)} lines), last: {server_log[-1]}", file=sys.stderr)
    return figures


def undisturbed_run(run: Callable[[], dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """``run()`` (one run's figures), run again (at most ``--attempts`` times in all) while
    other processes took more than ``--max-other-cpu`` cores meanwhile: on a shared 2-core
    machine such a run measures the neighbours. Every set-up gets the same rule; the last
    attempt counts anyway, flagged ``disturbed``."""
    for attempt in range(1, args.attempts + 1):
        figures = run()
        figures["attempts"] = attempt
        figures["disturbed"] = figures["other_cpu_util"] > args.max_other_cpu
        if not figures["disturbed"]:
            break
        print(
            f"  disturbed: other processes used {figures['other_cpu_util']} cores; "
            f"attempt {attempt} of {args.attempts}",
            file=sys.stderr,
        )
    return figures


MEDIAN_KEYS = (
    "commands_per_s",
    "sessions_per_s",
    "turnaround_p50_ms",
    "turnaround_p99_ms",
    "turnaround_max_ms",
    "first_command_p50_ms",
    "first_command_p99_ms",
    "server_cpu_s_per_1000_commands",
    "server_cpu_util",
    "loadgen_cpu_util",
    "other_cpu_util",
    "server_rss_peak_mib",
    "server_rss_start_mib",
)
SUM_KEYS = ("errors", "server_log_lines", "disturbed", "attempts")


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over the repeats; errors and log lines add up."""
    combined: dict[str, Any] = {"runs": len(runs)}
    for key in MEDIAN_KEYS:
        values = [run[key] for run in runs if run.get(key) is not None]
        if values:
            combined[key] = round(statistics.median(values), 4)
    for key in SUM_KEYS:
        combined[key] = sum(run.get(key, 0) for run in runs)
    for key in ("commands", "sessions", "peak_open_calls"):
        combined[key] = min(run.get(key, 0) for run in runs)
    kinds: dict[str, int] = {}
    for run in runs:
        for kind, count in run.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + count
    combined["error_kinds"] = kinds
    if len(runs) > 1:
        rates = [run.get("commands_per_s") for run in runs if run.get("commands_per_s")]
        p99s = [run.get("turnaround_p99_ms") for run in runs if run.get("turnaround_p99_ms")]
        combined["each_run"] = {"commands_per_s": rates} if rates else {"turnaround_p99_ms": p99s}
    return combined


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def summarise(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Ratios and targets from the combined figures."""
    default = f"callcore/{CALLCORE_DEFAULT_LOOP}"

    def figure(scenario: str, setup: str, key: str) -> Any:
        return results.get(scenario, {}).get(setup, {}).get(key)

    ratios: dict[str, Any] = {}
    for scenario in ("closed_low", "closed_high"):
        ratios[scenario] = {
            "callcore_vs_panoramisk": ratio(
                figure(scenario, default, "commands_per_s"),
                figure(scenario, "panoramisk/asyncio", "commands_per_s"),
            ),
            "callcore_asyncio_vs_panoramisk": ratio(
                figure(scenario, "callcore/asyncio", "commands_per_s"),
                figure(scenario, "panoramisk/asyncio", "commands_per_s"),
            ),
            "bare_uvloop_vs_panoramisk": ratio(
                figure(scenario, "bare/uvloop", "commands_per_s"),
                figure(scenario, "panoramisk/asyncio", "commands_per_s"),
            ),
            **{
                f"callcore_vs_bare_{loop}": ratio(
                    figure(scenario, f"callcore/{loop}", "commands_per_s"),
                    figure(scenario, f"bare/{loop}", "commands_per_s"),
                )
                for loop in ("uvloop", "asyncio")
            },
        }
    for scenario in ("closed_low", "closed_high", "paced_low", "paced_high"):
        # CPU per command barely depends on who else had the CPU: the steadier comparison on a
        # shared machine. Above 1, callcore spends less CPU per command than the other.
        cpu = "server_cpu_s_per_1000_commands"
        ratios.setdefault(scenario, {})
        ratios[scenario]["cpu_panoramisk_over_callcore"] = ratio(
            figure(scenario, "panoramisk/asyncio", cpu), figure(scenario, default, cpu)
        )
        for loop in ("uvloop", "asyncio"):
            ratios[scenario][f"cpu_bare_over_callcore_{loop}"] = ratio(
                figure(scenario, f"bare/{loop}", cpu), figure(scenario, f"callcore/{loop}", cpu)
            )
    for scenario in ("paced_low", "paced_high"):
        ratios[scenario] |= {
            f"callcore_vs_bare_{loop}_p99": ratio(
                figure(scenario, f"callcore/{loop}", "turnaround_p99_ms"),
                figure(scenario, f"bare/{loop}", "turnaround_p99_ms"),
            )
            for loop in ("uvloop", "asyncio")
        }
        ratios[scenario]["callcore_vs_panoramisk_p99"] = ratio(
            figure(scenario, default, "turnaround_p99_ms"),
            figure(scenario, "panoramisk/asyncio", "turnaround_p99_ms"),
        )

    def worst(key: str) -> float | None:
        values = [ratios[s][key] for s in ("closed_low", "closed_high")]
        return None if None in values else min(values)

    vs_panoramisk = worst("callcore_vs_panoramisk")
    vs_bare = worst(f"callcore_vs_bare_{CALLCORE_DEFAULT_LOOP}")
    paced_p99_ratio = ratios["paced_high"][f"callcore_vs_bare_{CALLCORE_DEFAULT_LOOP}_p99"]
    low_p99 = figure("paced_low", default, "turnaround_p99_ms")
    high_errors = figure("paced_high", default, "errors")
    targets = {
        "closed_ge_1.5x_panoramisk": _met(vs_panoramisk, lambda v: v >= 1.5),
        "closed_ge_0.9x_bare_same_loop": _met(vs_bare, lambda v: v >= 0.9),
        "paced_high_no_error": _met(high_errors, lambda v: v == 0),
        "paced_high_p99_le_1.1x_bare": _met(paced_p99_ratio, lambda v: v <= 1.1),
        "paced_low_p99_lt_5ms": _met(low_p99, lambda v: v < 5.0),
    }
    return {
        "ratio_vs_panoramisk": vs_panoramisk,
        "ratio_vs_bare": vs_bare,
        "ratios": ratios,
        "targets": targets,
    }


def _met(value: Any, test: Callable[[Any], bool]) -> bool | None:
    return None if value is None else test(value)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("callcore", "panoramisk", "uvloop"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    plan = scenarios(args.quick)
    setups = [s for s in SETUPS if not args.only or f"{s[0]}/{s[1]}" in args.only]
    raise_fd_limit(max(s["concurrency"] for s in plan.values()))
    started = time.monotonic()
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {key: {} for key in plan}
    for repeat in range(args.repeat):
        for key, scenario in plan.items():
            # Rotate the order each repeat so no set-up always runs first (or last) on a noisy box.
            shift = repeat % len(setups)
            for server, loop_name in setups[shift:] + setups[:shift]:
                setup = f"{server}/{loop_name}"
                figures = undisturbed_run(
                    functools.partial(run_one, server, loop_name, scenario, args.seed + repeat),
                    args,
                )
                raw[key].setdefault(setup, []).append(figures)
                brief = (
                    f"{figures['commands_per_s']:.0f} commands/s"
                    if scenario["mode"] == "closed"
                    else f"p99 {figures['turnaround_p99_ms']} ms"
                )
                print(
                    f"[{time.monotonic() - started:6.1f}s] {key} {setup}: {brief}, "
                    f"errors {figures['errors']} {figures.get('error_kinds') or ''}, "
                    f"other load {figures['other_cpu_util']}",
                    file=sys.stderr,
                )
    results = {
        key: {setup: combine(runs) for setup, runs in by_setup.items()}
        for key, by_setup in raw.items()
    }
    return {
        "benchmark": "agi",
        "quick": args.quick,
        "repeats": args.repeat,
        "statistic": "median over repeats",
        **summarise(results),
        "callcore_default_loop": CALLCORE_DEFAULT_LOOP,
        "script_commands": len(SCRIPT),
        "scenarios": {key: {**plan[key], "results": results[key]} for key in plan},
        "machine": {"cpus": os.cpu_count(), **versions()},
        "elapsed_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run one server under test (used by the orchestrator)")
    serve.add_argument("server", choices=("callcore", "panoramisk"))
    serve.add_argument("--loop", default="asyncio", choices=("uvloop", "asyncio"))
    serve.add_argument("--max-sessions", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="reduced run, under 45 s")
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure; medians reported")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--max-other-cpu",
        type=float,
        default=0.3,
        help="a run during which other processes used more cores than this is run again",
    )
    parser.add_argument(
        "--attempts", type=int, help="most tries of a disturbed run (3; 1 with --quick)"
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[f"{s}/{loop}" for s, loop in SETUPS],
        help="run only these set-ups (ratios needing the others come out null)",
    )
    args = parser.parse_args(argv)
    if args.attempts is None:
        args.attempts = 1 if args.quick else 3
    if args.command == "serve":
        raise_fd_limit(args.max_sessions)
        if args.server == "callcore":
            callcore_server(args.loop, args.max_sessions)
        else:
            panoramisk_server(args.loop)
        return
    print(json.dumps(orchestrate(args), indent=2))


if __name__ == "__main__":
    main()
