"""The IVR benchmark's server process: a real callcore node on a throwaway database.

It creates a database on the PostgreSQL server named by ``CALLCORE_TEST_DATABASE_URL`` (set by
``ivr_bench.py``: the machine's server, or an embedded one it started), opens the node with
``open_runtime`` (which migrates it), publishes the benchmark's flow (``callcore.db.flows``) and
routes its DID to it, serves the CRM stand-in the flow's webhook calls (aiohttp on 127.0.0.1,
in this process), installs the tracer (``_ivr_trace.py``) and, as ``callcore serve`` does once
started, calls ``settle_heap()``. It prints ``PORT <agi port>`` and serves. A ``MARK`` line on
its stdin (sent after the warm-up calls) starts the counts afresh; when stdin closes it prints
``STATS <json>`` (since the mark: the traces' figures, the ``ivr_calls`` rows by outcome, the
webhook requests served, the CPU its database's PostgreSQL backends used; and the event loop)
and drops the database. Run by ``ivr_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import itertools
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import psutil
from _ivr_baseline import PlainIvr
from _ivr_flow import CALL, DID, PATH, WEBHOOK_ANSWER, WEBHOOK_PATH, flow_graph
from _ivr_trace import Tracer
from agi_bench import HOST, raise_fd_limit
from aiohttp import web

import callcore.runtime
from callcore.cli import run_node
from callcore.config import AgiSettings, Secret, Settings
from callcore.crypto import generate_key
from callcore.db import flows as flow_store
from callcore.db.pool import connect, with_database
from callcore.ivr.graph import compile_graph
from callcore.plugin_manager import PluginHost, load_plugins
from callcore.runtime import Runtime, open_runtime, settle_heap

SERVER_URL_ENV = "CALLCORE_TEST_DATABASE_URL"
PRISTINE = "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER libc LOCALE 'C'"


def transitions() -> list[tuple[str, int]]:
    """Each gap between two commands of :data:`CALL`: its label and the nodes entered in it."""
    found = []
    for (before, _, _), (after, line_after, _) in itertools.pairwise(CALL):
        start, end = PATH.index(before), PATH.index(after)
        nodes = " > ".join(PATH[start : end + 1]) if end > start else before
        command = line_after.decode().split(" ", 2)
        found.append((f"{nodes} ({' '.join(command[:2]).strip()})", end - start))
    return found


async def execute(url: str, statement: str) -> None:
    conn = await connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


class Webhook:
    """The CRM stand-in: answers every lookup with the same JSON, counting requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.url = ""
        app = web.Application()
        app.router.add_route("*", WEBHOOK_PATH, self.lookup)
        self._runner = web.AppRunner(app, access_log=None)

    async def lookup(self, request: web.Request) -> web.Response:
        await request.read()
        self.requests += 1
        return web.json_response(WEBHOOK_ANSWER)

    async def start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://{HOST}:{port}{WEBHOOK_PATH}"

    async def close(self) -> None:
        await self._runner.cleanup()


def plugins_with(plain: PlainIvr) -> PluginHost:
    """The node's plugins (built-ins only) plus the baseline's route."""
    host = load_plugins(autoload=False)
    host.register(plain, "ivr-bench-plain")
    return host


async def publish(runtime: Runtime, graph: dict[str, Any]) -> None:
    """Store ``graph`` as the published version 1 of a flow routed from :data:`DID`."""
    flow, problems = compile_graph(graph, runtime.plugins.ivr_nodes())
    if flow is None:
        raise SystemExit(f"the benchmark flow is invalid: {[p.as_json() for p in problems]}")
    async with runtime.database.pool.acquire() as conn, conn.transaction():
        flow_id = await flow_store.insert_flow(conn, "ivr-bench", "", graph, None)
        await flow_store.publish_draft(conn, flow_id, "IVR benchmark")
        await conn.execute("INSERT INTO dids (number, flow_id) VALUES ($1, $2)", DID, flow_id)


async def call_rows(runtime: Runtime) -> dict[str, int]:
    """``ivr_calls`` rows by outcome (``open``: never finished)."""
    rows = await runtime.database.pool.fetch(
        "SELECT coalesce(outcome, 'open') AS outcome, count(*) AS n FROM ivr_calls GROUP BY 1"
    )
    return {row["outcome"]: row["n"] for row in rows}


