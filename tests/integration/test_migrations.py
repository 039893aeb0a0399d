"""The migration runner and the domain schema, against a real, initially empty PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import asyncpg
import pytest

from callcore.db.migrate import apply_migrations, list_migrations, migration_status
from callcore.errors import MigrationError

SCHEMA_DOC = Path(__file__).parents[2] / "docs" / "schema.md"

EXPECTED_TABLES = {
    "agent_pauses",
    "agent_sessions",
    "alert_channels",
    "alert_events",
    "alert_rule_channels",
    "alert_rules",
    "audit_log",
    "backups",
    "caller_id_numbers",
    "calls",
    "campaign_caller_ids",
    "campaign_disposition_groups",
    "campaign_dnc_lists",
    "campaign_groups",
    "campaign_users",
    "campaigns",
    "consent_records",
    "contact_lists",
    "dids",
    "disposition_groups",
    "dispositions",
    "dnc_entries",
    "dnc_lists",
    "flow_versions",
    "flows",
    "group_members",
    "groups",
    "leads",
    "number_attempts",
    "pause_codes",
    "phone_assignments",
    "phones",
    "public_holidays",
    "qa_evaluations",
    "qa_scorecards",
    "queue_members",
    "queues",
    "recordings",
    "refusals",
    "schema_migrations",
    "script_versions",
    "scripts",
    "settings",
    "shifts",
    "sip_trunks",
    "users",
    "voicemail_boxes",
}


@pytest.fixture
async def conn(empty_database_url: str):
    connection = await asyncpg.connect(empty_database_url)
    yield connection
    await connection.close()


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


def _write(folder: Path, files: dict[str, str]) -> Path:
    for name, sql in files.items():
        (folder / name).write_text(sql, encoding="utf-8")
    return folder


async def test_migrating_an_empty_database_creates_the_whole_domain(conn):
    names = [migration.name for migration in list_migrations()]
    assert names[0] == "0001_domain"

    assert await apply_migrations(conn) == names

    assert EXPECTED_TABLES <= await _tables(conn)
    recorded = await conn.fetch("SELECT number, name, checksum FROM schema_migrations")
    assert {(row["number"], row["name"], row["checksum"]) for row in recorded} == {
        (migration.number, migration.name, migration.checksum) for migration in list_migrations()
    }


async def test_running_again_applies_nothing(conn):
    await apply_migrations(conn)
    before = await conn.fetch("SELECT number, applied_at FROM schema_migrations ORDER BY number")

    assert await apply_migrations(conn) == []
    assert await conn.fetch("SELECT number, applied_at FROM schema_migrations ORDER BY number") == (
        before
    )


async def test_two_concurrent_runners_apply_each_migration_once(empty_database_url, caplog):
    first = await asyncpg.connect(empty_database_url)
    second = await asyncpg.connect(empty_database_url)
    try:
        with caplog.at_level(logging.INFO, logger="callcore.db.migrate"):
            results = await asyncio.gather(apply_migrations(first), apply_migrations(second))
        names = [migration.name for migration in list_migrations()]
        assert sorted(results, key=len) == [[], names]
        assert "another process is migrating" in caplog.text
        counts = await first.fetch(
            "SELECT number, count(*) AS n FROM schema_migrations GROUP BY number"
        )
        assert {row["number"]: row["n"] for row in counts} == {
            migration.number: 1 for migration in list_migrations()
        }
    finally:
        await first.close()
        await second.close()


async def test_an_edited_applied_migration_is_refused_and_nothing_else_runs(conn, tmp_path):
    _write(tmp_path, {"0001_first.sql": "CREATE TABLE first (id int);"})
    original = list_migrations(tmp_path)
    await apply_migrations(conn, original)
    _write(
        tmp_path,
        {
            "0001_first.sql": "CREATE TABLE first (id bigint);",
            "0002_second.sql": "CREATE TABLE second (id int);",
        },
    )
    edited = list_migrations(tmp_path)

    with pytest.raises(MigrationError) as caught:
        await apply_migrations(conn, edited)

    message = str(caught.value)
    assert "0001_first.sql" in message
    assert "edited" in message
    assert original[0].checksum[:12] in message
    assert edited[0].checksum[:12] in message
    assert "second" not in await _tables(conn)


async def test_a_broken_migration_leaves_no_trace(conn, tmp_path):
    _write(
        tmp_path,
        {
            "0001_good.sql": "CREATE TABLE good (id int);",
            "0002_broken.sql": (
                "CREATE TABLE half (id int);\n"
                "INSERT INTO half VALUES (1);\n"
                "ALTER TABLE no_such_table ADD COLUMN x int;\n"
            ),
        },
    )

    with pytest.raises(MigrationError) as caught:
        await apply_migrations(conn, list_migrations(tmp_path))

    message = str(caught.value)
    assert "0002_broken.sql" in message
    assert 'relation "no_such_table" does not exist' in message
    tables = await _tables(conn)
    assert "good" in tables
    assert "half" not in tables
    assert await conn.fetchval("SELECT array_agg(name) FROM schema_migrations") == ["0001_good"]


async def test_a_syntax_error_is_reported_with_its_line(conn, tmp_path):
    _write(tmp_path, {"0001_typo.sql": "CREATE TABLE ok (id int);\nCREATE TABLEE oops (id int);\n"})

    with pytest.raises(MigrationError, match=r"0001_typo\.sql failed at line 2: .*syntax error"):
        await apply_migrations(conn, list_migrations(tmp_path))

    assert "ok" not in await _tables(conn)


@pytest.mark.parametrize(
    "name",
    ["1_short.sql", "0001-dash.sql", "0001_Upper.sql", "0000_zero.sql", "0001_.sql", "00001_x.sql"],
)
def test_badly_named_migration_files_are_refused(tmp_path, name):
    _write(tmp_path, {"0001_fine.sql": "SELECT 1;", name: "SELECT 1;"})

    with pytest.raises(MigrationError, match=re.escape(repr(name))):
        list_migrations(tmp_path)


def test_two_files_with_one_number_are_refused(tmp_path):
    _write(tmp_path, {"0002_alpha.sql": "SELECT 1;", "0002_beta.sql": "SELECT 2;"})

    with pytest.raises(MigrationError, match=r"0002_alpha\.sql and 0002_beta\.sql share number"):
        list_migrations(tmp_path)


def test_only_sql_files_count_and_they_come_in_number_order(tmp_path):
    _write(
        tmp_path,
        {"0010_later.sql": "SELECT 10;", "0002_early.sql": "SELECT 2;", "README.md": "notes"},
    )

    assert [(m.number, m.name) for m in list_migrations(tmp_path)] == [
        (2, "0002_early"),
        (10, "0010_later"),
    ]


async def test_a_vanished_migration_is_refused_a_newer_one_tolerated(conn, tmp_path):
    _write(
        tmp_path,
        {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;", "0003_c.sql": "SELECT 3;"},
    )
    everything = list_migrations(tmp_path)
    await apply_migrations(conn, everything)

    assert await apply_migrations(conn, everything[:2]) == []  # 0003 came from a newer callcore
    with pytest.raises(MigrationError, match=r"0002_b\.sql is recorded as applied but its file"):
        await apply_migrations(conn, [everything[0], everything[2]])


async def test_status_tells_pending_from_applied(conn, tmp_path):
    _write(tmp_path, {"0001_a.sql": "SELECT 1;", "0002_b.sql": "SELECT 2;"})
    migrations = list_migrations(tmp_path)

    assert [when for _, when in await migration_status(conn, migrations)] == [None, None]
    await apply_migrations(conn, migrations[:1])
    status = await migration_status(conn, migrations)

    assert [migration.name for migration, _ in status] == ["0001_a", "0002_b"]
    assert status[0][1] is not None
    assert status[1][1] is None


# --- the domain schema enforces its rules -------------------------------------------------


@pytest.fixture
async def domain(conn):
    await apply_migrations(conn)
    return conn


_USER = "INSERT INTO users (username, role, password_hash) VALUES ('ann', 'agent', 'h')"
_FLOW = (
    "INSERT INTO flows (name) VALUES ('main');"
    "INSERT INTO flow_versions (flow_id, version_number, status, published_at)"
    " SELECT id, 1, 'published', now() FROM flows"
)
_LIST = "INSERT INTO contact_lists (name) VALUES ('list')"


@pytest.mark.parametrize(
    ("setup", "bad", "error"),
    [
        pytest.param(
            "",
            "INSERT INTO users (username, role, password_hash) VALUES ('bob', 'root', 'h')",
            asyncpg.CheckViolationError,
            id="unknown role",
        ),
        pytest.param(
            _USER,
            "INSERT INTO users (username, role, password_hash) VALUES ('ANN', 'admin', 'h')",
            asyncpg.UniqueViolationError,
            id="username differing only in case",
        ),
        pytest.param(
            _LIST,
            "INSERT INTO leads (list_id, phone_number) SELECT id, '0612345678' FROM contact_lists",
            asyncpg.CheckViolationError,
            id="lead number not E.164",
        ),
        pytest.param(
            _LIST,
            "INSERT INTO leads (list_id, phone_number) SELECT id, '+0612345678' FROM contact_lists",
            asyncpg.CheckViolationError,
            id="E.164 country code starting with 0",
        ),
        pytest.param(
            _LIST,
            "INSERT INTO leads (list_id, phone_number, timezone)"
            " SELECT id, '+33612345678', 'Mars/Olympus' FROM contact_lists",
            asyncpg.CheckViolationError,
            id="unknown lead time zone",
        ),
        pytest.param(
            _FLOW,
            "INSERT INTO flow_versions (flow_id, version_number, status, published_at)"
            " SELECT id, 2, 'published', now() FROM flows",
            asyncpg.UniqueViolationError,
            id="two published versions of one flow",
        ),
        pytest.param(
            "",
            "INSERT INTO campaigns (name, dial_mode) VALUES ('c', 'telepathic')",
            asyncpg.CheckViolationError,
            id="unknown dial mode",
        ),
        pytest.param(
            "",
            "INSERT INTO campaigns (name, calling_hours_start, calling_hours_end)"
            " VALUES ('c', '20:00', '10:00')",
            asyncpg.CheckViolationError,
            id="calling hours inverted",
        ),
        pytest.param(
            "",
            "INSERT INTO campaigns (name, status) VALUES ('c', 'active')",
            asyncpg.CheckViolationError,
            id="active campaign with a fixed caller ID but no number",
        ),
        pytest.param(
            "",
            "INSERT INTO sip_trunks (name, host, allowed_prefixes) VALUES ('t', 'h', '{33}')",
            asyncpg.CheckViolationError,
            id="trunk prefix without plus",
        ),
        pytest.param(
            "",
            "INSERT INTO dispositions (group_id, code) VALUES (1, 'x')",
            asyncpg.ForeignKeyViolationError,
            id="disposition without its group",
        ),
        pytest.param(
            "INSERT INTO calls (server_id, uniqueid, direction, started_at)"
            " VALUES ('pbx1', '1700000000.1', 'inbound', now())",
            "INSERT INTO calls (server_id, uniqueid, direction, started_at)"
            " VALUES ('pbx1', '1700000000.1', 'outbound', now())",
            asyncpg.UniqueViolationError,
            id="one leg recorded twice",
        ),
        pytest.param(
            "INSERT INTO consent_records (phone_number, consented_at, channel, scope,"
            " proof_reference) VALUES ('+33612345678', now(), 'web_form', 'acme', 'form-1')",
            "UPDATE consent_records SET scope = 'everything'",
            asyncpg.IntegrityConstraintViolationError,
            id="rewriting a consent record",
        ),
    ],
)
async def test_constraints_reject_bad_rows(domain, setup, bad, error):
    if setup:
        await domain.execute(setup)

    with pytest.raises(error):
        await domain.execute(bad)


async def test_changed_rows_get_a_new_version_and_unchanged_ones_do_not(domain):
    user = await domain.fetchrow(f"{_USER} RETURNING id, version, updated_at")
    assert user["version"] == 1
    await domain.execute("SELECT pg_sleep(0.01)")

    changed = await domain.fetchrow(
        "UPDATE users SET display_name = 'Ann' WHERE id = $1 RETURNING version, updated_at",
        user["id"],
    )
    unchanged = await domain.fetchval(
        "UPDATE users SET display_name = 'Ann' WHERE id = $1 RETURNING version", user["id"]
    )
    explicit = await domain.fetchval(
        "UPDATE users SET display_name = 'A.', version = version + 1 WHERE id = $1"
        " RETURNING version",
        user["id"],
    )

    assert changed["version"] == 2
    assert changed["updated_at"] > user["updated_at"]
    assert unchanged == 2
    assert explicit == 3


async def test_revoking_a_consent_is_allowed_once(domain):
    consent_id = await domain.fetchval(
        "INSERT INTO consent_records (phone_number, consented_at, channel, scope, proof_reference)"
        " VALUES ('+33612345678', now() - interval '1 day', 'phone', 'acme', 'rec-7') RETURNING id"
    )
    revoke = "UPDATE consent_records SET revoked_at = now(), revocation_channel = $2 WHERE id = $1"

    await domain.execute(revoke, consent_id, "phone")
    with pytest.raises(asyncpg.IntegrityConstraintViolationError, match="consent record"):
        await domain.execute(revoke, consent_id, "email")


async def test_every_table_is_described_in_the_schema_doc(domain):
    documented = set(re.findall(r"^- `([a-z_]+)`", SCHEMA_DOC.read_text("utf-8"), re.MULTILINE))

    assert await _tables(domain) == documented
