"""Dialplan generation: golden files from a realistic data set, hostile values, secrets, the CLI.

Set CALLCORE_UPDATE_GOLDEN=1 to rewrite tests/golden/dialplan/ from the current templates, then
review the diff before committing it.
"""

import logging
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from callcore.config import AmiServerSettings, Secret
from callcore.crypto import SecretCipher
from callcore.dialplan import render
from callcore.dialplan.render import FILES, render_dialplan, write_dialplan
from callcore.errors import ConfigError, ValidationError
from callcore.testing import TEST_SECRET_KEY

CLI = [sys.executable, "-m", "callcore.cli"]
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "dialplan"
CIPHER = SecretCipher(Fernet(TEST_SECRET_KEY))
AMI = AmiServerSettings(id="pbx1", username="callcore", secret=Secret("ami-s3cret;x"))
SECRETS = {
    "trunk": "tr@nk-pass;word",
    "alice": "alice-phone-pw",
    "bob": "bob-phone-pw",
    "carol": "carol-webrtc-pw",
    "pin_alice": "4321",
    "pin_support": "987654",
}


async def insert_data_set(conn):
    """2 trunks (+1 disabled), 3 DIDs, 2 queues with members, 3 phones, 2 mailboxes."""
    enc = CIPHER.encrypt
    users = {
        name: await conn.fetchval(
            "INSERT INTO users (username, role, password_hash) VALUES ($1, 'agent', 'x') "
            "RETURNING id",
            name,
        )
        for name in ("alice", "bob", "carol", "dave")
    }
    trunk_a = await conn.fetchval(
        """INSERT INTO sip_trunks (name, label, host, username, password_encrypted, register,
               from_user, from_domain, match_addresses, allowed_prefixes, max_concurrent_calls)
           VALUES ('carrier-a', 'Carrier A; France', 'sip.carrier-a.example', 'callcore-fr', $1,
               true, '33170000000', 'carrier-a.example', '{192.0.2.0/28}', '{+33,+32,+33}', 30)
           RETURNING id""",
        enc(SECRETS["trunk"]),
    )
    trunk_b = await conn.fetchval(
        """INSERT INTO sip_trunks (name, label, host, port, transport, match_addresses, codecs,
               number_format, dial_prefix, allowed_prefixes, max_concurrent_calls)
           VALUES ('carrier-b', 'Carrier B (UK)', '198.51.100.7', 5061, 'tls',
               '{198.51.100.7/32,198.51.100.8}', '{g722,alaw}', 'e164_no_plus', '0099',
               '{+447,+4420}', 4)
           RETURNING id"""
    )
    await conn.execute(
        "INSERT INTO sip_trunks (name, host, enabled, allowed_prefixes) "
        "VALUES ('old-carrier', 'old.example', false, '{+}')"
    )
    welcome = await conn.fetchval("INSERT INTO flows (name) VALUES ('Accueil') RETURNING id")
    overflow = await conn.fetchval(
        "INSERT INTO flows (name) VALUES ('Débordement ventes') RETURNING id"
    )
    await conn.executemany(
        "INSERT INTO dids (number, trunk_id, flow_id) VALUES ($1, $2, $3)",
        [
            ("+33170000001", trunk_a, welcome),
            ("+33170000002", trunk_a, None),
            ("+442071234567", trunk_b, welcome),
        ],
    )
    phones = {}
    for user, endpoint, extension, webrtc, transport in (
        ("alice", "agent-alice", "101", False, "udp"),
        ("bob", "agent-bob", "102", False, "tcp"),
        ("carol", "webrtc-carol", None, True, "wss"),
    ):
        phones[user] = await conn.fetchval(
            """INSERT INTO phones (endpoint, label, extension, password_encrypted, transport,
                   webrtc, max_contacts)
               VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id""",
            endpoint,
            f"Desk of {user}",
            extension,
            enc(SECRETS[user]),
            transport,
            webrtc,
            3 if webrtc else 1,
        )
        await conn.execute(
            "INSERT INTO phone_assignments (phone_id, user_id) VALUES ($1, $2)",
            phones[user],
            users[user],
        )
    sales = await conn.fetchval(
        """INSERT INTO queues (name, label, strategy, max_wait_seconds, overflow_flow_id,
               announce_position, announce_holdtime)
           VALUES ('sales', 'Ventes', 'rrmemory', 300, $1, true, true) RETURNING id""",
        overflow,
    )
    support = await conn.fetchval(
        """INSERT INTO queues (name, label, strategy, member_timeout_seconds, wrapup_seconds,
               periodic_announce, periodic_announce_frequency)
           VALUES ('support', 'Support N1', 'ringall', 20, 30,
                   'queue-periodic-announce&custom/promo-spring', 45) RETURNING id"""
    )
    await conn.executemany(
        "INSERT INTO queue_members (queue_id, user_id, penalty) VALUES ($1, $2, $3)",
        [
            (sales, users["alice"], 0),
            (sales, users["bob"], 2),
            (support, users["carol"], 0),
            (support, users["dave"], 1),
        ],
    )
    await conn.execute(
        """INSERT INTO voicemail_boxes (mailbox, name, email, pin_encrypted, user_id)
           VALUES ('101', 'Alice Martin', 'alice@example.com', $1, $2)""",
        enc(SECRETS["pin_alice"]),
        users["alice"],
    )
    await conn.execute(
        """INSERT INTO voicemail_boxes (context, mailbox, name, pin_encrypted, queue_id,
               attach_audio, max_message_seconds)
           VALUES ('support', '200', 'Support; messages', $1, $2, false, 120)""",
        enc(SECRETS["pin_support"]),
        support,
    )
    return {"trunk_a": trunk_a, "trunk_b": trunk_b, "phones": phones, "users": users}