async def backend_cpu(pool: asyncpg.Pool) -> dict[int, float]:
    """CPU seconds used so far by each PostgreSQL backend serving this database (the server is
    on this machine: loopback only)."""
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid()"
    )
    used = {}
    for row in rows:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(row["pid"]).cpu_times()
            used[row["pid"]] = times.user + times.system
    return used


class Measurement:
    """What the server reports, counted from the last mark (the end of the warm-up calls)."""

    def __init__(self, runtime: Runtime, webhook: Webhook) -> None:
        self.runtime = runtime
        self.webhook = webhook
        self.tracer = Tracer()
        self.tracer.install(runtime.ivr.services)
        self._db_cpu: dict[int, float] = {}
        self._rows: dict[str, int] = {}
        self._requests = 0

    async def mark(self) -> None:
        """Start counting afresh."""
        self.tracer.reset()
        self._db_cpu = await backend_cpu(self.runtime.database.pool)
        self._rows = await call_rows(self.runtime)
        self._requests = self.webhook.requests

    async def report(self) -> dict[str, Any]:
        db_cpu = await backend_cpu(self.runtime.database.pool)
        rows = await call_rows(self.runtime)
        return {
            "db_backend_cpu_s": round(
                sum(cpu - self._db_cpu.get(pid, 0.0) for pid, cpu in db_cpu.items()), 4
            ),
            "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
            "gc_frozen_objects": gc.get_freeze_count(),
            "ivr_calls": {
                outcome: n - self._rows.get(outcome, 0)
                for outcome, n in rows.items()
                if n > self._rows.get(outcome, 0)
            },
            "webhook_requests": self.webhook.requests - self._requests,
            **self.tracer.summary(transitions(), len(PATH)),
        }


async def follow_orders(
    port: int, measurement: Measurement, profile: cProfile.Profile | None
) -> None:
    """Announce ``port``; on each ``MARK`` line of stdin start counting afresh (answering
    ``MARKED``); when stdin closes, print ``STATS <json>``."""
    print(f"PORT {port}", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.buffer.readline):
        if line.strip() == b"MARK":
            await measurement.mark()
            if profile is not None:
                profile.enable()  # the measured calls only
            print("MARKED", flush=True)
    if profile is not None:
        profile.disable()
    print(f"STATS {json.dumps(await measurement.report())}", flush=True)


async def serve(url: str, args: argparse.Namespace, profile: cProfile.Profile | None) -> None:
    webhook = Webhook()
    await webhook.start()
    plain = PlainIvr(webhook.url)
    # Benchmark only: the node's own plugins plus the baseline's route, instead of entry points.
    callcore.runtime.load_plugins = lambda: plugins_with(plain)  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-bench-node-") as data_dir:
            settings = Settings(
                data_dir=Path(data_dir),
                database_url=Secret(url),
                secret_key=Secret(generate_key()),
                language="en",
                log_level="WARNING",
                agi=AgiSettings(host=HOST, max_sessions=args.max_sessions),
            )
            async with open_runtime(settings, agi_port=0) as runtime:
                assert runtime.agi is not None
                await publish(runtime, flow_graph(webhook.url))
                measurement = Measurement(runtime, webhook)
                settle_heap()  # as `callcore serve` does once it has started
                await follow_orders(runtime.agi.port, measurement, profile)
    finally:
        await webhook.close()


async def main_async(args: argparse.Namespace, profile: cProfile.Profile | None) -> None:
    admin_url = os.environ[SERVER_URL_ENV]
    name = f"callcore_ivrbench_{os.getpid()}_{secrets.token_hex(4)}"
    await execute(admin_url, f"CREATE DATABASE {name} {PRISTINE}")
    try:
        await serve(with_database(admin_url, name), args, profile)
    finally:
        await execute(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-sessions", type=int, default=2000)
    parser.add_argument("--profile", type=Path, help="write cProfile statistics to this file")
    args = parser.parse_args()
    raise_fd_limit(args.max_sessions)
    if SERVER_URL_ENV not in os.environ:
        sys.exit(f"{SERVER_URL_ENV} must name the PostgreSQL server to create the database on")
    # CPU time, not wall time: on a shared 2-core machine wall time counts the neighbours' turns.
    profile = cProfile.Profile(time.process_time) if args.profile else None
    run_node(main_async(args, profile))
    if profile is not None:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
