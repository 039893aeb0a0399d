"""The callcore.testing fixtures, used as a plugin author would use them."""

import asyncio
import json
import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

import asyncpg
import pytest
from cryptography.fernet import Fernet

from callcore.db.pool import create_pool
from callcore.errors import DatabaseError
from callcore.testing import TEST_DATABASE_URL_ENV, _Clones


@pytest.mark.parametrize("attempt", ["first", "second"])
async def test_each_test_gets_its_own_migrated_database(database_url, attempt):
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") > 0
        # Fails in whichever test runs second if the two shared a database.
        await conn.execute("CREATE TABLE scratch (id integer PRIMARY KEY, written_by text)")
        await conn.execute("INSERT INTO scratch VALUES (1, $1)", attempt)
        rows = await conn.fetch("SELECT written_by FROM scratch")
        assert [row["written_by"] for row in rows] == [attempt]
    finally:
        await conn.close()


async def test_empty_database_has_no_tables(empty_database_url, database_url):
    assert empty_database_url != database_url
    conn = await asyncpg.connect(empty_database_url)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        )
        assert tables == []
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()


async def test_db_pool_round_trips_json_and_jsonb_as_python_objects(db_pool):
    document = {"name": "Zoé", "tags": ["vip", "fr"], "nested": {"calls": 3, "ok": True}}
    async with db_pool.acquire() as conn:
        await conn.execute("CREATE TABLE docs (body jsonb NOT NULL, raw json NOT NULL)")
        await conn.execute("INSERT INTO docs VALUES ($1, $2)", document, document)
        row = await conn.fetchrow("SELECT body, raw, body->'nested'->>'calls' AS calls FROM docs")
    assert row["body"] == document
    assert row["raw"] == document
    assert row["calls"] == "3"


async def test_an_unreachable_server_is_named_without_its_password():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe is closed
    with pytest.raises(DatabaseError) as failure:
        await create_pool(f"postgresql://callcore:hunter2@127.0.0.1:{port}/calls")
    assert f"127.0.0.1:{port}/calls" in str(failure.value)
    assert "hunter2" not in str(failure.value)


def test_callcore_settings_point_at_the_test_database(callcore_settings, database_url):
    assert callcore_settings.database_url.value == database_url
    assert callcore_settings.data_dir.is_dir()
    token = Fernet(callcore_settings.secret_key.value).encrypt(b"trunk password")
    assert Fernet(callcore_settings.secret_key.value).decrypt(token) == b"trunk password"


INNER_TESTS = """
import asyncio, json, os
from pathlib import Path

import asyncpg


async def names_on_server(url):
    conn = await asyncpg.connect(url)
    try:
        pattern = f"callcore\\\\_%\\\\_{os.getpid()}\\\\_%"
        rows = await conn.fetch("SELECT datname FROM pg_database WHERE datname LIKE $1", pattern)
        return sorted(row["datname"] for row in rows)
    finally:
        await conn.close()


def test_records_its_databases(database_url, empty_database_url):
    seen = asyncio.run(names_on_server(database_url))
    record = Path(os.environ["RECORD_DIR"]) / f"{os.getpid()}.json"
    record.write_text(json.dumps({"urls": [database_url, empty_database_url], "seen": seen}))
"""


def databases_of(server_url, pid):
    async def fetch():
        conn = await asyncpg.connect(server_url)
        try:
            rows = await conn.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE $1", f"callcore\\_%\\_{pid}\\_%"
            )
            return [row["datname"] for row in rows]
        finally:
            await conn.close()

    return asyncio.run(fetch())


def test_concurrent_runs_on_one_server_clean_up_after_themselves(callcore_server_url, tmp_path):
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    env = dict(os.environ, RECORD_DIR=str(tmp_path), **{TEST_DATABASE_URL_ENV: callcore_server_url})
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    for run in runs:
        output, _ = run.communicate(timeout=120)
        assert run.returncode == 0, output

    records = [json.loads((tmp_path / f"{run.pid}.json").read_text()) for run in runs]
    for run, record in zip(runs, records, strict=True):
        # While its test ran, each session had its template, an empty database and migrated
        # ones: the test's, and the clones made ahead for the tests after it...
        kinds = [name.split("_")[1] for name in record["seen"]]
        assert kinds[:2] == ["empty", "template"] and set(kinds[2:]) == {"test"}, kinds
        assert 1 <= len(kinds[2:]) <= 1 + _Clones.AHEAD
        # ...and left none of them behind.
        assert databases_of(callcore_server_url, run.pid) == []
    names = {urlsplit(url).path for record in records for url in record["urls"]}
    assert len(names) == 4, records