async def render_all(conn, **overrides):
    options = {"agi_host": "127.0.0.1", "agi_port": 4573, "ami_settings": AMI} | overrides
    return await render_dialplan(conn, CIPHER, **options)


async def test_rendered_files_match_the_golden_files(db_pool):
    async with db_pool.acquire() as conn:
        await insert_data_set(conn)
        files = await render_all(conn)
    assert sorted(files) == sorted(FILES)
    if os.environ.get("CALLCORE_UPDATE_GOLDEN") == "1":
        write_dialplan(GOLDEN, files)
    mismatched = [n for n in FILES if (GOLDEN / n).read_text(encoding="utf-8") != files[n]]
    assert not mismatched, f"rendered files differ from {GOLDEN}: {mismatched}"


async def test_output_is_deterministic_and_carries_the_header(db_pool):
    async with db_pool.acquire() as conn:
        await insert_data_set(conn)
        first = await render_all(conn)
        second = await render_all(conn)
    assert first == second
    for content in first.values():
        assert content.startswith("; Generated by callcore")
        assert "do not edit" in content.splitlines()[0]


async def test_dialplan_routes_calls_as_specified(db_pool):
    async with db_pool.acquire() as conn:
        await insert_data_set(conn)
        files = await render_all(conn, agi_host="10.0.0.5", agi_port=4599)
    ext = files["extensions.conf"]
    inbound = context(ext, "callcore-inbound")
    for number in ("+33170000001", "+33170000002", "442071234567", "_[+0-9]."):
        assert f"exten => {number},1," in inbound
    assert inbound.count("AGI(agi://10.0.0.5:4599/inbound/${EXTEN})") == 3
    assert "AGI(agi://10.0.0.5:4599/inbound/+${EXTEN})" in inbound  # trunk sends no +
    after = context(ext, "callcore-after-agi")
    for status in ("OVERLOAD", "NOROUTE", "ERROR"):
        assert f'"${{CALLCORE_STATUS}}" = "{status}"]?callcore-fallback,s,1' in after
    assert "Playback(all-circuits-busy-now&pls-try-call-later)" in context(ext, "callcore-fallback")
    assert "Queue(sales,,,,300)" in context(ext, "callcore-queues")

    outbound_a = context(ext, "callcore-outbound-carrier-a")
    assert extensions(outbound_a) == ["_+32X.", "_+33X."]  # duplicates dropped, sorted
    assert "Dial(PJSIP/${EXTEN}@carrier-a)" in outbound_a
    assert "${GROUP_COUNT(carrier-a@callcore-trunk)} > 30]?full" in outbound_a
    outbound_b = context(ext, "callcore-outbound-carrier-b")
    assert extensions(outbound_b) == ["_+4420X.", "_+447X."]
    assert "Dial(PJSIP/0099${EXTEN:1}@carrier-b)" in outbound_b
    assert "old-carrier" not in ext  # disabled trunks are left out
    assert extensions(context(ext, "callcore-phones")) == ["101", "102"]


