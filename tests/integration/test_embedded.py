"""The embedded PostgreSQL: real initdb, real server processes, each test in its own data dir."""

import asyncio
import getpass
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import psutil
import pytest

from callcore.db.embedded import SERVER_ACCOUNT, EmbeddedPostgres
from callcore.errors import DatabaseError


def query(url, sql):
    async def run():
        conn = await asyncpg.connect(url)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def postmaster_pid(server):
    return int((server.pgdata / "postmaster.pid").read_text().splitlines()[0])


def cluster_processes(server):
    found = []
    for process in psutil.process_iter(["name"]):
        try:
            if process.info["name"] == "postgres" and process.cwd() == str(server.pgdata):
                found.append(process)
        except psutil.Error:
            continue
    return found


def wait_until_dead(process):
    """Gone or a zombie: an orphaned postmaster may wait for PID 1 to reap it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {process.pid} is still running")


@pytest.fixture
def data_dir():
    """A private data dir outside pytest's basetemp, which each pytest run resets to mode 0700
    (locking the server's account out when running as root)."""
    path = Path(tempfile.mkdtemp(prefix="callcore-embedded-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def embedded(data_dir):
    """Makes EmbeddedPostgres objects and leaves no server behind, even when a test fails."""
    made = []

    def make(where=data_dir):
        made.append(EmbeddedPostgres(where))
        return made[-1]

    yield make
    for server in made:
        server.stop()
        for process in cluster_processes(server):
            process.terminate()


def test_restart_reuses_the_cluster_and_its_data(embedded):
    server = embedded()
    url = server.start()
    assert query(url, "SHOW server_version_num").startswith("18")
    assert "PostgreSQL 18" in query(url, "SELECT version()")
    assert query(url, "SHOW listen_addresses") == "127.0.0.1"
    owner = SERVER_ACCOUNT if os.geteuid() == 0 else getpass.getuser()
    assert psutil.Process(postmaster_pid(server)).username() == owner
    query(url, "CREATE TABLE kept (note text)")
    query(url, "INSERT INTO kept VALUES ('still here')")
    cluster_created = (server.pgdata / "PG_VERSION").stat().st_ino
    port = query(url, "SHOW port")
    server.stop()
    assert cluster_processes(server) == []

    with embedded() as url_again:
        assert query(url_again, "SELECT note FROM kept") == "still here"
        assert query(url_again, "SHOW port") == port
    assert (server.pgdata / "PG_VERSION").stat().st_ino == cluster_created
    assert cluster_processes(server) == []


def test_concurrent_starts_share_one_server_until_the_last_one_stops(embedded, data_dir):
    # Long enough that the socket cannot live in the data dir: the /tmp fallback is used.
    long_dir = data_dir / ("d" * 90)
    first, second = embedded(long_dir), embedded(long_dir)
    with ThreadPoolExecutor(max_workers=2) as pool:
        urls = list(pool.map(lambda server: server.start(), (first, second)))
    assert urls[0] == urls[1]
    assert "host=/tmp/callcore-pg-" in urls[0]
    pid = postmaster_pid(first)
    assert query(urls[0], "SELECT pg_backend_pid() > 0")

    first.stop()
    assert postmaster_pid(second) == pid
    assert query(urls[1], "SELECT 1") == 1
    second.stop()
    assert cluster_processes(second) == []
    socket_dir = Path(urls[0].partition("host=")[2].partition("&")[0])
    assert not socket_dir.exists()


def test_stale_postmaster_pid_after_a_crash_is_recovered(embedded, data_dir):
    # A callcore process starts the server and exits without stopping it (as `db url` does)...
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from callcore.db.embedded import EmbeddedPostgres; "
            "EmbeddedPostgres(sys.argv[1]).start()",
            str(data_dir),
        ],
        check=True,
    )
    server = embedded()
    crashed = psutil.Process(postmaster_pid(server))
    # ...then the server is killed, and its PID now names a live process that is not PostgreSQL.
    crashed.send_signal(signal.SIGKILL)
    wait_until_dead(crashed)
    pid_file = server.pgdata / "postmaster.pid"
    lines = pid_file.read_text().splitlines()
    pid_file.write_text("\n".join([str(os.getppid()), *lines[1:]]) + "\n")

    with server as url:
        assert query(url, "SELECT 1") == 1
        assert postmaster_pid(server) not in (crashed.pid, os.getppid())
    assert cluster_processes(server) == []


def test_an_unstartable_cluster_is_reported_with_the_server_log(embedded):
    with embedded():
        pass
    server = embedded()
    with (server.pgdata / "postgresql.conf").open("a") as conf:
        conf.write("shared_buffers = 'plenty'\n")

    with pytest.raises(DatabaseError) as failure:
        server.start()
    message = str(failure.value)
    assert "failed to start" in message
    assert '"shared_buffers"' in message
    assert "plenty" in message
    assert cluster_processes(server) == []
