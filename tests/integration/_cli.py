"""Running the `callcore` command as a user runs it: a real process with its own settings."""

import os
import socket
import subprocess
import sys

from callcore.crypto import generate_key

CALLCORE = [sys.executable, "-m", "callcore.cli"]


def cli_environment(database_url: str, data_dir: str) -> dict[str, str]:
    """This process's environment without any callcore setting, then the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLCORE_")}
    env.pop("DATABASE_URL", None)
    env.update(
        CALLCORE_DATABASE_URL=database_url,
        CALLCORE_SECRET_KEY=generate_key(),
        CALLCORE_DATA=data_dir,
        CALLCORE_AGI_PORT=str(free_port()),
    )
    return env


def run(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CALLCORE, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
