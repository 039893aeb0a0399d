"""The ``callcore`` command. It is the composition root: the one core module that starts the web
layer, so that everything else in the core stays free of ``callcore.web``."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import attrs

from callcore import __version__
from callcore.auth.passwords import generate_password
from callcore.config import AmiServerSettings, Settings, WebSettings, load_settings
from callcore.crypto import generate_key
from callcore.errors import CallcoreError, ConfigError, ValidationError
from callcore.logs import configure_logging

if TYPE_CHECKING:
    from callcore.runtime import Runtime


async def _wait_for_stop_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_node(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived node on uvloop where it is installed: the FastAGI server's benchmark
    (benchmarks/README.md) shows it roughly halves the event loop's cost per AGI command."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def _serve(settings: Settings) -> None:
    from callcore.runtime import open_runtime

    async with open_runtime(settings) as runtime:
        await _run_web(runtime)


async def _demo(settings: Settings) -> None:
    from callcore.demo import demo_pbx, demo_traffic, ensure_demo_data
    from callcore.runtime import open_runtime

    async with demo_pbx(settings) as (settings, simulator), open_runtime(settings) as runtime:
        print(await ensure_demo_data(runtime.database.pool, Path(settings.data_dir)), flush=True)
        async with demo_traffic(simulator, runtime.clock):
            await _run_web(runtime)


async def _run_web(runtime: Runtime) -> None:
    from callcore.runtime import settle_heap
    from callcore.web.server import running_web

    web = runtime.settings.web
    async with running_web(runtime, web.host, web.port) as url:
        settle_heap()
        loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
        print(f"callcore {__version__} is serving on {url} ({loop}; Ctrl-C to stop)", flush=True)
        await _wait_for_stop_signal()
        print("callcore is stopping…", flush=True)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    run_node(_serve(_with_web(settings, args)))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    run_node(_demo(_with_web(settings, args)))
    return 0


def _with_web(settings: Settings, args: argparse.Namespace) -> Settings:
    web = WebSettings(
        host=args.host if args.host is not None else settings.web.host,
        port=args.port if args.port is not None else settings.web.port,
    )
    return attrs.evolve(settings, web=web)


async def _migrate(settings: Settings, show_status: bool) -> None:
    from callcore.db.dispositions import sync_registered_dispositions
    from callcore.db.migrate import migration_status
    from callcore.db.runtime import open_database
    from callcore.plugin_manager import load_plugins

    async with open_database(settings, migrate=not show_status) as database:
        async with database.pool.acquire() as conn:
            if not show_status:
                await sync_registered_dispositions(conn, load_plugins().dispositions())
            for migration, applied_at in await migration_status(conn):
                when = applied_at.isoformat(timespec="seconds") if applied_at else "pending"
                print(f"{migration.name:<40} {when}")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_migrate(settings, args.status))
    return 0


def cmd_plugins(settings: Settings, args: argparse.Namespace) -> int:
    from callcore.plugin_manager import load_plugins

    host = load_plugins()
    rows = [("NAME", "KIND", "VERSION", "SOURCE")]
    rows += [
        (p.name, ",".join(p.kinds) or "-", p.version or "-", p.source) for p in host.list_plugins()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())
    for failure in host.failures:
        print(f"FAILED {failure.name} ({failure.during}): {failure.message}", file=sys.stderr)
    return 1 if host.failures else 0


async def _user_create(settings: Settings, args: argparse.Namespace) -> None:
    from callcore.db.runtime import open_database
    from callcore.db.users import create_user

    password = generate_password()
    async with open_database(settings) as database, database.pool.acquire() as conn:
        user = await create_user(
            conn,
            username=args.username,
            role=args.role,
            password=password,
            display_name=args.display_name,
            language=args.language,
            actor_label="callcore cli",
        )
    print(f"created {user.role} {user.username!r} (id {user.id})")
    print(f"password (shown once, change it after the first login): {password}")


def cmd_user_create(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_user_create(settings, args))
    return 0


async def _user_reset_password(settings: Settings, args: argparse.Namespace) -> None:
    from callcore.auth.service import reset_password
    from callcore.db.runtime import open_database
    from callcore.db.users import find_user

    async with open_database(settings) as database, database.pool.acquire() as conn:
        user = await find_user(conn, args.username)
        if user is None:
            raise ValidationError(f"there is no user named {args.username!r}")
        password = await reset_password(conn, actor=None, user_id=user.id, ip=None)
    print(f"new password for {user.role} {user.username!r} (id {user.id}); signed out everywhere")
    print(f"password (shown once, change it after the first login): {password}")


def cmd_user_reset_password(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(_user_reset_password(settings, args))
    return 0


def _split_password(url: str) -> tuple[str, str | None]:
    """The URL without its password, and the password, so psql never sees it on a command line."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc}")), parts.password


async def _with_database_url(settings: Settings, action: Callable[[str], int]) -> int:
    from callcore.db.runtime import open_database

    async with open_database(settings, migrate=False) as database:
        return await asyncio.to_thread(action, database.url)