async def test_trunk_without_allowed_prefixes_reaches_nothing(db_pool):
    async with db_pool.acquire() as conn:
        await conn.execute("INSERT INTO sip_trunks (name, host) VALUES ('closed', 'x.example')")
        files = await render_all(conn)
    assert extensions(context(files["extensions.conf"], "callcore-outbound-closed")) == []


async def test_configured_fallback_prompt_is_played(db_pool):
    async with db_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO settings (key, value) VALUES ('dialplan.fallback_prompt', $1)",
            "callcore/closed&goodbye",
        )
        files = await render_all(conn)
        assert "Playback(callcore/closed&goodbye)" in files["extensions.conf"]
        await conn.execute(
            "UPDATE settings SET value = $1 WHERE key = 'dialplan.fallback_prompt'",
            "x,Hangup()",
        )
        with pytest.raises(ValidationError, match=r"setting dialplan\.fallback_prompt: 'x,Hangup"):
            await render_all(conn)


async def test_manager_conf_grants_least_privilege_on_loopback(db_pool):
    async with db_pool.acquire() as conn:
        files = await render_all(conn)
    manager = files["manager.conf"]
    lines = dict(
        line.split(" = ", 1) for line in manager.splitlines() if " = " in line and line[0] != ";"
    )
    write = set(lines["write"].split(","))
    assert write == {"call", "originate", "agent", "reporting"}
    assert not write & {"system", "command", "config", "all"}
    assert "all" not in lines["read"].split(",")
    assert lines["bindaddr"] == "127.0.0.1"
    assert lines["permit"] == "127.0.0.1/255.255.255.255"
    assert lines["deny"] == "0.0.0.0/0.0.0.0"
    assert lines["secret"] == r"ami-s3cret\;x"
    assert "[callcore]" in manager


async def test_remote_ami_server_is_refused_for_manager_conf(db_pool):
    remote = AmiServerSettings(id="far", username="callcore", secret=Secret("s"), host="10.1.1.1")
    async with db_pool.acquire() as conn:
        with pytest.raises(ConfigError, match=re.escape("ami server 'far' is at '10.1.1.1'")):
            await render_all(conn, ami_settings=remote)


HOSTILE_NAMES = ["evil\n[default]", "evil;x", "evil[x]", "a,b", "a${SHELL(id)}", "a)b"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_hostile_trunk_name_is_refused_naming_the_row(db_pool, name):
    async with db_pool.acquire() as conn:
        # Defence in depth: the schema's CHECK is gone, the renderer must still refuse.
        await conn.execute("ALTER TABLE sip_trunks DROP CONSTRAINT sip_trunks_name_check")
        trunk = await conn.fetchval(
            "INSERT INTO sip_trunks (name, host, allowed_prefixes) VALUES ($1, 'h', '{+33}') "
            "RETURNING id",
            name,
        )
        with pytest.raises(ValidationError) as caught:
            await render_all(conn)
    message = str(caught.value)
    assert f"sip_trunks row {trunk} ({name!r}), name: {name!r} is not a safe name" in message


@pytest.mark.parametrize("number", ["+331\n[x]", "+331;x", "+33[1]", "+33,1"])
async def test_hostile_did_is_refused_naming_the_row(db_pool, number):
    async with db_pool.acquire() as conn:
        await conn.execute("ALTER DOMAIN e164 DROP CONSTRAINT e164_check")
        did = await conn.fetchval("INSERT INTO dids (number) VALUES ($1) RETURNING id", number)
        with pytest.raises(ValidationError, match=re.escape(f"dids row {did} ({number!r})")):
            await render_all(conn)


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        ("host", "sip.example\n[evil]", "host: 'sip.example\\n[evil]' is not a host name"),
        ("host", "sip.example;x", "host: 'sip.example;x' is not a host name"),
        ("from_domain", "a\r\nb", "from_domain: 'a\\r\\nb' contains a line break"),
        ("label", "Carrier\n[evil]", "label: 'Carrier\\n[evil]' contains a line break"),
    ],
)
async def test_hostile_free_text_in_a_trunk_is_refused(db_pool, column, value, error):
    async with db_pool.acquire() as conn:
        trunk = await conn.fetchval(
            "INSERT INTO sip_trunks (name, host) VALUES ('t1', 'h.example') RETURNING id"
        )
        await conn.execute(f"UPDATE sip_trunks SET {column} = $1", value)
        with pytest.raises(ValidationError, match=re.escape(f"sip_trunks row {trunk} ('t1'), ")):
            await render_all(conn)
        with pytest.raises(ValidationError, match=re.escape(error)):
            await render_all(conn)


