"""The IVR benchmark's server process: a real callcore node on a throwaway database.

It creates a database on the PostgreSQL server named by ``CALLCORE_TEST_DATABASE_URL`` (set by
``ivr_bench.py``: the machine's server, or an embedded one it started), opens the node with
``open_runtime`` (which migrates it), publishes the benchmark's flow on its DID with SQL, serves
the CRM stand-in the flow's webhook calls (aiohttp on 127.0.0.1, in this process), and installs
the tracer (``_ivr_trace.py``). It prints ``PORT <agi port>``, serves until its stdin closes,
then prints ``STATS <json>`` (the traces' figures, the ``ivr_calls`` rows by outcome, the
webhook requests served, the CPU its database's PostgreSQL backends used meanwhile, the event
loop) and drops the database. Run by ``ivr_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
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
from agi_bench import HOST, raise_fd_limit, serve_until_stdin_closes
from aiohttp import web

import callcore.runtime
from callcore.cli import run_node
from callcore.config import AgiSettings, Secret, Settings
from callcore.crypto import generate_key
from callcore.db.pool import connect, with_database
from callcore.ivr.graph import compile_graph
from callcore.plugin_manager import PluginHost, load_plugins
from callcore.runtime import Runtime, open_runtime

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
        flow_id = await conn.fetchval("INSERT INTO flows (name) VALUES ('ivr-bench') RETURNING id")
        await conn.execute(
            "INSERT INTO flow_versions (flow_id, version_number, status, graph, published_at) "
            "VALUES ($1, 1, 'published', $2, now())",
            flow_id,
            graph,
        )
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


async def serve(url: str, max_sessions: int, profile: cProfile.Profile | None) -> None:
    webhook = Webhook()
    await webhook.start()
    plain = PlainIvr(webhook.url)
    # Benchmark only: the node's own plugins plus the baseline's route, instead of entry points.
    callcore.runtime.load_plugins = lambda: plugins_with(plain)  # type: ignore[assignment]
    tracer = Tracer()
    try:
        with tempfile.TemporaryDirectory(prefix="ivr-bench-node-") as data_dir:
            settings = Settings(
                data_dir=Path(data_dir),
                database_url=Secret(url),
                secret_key=Secret(generate_key()),
                language="en",
                log_level="WARNING",
                agi=AgiSettings(host=HOST, max_sessions=max_sessions),
            )
            async with open_runtime(settings, agi_port=0) as runtime:
                assert runtime.agi is not None
                await publish(runtime, flow_graph(webhook.url))
                tracer.install(runtime.ivr.services)
                pool = runtime.database.pool
                db_before = await backend_cpu(pool)

                async def report() -> None:
                    if profile is not None:
                        profile.disable()
                    db_after = await backend_cpu(pool)
                    stats = {
                        "db_backend_cpu_s": round(
                            sum(cpu - db_before.get(pid, 0.0) for pid, cpu in db_after.items()), 4
                        ),
                        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
                        "ivr_calls": await call_rows(runtime),
                        "webhook_requests": webhook.requests,
                        **tracer.summary(transitions(), len(PATH)),
                    }
                    print(f"STATS {json.dumps(stats)}", flush=True)

                if profile is not None:
                    profile.enable()  # the calls only: not the start-up, not the report
                await serve_until_stdin_closes(runtime.agi.port, report)
    finally:
        await webhook.close()


async def main_async(max_sessions: int, profile: cProfile.Profile | None) -> None:
    admin_url = os.environ[SERVER_URL_ENV]
    name = f"callcore_ivrbench_{os.getpid()}_{secrets.token_hex(4)}"
    await execute(admin_url, f"CREATE DATABASE {name} {PRISTINE}")
    try:
        await serve(with_database(admin_url, name), max_sessions, profile)
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
    run_node(main_async(args.max_sessions, profile))
    if profile is not None:
        profile.dump_stats(args.profile)


if __name__ == "__main__":
    main()
