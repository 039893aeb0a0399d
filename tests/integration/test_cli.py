"""The `callcore` command, run as a user runs it: a real process, a real database."""

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import asyncpg
from _cli import CALLCORE, free_port, run

from callcore import __version__
from callcore.auth.passwords import verify_password
from callcore.sim.agi_channel import run_agi_call


def wait_for_health(url: str, process: subprocess.Popen, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds}s")


def stop(process: subprocess.Popen) -> tuple[int, str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_version_and_help_for_every_command(cli_env):
    assert run(cli_env, "--version").stdout.strip() == f"callcore {__version__}"
    for command in (
        [],
        ["serve"],
        ["demo"],
        ["migrate"],
        ["plugins"],
        ["user"],
        ["user", "create"],
        ["db"],
        ["db", "url"],
        ["db", "shell"],
        ["secret-key"],
        ["dialplan"],
        ["dialplan", "render"],
    ):
        result = run(cli_env, *command, "--help")
        assert result.returncode == 0, (command, result.stderr)
        assert "usage: callcore" in result.stdout


def test_missing_command_and_bad_role_are_usage_errors(cli_env):
    assert run(cli_env).returncode == 2
    result = run(cli_env, "user", "create", "--username", "bob", "--role", "boss")
    assert result.returncode == 2
    assert "invalid choice: 'boss'" in result.stderr


def test_migrate_then_status_lists_applied_migrations(cli_env, empty_database_url):
    cli_env["CALLCORE_DATABASE_URL"] = empty_database_url
    pending = run(cli_env, "migrate", "--status")
    assert pending.returncode == 0, pending.stderr
    assert "0001_domain " in pending.stdout and "pending" in pending.stdout
    applied = run(cli_env, "migrate")
    assert applied.returncode == 0, applied.stderr
    assert "0001_domain " in applied.stdout and "pending" not in applied.stdout


async def test_user_create_prints_a_working_password_once_and_audits(cli_env, database_url):
    result = run(cli_env, "user", "create", "--username", "alice", "--role", "supervisor")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1]
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT id, role, password_hash FROM users WHERE username = 'alice'"
        )
        assert row["role"] == "supervisor"
        assert verify_password(row["password_hash"], password)
        audit = await conn.fetchrow("SELECT * FROM audit_log WHERE entity_type = 'user'")
        assert audit["action"] == "create" and audit["entity_id"] == str(row["id"])
        assert password not in json.dumps(audit["after"])
    finally:
        await conn.close()
    again = run(cli_env, "user", "create", "--username", "ALICE", "--role", "agent")
    assert again.returncode == 1
    assert "a user named 'ALICE' already exists" in again.stderr


async def test_user_reset_password_replaces_it_signs_out_and_audits(cli_env, database_url):
    created = run(cli_env, "user", "create", "--username", "root", "--role", "admin")
    first = created.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1]
    result = run(cli_env, "user", "reset-password", "--username", "ROOT")
    assert result.returncode == 0, result.stderr
    password = result.stdout.strip().splitlines()[-1].rsplit(" ", 1)[1]
    assert password != first
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("SELECT id, password_hash FROM users WHERE username = 'root'")
        assert verify_password(row["password_hash"], password)
        assert not verify_password(row["password_hash"], first)
        audit = await conn.fetchrow(
            "SELECT * FROM audit_log WHERE action = 'reset_password' AND entity_id = $1",
            str(row["id"]),
        )
        assert audit["actor_label"] == "system" and password not in json.dumps(audit["after"])
    finally:
        await conn.close()
    nobody = run(cli_env, "user", "reset-password", "--username", "ghost")
    assert nobody.returncode == 1
    assert "there is no user named 'ghost'" in nobody.stderr