async def test_semicolons_in_free_text_are_escaped_not_comments(db_pool):
    async with db_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO sip_trunks (name, host, from_user) VALUES ('t1', 'h.example', 'a;b')"
        )
        files = await render_all(conn)
    assert "from_user = a\\;b\n" in files["pjsip.conf"]


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("Martin, Alice", "name: 'Martin, Alice' contains ','"),
        ("Alice\n[default]", "name: 'Alice\\n[default]' contains a line break"),
    ],
)
async def test_hostile_voicemail_name_is_refused(db_pool, name, error):
    async with db_pool.acquire() as conn:
        box = await conn.fetchval(
            "INSERT INTO voicemail_boxes (mailbox, name, pin_encrypted) VALUES ('300', $1, $2) "
            "RETURNING id",
            name,
            CIPHER.encrypt("1234"),
        )
        with pytest.raises(ValidationError, match=re.escape(f"voicemail_boxes row {box} ")):
            await render_all(conn)
        with pytest.raises(ValidationError, match=re.escape(error)):
            await render_all(conn)


async def test_hostile_secrets_are_refused_without_showing_them(db_pool):
    async with db_pool.acquire() as conn:
        phone = await conn.fetchval(
            "INSERT INTO phones (endpoint, password_encrypted) VALUES ('p1', $1) RETURNING id",
            CIPHER.encrypt("pw\n[evil]\ntype=endpoint"),
        )
        with pytest.raises(ValidationError) as caught:
            await render_all(conn)
        assert f"phones row {phone}, password: contains a line break" in str(caught.value)
        assert "evil" not in str(caught.value)
        await conn.execute("UPDATE phones SET password_encrypted = $1", CIPHER.encrypt("ok"))
        await conn.execute(
            "INSERT INTO voicemail_boxes (mailbox, pin_encrypted) VALUES ('301', $1)",
            CIPHER.encrypt("12a4"),
        )
        with pytest.raises(ValidationError, match="pin: is not made of digits only") as caught:
            await render_all(conn)
        assert "12a4" not in str(caught.value)


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("INSERT INTO phones (endpoint) VALUES ('p1')", "has no password: anyone could register"),
        (
            "INSERT INTO voicemail_boxes (mailbox) VALUES ('400')",
            "(400@default) has no PIN",
        ),
    ],
)
async def test_open_phones_and_mailboxes_are_refused(db_pool, statement, error):
    async with db_pool.acquire() as conn:
        await conn.execute(statement)
        with pytest.raises(ValidationError, match=re.escape(error)):
            await render_all(conn)


async def test_phone_and_trunk_may_not_share_an_endpoint_name(db_pool):
    async with db_pool.acquire() as conn:
        await conn.execute("INSERT INTO sip_trunks (name, host) VALUES ('shared', 'h.example')")
        await conn.execute(
            "INSERT INTO phones (endpoint, password_encrypted) VALUES ('shared', $1)",
            CIPHER.encrypt("pw"),
        )
        with pytest.raises(ValidationError, match="are both named 'shared'"):
            await render_all(conn)


async def test_unsafe_agi_host_is_refused(db_pool):
    async with db_pool.acquire() as conn:
        with pytest.raises(ValidationError, match=r"agi host .*'h,Hangup\(\)' is not a host"):
            await render_all(conn, agi_host="h,Hangup()")
        files = await render_all(conn, agi_host="::1")
    assert "AGI(agi://[::1]:4573/inbound/${EXTEN})" in files["extensions.conf"]


