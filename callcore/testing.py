"""pytest fixtures for callcore and its plugins: a fresh PostgreSQL database for every test.

Loaded automatically wherever callcore is installed (``pytest11`` entry point ``callcore``;
``-p no:callcore`` turns it off). Nothing starts until a test asks for a fixture.

The server comes from ``CALLCORE_TEST_DATABASE_URL`` (a superuser or ``CREATEDB`` role; its
database is only used to create and drop others), or, when it is unset, from an embedded
PostgreSQL started in a temporary directory for the session. Each session migrates one template
database; each test gets a clone of it (``CREATE DATABASE … TEMPLATE``, far faster than
migrating), dropped after the test. Clones are made ahead and dropped behind by background
threads, so a test waits for neither (each costs ~0.5 s of the server's time); what is left at
the end of the session is dropped then. Names carry the PID and a random suffix, so concurrent
runs against the same server never collide.

Fixtures:

- ``database_url``: a fresh, migrated, empty database for this test.
- ``empty_database_url``: a fresh database with no migrations applied.
- ``db_pool``: an asyncpg pool on ``database_url`` (json/jsonb as Python objects); needs
  pytest-asyncio.
- ``callcore_settings``: ``Settings`` on ``database_url`` with a temporary data directory and
  the fixed, public ``TEST_SECRET_KEY``.
- ``callcore_server_url``: the server itself (session-wide), for tests that manage databases.

Telephony fixtures (from :mod:`callcore.sim.fixtures`, see docs/simulator.md):

- ``sim_clock``: a 50× :class:`~callcore.clock.ScaledClock` shared by simulator and engine.
- ``simulator``: a running PBX simulator (AMI server on loopback, seeded).
- ``ami_replay``: a factory replaying a captured AMI transcript as a server.
- ``fake_agi_peer``: drives one simulated call through an AGI handler.
- ``ivr_call``: drives one simulated call through an IVR flow graph (no database needed).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from callcore.config import AgiSettings, Secret, Settings
from callcore.db.embedded import EmbeddedPostgres
from callcore.db.migrate import apply_migrations
from callcore.db.pool import connect, create_pool, with_database
from callcore.sim.fixtures import ami_replay, fake_agi_peer, ivr_call, sim_clock, simulator

__all__ = [
    "TEST_SECRET_KEY",
    "ami_replay",
    "callcore_server_url",
    "callcore_settings",
    "database_url",
    "db_pool",
    "empty_database_url",
    "fake_agi_peer",
    "ivr_call",
    "sim_clock",
    "simulator",
]

try:
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # pragma: no cover - db_pool then reports that no async plugin handles it
    async_fixture = pytest.fixture

TEST_DATABASE_URL_ENV = "CALLCORE_TEST_DATABASE_URL"

TEST_SECRET_KEY = base64.urlsafe_b64encode(b"callcore-test-key-not-a-secret!!").decode("ascii")
"""A valid Fernet key, public on purpose: tests need a known key, never real secrecy."""

# UTF-8 and the C locale whatever the server's defaults, so results don't vary between servers.
_PRISTINE = "TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER libc LOCALE 'C'"


def _run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run admin SQL in a private thread and loop, so it works whatever loop the test uses."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, coroutine).result()


async def _execute(url: str, statement: str) -> None:
    conn = await connect(url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    conn = await connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()


def _new_name(kind: str) -> str:
    return f"callcore_{kind}_{os.getpid()}_{secrets.token_hex(4)}"


def _create(server_url: str, name: str, options: str) -> str:
    _run(_execute(server_url, f"CREATE DATABASE {name} {options}"))
    return name


def _drop(server_url: str, name: str) -> None:
    # FORCE ends the connections a test left open, which would otherwise block the drop.
    _run(_execute(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@contextlib.contextmanager
def _throwaway_database(server_url: str, kind: str, options: str) -> Iterator[str]:
    """Create a uniquely named database, yield its name, and drop it whatever happens."""
    name = _create(server_url, _new_name(kind), options)
    try:
        yield name
    finally:
        _drop(server_url, name)


class _Clones:
    """Clones of the template made ahead of the tests that take them, and dropped behind them,
    by :data:`WORKERS` threads: creating and dropping a database is the server's work, which
    then overlaps the tests instead of adding to each."""

    WORKERS = 2
    AHEAD = 2

    def __init__(self, server_url: str, template: str) -> None:
        self._server_url = server_url
        self._options = f"TEMPLATE {template}"
        self._workers = ThreadPoolExecutor(self.WORKERS, thread_name_prefix="callcore-clones")
        self._ready: deque[Future[str]] = deque()
        self._drops: list[Future[None]] = []

    def _make(self) -> None:
        name = _new_name("test")
        self._ready.append(self._workers.submit(_create, self._server_url, name, self._options))

    def take(self) -> str:
        """A fresh clone (a failure to make it raises here, in the test that needed it)."""
        while len(self._ready) <= self.AHEAD:
            self._make()
        return self._ready.popleft().result()

    def give_back(self, name: str) -> None:
        self._drops.append(self._workers.submit(_drop, self._server_url, name))

    def close(self) -> None:
        """Drop what was made ahead and wait for every drop; a drop that failed raises."""
        for future in self._ready:
            if not future.cancel() and future.exception() is None:  # a failed one made none
                self.give_back(future.result())
        self._ready.clear()
        wait(self._drops)
        self._workers.shutdown()
        for drop in self._drops:
            drop.result()


@pytest.fixture(scope="session")
def callcore_server_url() -> Iterator[str]:
    """The test server: ``CALLCORE_TEST_DATABASE_URL``, or an embedded one for this session."""
    external = os.environ.get(TEST_DATABASE_URL_ENV)
    if external:
        yield external
        return
    # Not under pytest's basetemp: every pytest run resets /tmp/pytest-of-<user> to mode 0700,
    # which would lock the server's own account out of its data when callcore runs as root.
    data_dir = Path(tempfile.mkdtemp(prefix="callcore-test-postgres-"))
    try:
        with EmbeddedPostgres(data_dir) as url:
            yield url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def _callcore_template_database(callcore_server_url: str) -> Iterator[str]:
    """One migrated database per session, cloned by every test that needs the schema."""
    with _throwaway_database(callcore_server_url, "template", _PRISTINE) as name:
        _run(_migrate(with_database(callcore_server_url, name)))
        # A connection to the template would make every clone fail; now none can be opened.
        _run(_execute(callcore_server_url, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        yield name


@pytest.fixture(scope="session")
def _callcore_clones(
    callcore_server_url: str, _callcore_template_database: str
) -> Iterator[_Clones]:
    clones = _Clones(callcore_server_url, _callcore_template_database)
    try:
        yield clones
    finally:
        clones.close()


@pytest.fixture
def database_url(callcore_server_url: str, _callcore_clones: _Clones) -> Iterator[str]:
    """URL of a fresh, fully migrated, empty database for this test, dropped afterwards."""
    name = _callcore_clones.take()
    try:
        yield with_database(callcore_server_url, name)
    finally:
        _callcore_clones.give_back(name)


@pytest.fixture
def empty_database_url(callcore_server_url: str) -> Iterator[str]:
    """URL of a fresh database with no migrations applied, dropped afterwards."""
    with _throwaway_database(callcore_server_url, "empty", _PRISTINE) as name:
        yield with_database(callcore_server_url, name)


@async_fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on ``database_url``, closed after the test."""
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
def callcore_settings(database_url: str, tmp_path: Path) -> Settings:
    """Settings for a node on ``database_url``, with its own data directory and a fixed key.

    The FastAGI server is off, so tests never compete for port 4573; a test that wants it
    enables it with ``attrs.evolve`` and passes ``agi_port=0`` to ``open_runtime``.
    """
    data_dir = tmp_path / "callcore-data"
    data_dir.mkdir()
    return Settings(
        data_dir=data_dir,
        database_url=Secret(database_url),
        secret_key=Secret(TEST_SECRET_KEY),
        agi=AgiSettings(enabled=False),
    )