def test_plugins_lists_builtins_and_the_example_plugin(cli_env):
    result = run(cli_env, "plugins")
    assert result.returncode == 0, result.stderr
    assert "callcore.plugins.dispositions" in result.stdout
    assert "callcore-example-plugin" in result.stdout
    cli_env["CALLCORE_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    assert "callcore-example-plugin" not in run(cli_env, "plugins").stdout


def test_bad_settings_and_missing_secret_key_are_clear_errors(cli_env):
    bad = run({**cli_env, "CALLCORE_WEB_PORT": "eighty"}, "serve")
    assert bad.returncode == 1
    assert "web.port: expected an integer, got 'eighty'" in bad.stderr
    no_key = {k: v for k, v in cli_env.items() if k != "CALLCORE_SECRET_KEY"}
    result = run(no_key, "serve")
    assert result.returncode == 1
    assert "secret_key is required with an external database_url" in result.stderr


def test_db_url_prints_the_configured_url(cli_env, database_url):
    result = run(cli_env, "db", "url")
    assert result.returncode == 0
    assert result.stdout.strip() == database_url


def test_serve_runs_web_and_fastagi_and_stops_cleanly_on_sigterm(cli_env):
    port = free_port()
    agi_port = int(cli_env["CALLCORE_AGI_PORT"])
    process = subprocess.Popen(
        [*CALLCORE, "serve", "--port", str(port)],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}/healthz", process, 60)
        assert health["healthy"] is True
        assert health["agi"]["address"] == f"127.0.0.1:{agi_port}"
        # The IVR serves every DID; with no flow at all the caller hears the fallback message.
        call = asyncio.run(run_agi_call(("127.0.0.1", agi_port), "inbound/+33123456789"))
        assert call.commands == (("ANSWER",), ("STREAM", "FILE", "ss-noservice", ""), ("HANGUP",))
        unknown = asyncio.run(run_agi_call(("127.0.0.1", agi_port), "nowhere/1"))
        assert unknown.variables["CALLCORE_STATUS"] == "NOROUTE"
        assert unknown.agi_status == "SUCCESS"
    finally:
        code, out, err = stop(process)
    assert code == 0, err
    assert f"serving on http://127.0.0.1:{port}/ (uvloop;" in out


def test_serve_on_a_taken_port_names_it(cli_env):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run(cli_env, "serve", "--port", str(port))
        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
        agi = run({**cli_env, "CALLCORE_AGI_PORT": str(port)}, "serve", "--port", str(free_port()))
    assert agi.returncode == 1
    assert f"cannot listen for FastAGI on 127.0.0.1:{port}" in agi.stderr
    assert "Traceback" not in agi.stderr


def test_demo_runs_on_the_embedded_database_with_no_database_configured():
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCORE_")}
    env.pop("DATABASE_URL", None)
    # Not under pytest's tmp_path: pytest resets it to 0700, locking out the server's account.
    data = Path(tempfile.mkdtemp(prefix="callcore-demo-")) / "data"
    env["CALLCORE_DATA"] = str(data)
    env["CALLCORE_AGI_PORT"] = str(free_port())
    port = free_port()
    process = subprocess.Popen(
        [*CALLCORE, "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        health = wait_for_health(url, process, 120)
        assert health["database"]["embedded"] is True
        assert health["database"]["server_version"].startswith("18")
        # The simulator is the PBX: callcore's AMI client is connected to it, and the first
        # demo caller reaches the FastAGI server and runs the demo flow.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = wait_for_health(url, process, 10)
            if health["ami"][0]["state"] == "ready" and health["agi"]["sessions_total"] >= 1:
                break
            time.sleep(0.2)
        assert health["ami"] == [
            {"id": "sim", "address": health["ami"][0]["address"], "state": "ready"}
        ]
        assert health["agi"]["sessions_total"] >= 1
        assert health["agi"]["refused"] == 0  # every demo DID has a route: the IVR's
    finally:
        code, out, err = stop(process)
    assert code == 0, err
    assert "demo admin account created: admin / " in out
    credentials = Path(data, "demo-credentials.txt")
    assert oct(credentials.stat().st_mode & 0o777) == "0o600"
    assert (data / "secret.key").exists()
    # The embedded server was stopped with the node: no live postmaster is left behind.
    assert not list(data.rglob("postmaster.pid"))
    shutil.rmtree(data.parent, ignore_errors=True)


def test_db_shell_runs_psql_on_the_database(cli_env):
    result = subprocess.run(
        [*CALLCORE, "db", "shell"],
        env=cli_env,
        input="SELECT 'shell-ok:' || (count(*) >= 2) FROM schema_migrations;\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "shell-ok:true" in result.stdout


async def test_db_url_of_the_embedded_database_stays_usable():
    from callcore.db.embedded import EmbeddedPostgres

    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCORE_")}
    env.pop("DATABASE_URL", None)
    data = Path(tempfile.mkdtemp(prefix="callcore-dburl-")) / "data"
    env["CALLCORE_DATA"] = str(data)
    try:
        result = run(env, "db", "url", timeout=120)
        assert result.returncode == 0, result.stderr
        conn = await asyncpg.connect(result.stdout.strip())
        try:
            assert (await conn.fetchval("SHOW server_version")).startswith("18")
        finally:
            await conn.close()
    finally:
        EmbeddedPostgres(data).stop()
        shutil.rmtree(data.parent, ignore_errors=True)