def _psql(url: str) -> int:
    from callcore.db.embedded import psql_executable

    plain, password = _split_password(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.call([psql_executable(), plain], env=env)  # noqa: S603


def cmd_db_url(settings: Settings, args: argparse.Namespace) -> int:
    from callcore.db.runtime import database_url

    print(database_url(settings))
    return 0


def cmd_db_shell(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_with_database_url(settings, _psql))


def _ami_server(settings: Settings, server_id: str | None) -> AmiServerSettings:
    """The AMI server whose manager.conf is rendered: the one named, or the only one."""
    servers = settings.ami.servers
    if server_id is not None:
        for server in servers:
            if server.id == server_id:
                return server
        known = ", ".join(s.id for s in servers) or "none"
        raise ConfigError(f"no AMI server with id {server_id!r} (configured: {known})")
    if len(servers) != 1:
        known = ", ".join(s.id for s in servers)
        raise ConfigError(
            "manager.conf needs callcore's AMI user: configure one [[ami.servers]]"
            if not servers
            else f"several AMI servers are configured ({known}): choose one with --ami-server"
        )
    return servers[0]


async def _dialplan_render(settings: Settings, args: argparse.Namespace) -> list[Path]:
    from callcore.crypto import load_cipher
    from callcore.db.runtime import open_database
    from callcore.dialplan.render import FILES, render_dialplan, write_dialplan

    if args.only is not None and args.only not in FILES:
        raise ConfigError(f"--only {args.only!r} is not one of {', '.join(FILES)}")
    cipher = load_cipher(settings)
    ami = _ami_server(settings, args.ami_server)
    agi_host = args.agi_host if args.agi_host is not None else settings.agi.host
    agi_port = args.agi_port if args.agi_port is not None else settings.agi.port
    async with open_database(settings) as database, database.pool.acquire() as conn:
        files = await render_dialplan(conn, cipher, agi_host, agi_port, ami)
    if args.only is not None:
        files = {args.only: files[args.only]}
    return write_dialplan(Path(args.out), files)


def cmd_dialplan_render(settings: Settings, args: argparse.Namespace) -> int:
    for path in asyncio.run(_dialplan_render(settings, args)):
        print(f"wrote {path}")
    return 0


def cmd_secret_key(settings: Settings, args: argparse.Namespace) -> int:
    print(generate_key())
    return 0


async def _rotate_secrets(settings: Settings) -> dict[str, int]:
    from callcore.crypto import load_cipher
    from callcore.db.runtime import open_database
    from callcore.db.secret_rotation import rotate_secrets

    cipher = load_cipher(settings)
    async with open_database(settings) as database, database.pool.acquire() as conn:
        return await rotate_secrets(conn, cipher, actor_label="callcore cli")


def cmd_rotate_secrets(settings: Settings, args: argparse.Namespace) -> int:
    counts = asyncio.run(_rotate_secrets(settings))
    for where, count in counts.items():
        print(f"{where}: {count} re-encrypted")
    print(
        f"{sum(counts.values())} secrets now open with secret_key alone; "
        "previous_secret_keys can be removed from every node"
    )
    return 0


def _add_web_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="TCP port to listen on (default 8080)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callcore", description="callcore: an open-source contact center for Asterisk."
    )
    parser.add_argument("--version", action="version", version=f"callcore {__version__}")
    parser.add_argument(
        "--config", metavar="FILE", help="TOML settings file (default: ./callcore.toml if present)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run callcore (web server; telephony when set up)")
    _add_web_options(serve)
    serve.set_defaults(func=cmd_serve)

    demo = commands.add_parser("demo", help="run callcore on the embedded database with demo data")
    _add_web_options(demo)
    demo.set_defaults(func=cmd_demo)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument(
        "--status", action="store_true", help="only show applied and pending migrations"
    )
    migrate.set_defaults(func=cmd_migrate)

    plugins = commands.add_parser("plugins", help="list loaded plugins and any that failed")
    plugins.set_defaults(func=cmd_plugins)

    user = commands.add_parser("user", help="manage user accounts")
    user_commands = user.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    create = user_commands.add_parser("create", help="create a user; prints its password once")
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=("admin", "supervisor", "agent"))
    create.add_argument("--display-name", default="", help="name shown in the UI")
    create.add_argument("--language", default="fr", choices=("fr", "en"))
    create.set_defaults(func=cmd_user_create)
    reset = user_commands.add_parser(
        "reset-password",
        help="give a user a new password (for a locked-out admin); prints it once",
    )
    reset.add_argument("--username", required=True)
    reset.set_defaults(func=cmd_user_reset_password)

    db = commands.add_parser("db", help="reach the database")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("url", help="print the database URL").set_defaults(func=cmd_db_url)
    db_commands.add_parser("shell", help="open psql on the database").set_defaults(
        func=cmd_db_shell
    )

    dialplan = commands.add_parser("dialplan", help="Asterisk configuration from the database")
    dialplan_commands = dialplan.add_subparsers(
        dest="dialplan_command", metavar="ACTION", required=True
    )
    render = dialplan_commands.add_parser(
        "render", help="write extensions, queues, manager, pjsip and voicemail .conf files"
    )
    render.add_argument("--out", required=True, metavar="DIR", help="directory to write into")
    render.add_argument("--agi-host", help="FastAGI host the dialplan calls (default agi.host)")
    render.add_argument(
        "--agi-port", type=int, help="FastAGI port the dialplan calls (default agi.port)"
    )
    render.add_argument(
        "--ami-server", metavar="ID", help="AMI server whose user goes in manager.conf"
    )
    render.add_argument("--only", metavar="FILE", help="write only this file, e.g. pjsip.conf")
    render.set_defaults(func=cmd_dialplan_render)

    secret = commands.add_parser("secret-key", help="print a new key for CALLCORE_SECRET_KEY")
    secret.set_defaults(func=cmd_secret_key)
    rotate = commands.add_parser(
        "rotate-secrets",
        help="re-encrypt every stored secret with secret_key (read with previous_secret_keys)",
    )
    rotate.set_defaults(func=cmd_rotate_secrets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.log_level)
        return args.func(settings, args)
    except CallcoreError as exc:
        print(f"callcore: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
