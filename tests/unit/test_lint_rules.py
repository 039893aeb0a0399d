"""The sans-I/O rule is enforced by ruff, not by good intentions."""

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


def ruff_check(tmp_path: Path, relative: str, source: str) -> subprocess.CompletedProcess:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    return subprocess.run(
        [str(RUFF), "check", "--select", "TID251", "--no-cache", relative],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_protocol_modules_may_not_import_asyncio_or_socket(tmp_path):
    for module in ("callcore/agi/protocol.py", "callcore/ami/protocol.py"):
        result = ruff_check(tmp_path, module, "import asyncio\nfrom socket import socket\n")
        assert result.returncode == 1, result.stdout
        assert "`asyncio` is banned" in result.stdout
        assert "`socket.socket` is banned" in result.stdout or "`socket` is banned" in result.stdout


def test_other_modules_may_use_asyncio(tmp_path):
    result = ruff_check(tmp_path, "callcore/agi/server.py", "import asyncio\nimport socket\n")
    assert result.returncode == 0, result.stdout