async def test_secrets_only_in_their_files_and_never_in_logs(db_pool, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    async with db_pool.acquire() as conn:
        await insert_data_set(conn)
        files = await render_all(conn)
    write_dialplan(tmp_path, files)
    escaped = {key: value.replace(";", "\\;") for key, value in SECRETS.items()}
    homes = {
        "trunk": "pjsip.conf",
        "alice": "pjsip.conf",
        "bob": "pjsip.conf",
        "carol": "pjsip.conf",
        "pin_alice": "voicemail.conf",
        "pin_support": "voicemail.conf",
    }
    for key, home in homes.items():
        assert escaped[key] in files[home]
        for name, content in files.items():
            if name != home:
                assert SECRETS[key] not in content and escaped[key] not in content, (key, name)
    assert "ami-s3cret" in files["manager.conf"]
    assert all("ami-s3cret" not in files[n] for n in FILES if n != "manager.conf")
    assert caplog.records, "rendering and writing should log what they did"
    for value in [*SECRETS.values(), "ami-s3cret"]:
        assert value not in caplog.text


async def test_written_files_are_atomic_with_restricted_modes(db_pool, tmp_path):
    async with db_pool.acquire() as conn:
        await insert_data_set(conn)
        files = await render_all(conn)
    out = tmp_path / "asterisk" / "callcore"
    old = out / "pjsip.conf"
    out.mkdir(parents=True)
    old.write_text("stale")
    old.chmod(0o644)
    written = write_dialplan(out, files)
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary left behind
    assert written == [out / name for name in sorted(FILES)]
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.name in render.SECRET_FILES else 0o644), path.name
        assert path.read_text(encoding="utf-8") == files[path.name]
    with pytest.raises(ValidationError, match=re.escape("not a dialplan file: '../escape.conf'")):
        write_dialplan(out, {"../escape.conf": "x"})


def test_templates_cannot_print_unfiltered_values():
    template = render._environment().from_string("exten => {{ value }},1,NoOp()")
    with pytest.raises(Exception, match="without a dialplan filter"):
        template.render(value="x")


@given(st.text())
def test_text_filter_output_stays_on_one_line_with_no_bare_semicolon(value):
    try:
        out = render.text(value)
    except ValidationError:
        assert any(ord(c) < 32 or ord(c) == 127 for c in value)
        return
    assert "\n" not in out and "\r" not in out
    assert re.search(r"(?<!\\);", out) is None


def test_cli_writes_the_files(database_url, tmp_path):
    config = tmp_path / "callcore.toml"
    config.write_text(
        '[[ami.servers]]\nid = "pbx1"\nusername = "callcore"\nsecret = "cli-ami-secret"\n',
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCORE_")}
    env.pop("DATABASE_URL", None)
    env.update(
        CALLCORE_DATABASE_URL=database_url,
        CALLCORE_SECRET_KEY=TEST_SECRET_KEY,
        CALLCORE_DATA=str(tmp_path / "data"),
        CALLCORE_AGI_PORT="4580",
    )
    out = tmp_path / "out"

    def run(*args):
        return subprocess.run(
            [*CLI, "--config", str(config), "dialplan", "render", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = run("--out", str(out), "--agi-host", "192.0.2.10")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert "AGI(agi://192.0.2.10:4580/inbound/${EXTEN})" in (out / "extensions.conf").read_text()
    assert "secret = cli-ami-secret" in (out / "manager.conf").read_text()
    assert stat.S_IMODE((out / "manager.conf").stat().st_mode) == 0o600
    assert "cli-ami-secret" not in result.stdout + result.stderr
    assert f"wrote {out / 'pjsip.conf'}" in result.stdout

    only = tmp_path / "only"
    result = run("--out", str(only), "--only", "queues.conf")
    assert result.returncode == 0, result.stderr
    assert [p.name for p in only.iterdir()] == ["queues.conf"]

    result = run("--out", str(only), "--only", "nope.conf")
    assert result.returncode == 1
    assert "--only 'nope.conf' is not one of" in result.stderr
    result = run("--out", str(only), "--ami-server", "pbx9")
    assert result.returncode == 1
    assert "no AMI server with id 'pbx9' (configured: pbx1)" in result.stderr


def context(conf: str, name: str) -> str:
    """The body of one [context] of a rendered extensions.conf."""
    match = re.search(rf"^\[{re.escape(name)}\]\n(.*?)(?=^\[|\Z)", conf, re.M | re.S)
    assert match, f"no [{name}] context"
    return match.group(1)


def extensions(body: str) -> list[str]:
    return re.findall(r"^exten => ([^,]+),1,", body, re.M)
