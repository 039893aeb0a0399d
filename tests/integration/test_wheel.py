"""The built wheel carries every callcore subpackage, its templates, static files and SQL."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Source folder -> import name, as pyproject's package-dir maps them.
SOURCE_ROOTS = {
    "callcore": "callcore",
    "plugins": "callcore.plugins",
    "ivr_nodes": "callcore.ivr_nodes",
    "dialplan": "callcore.dialplan",
    "web": "callcore.web",
}


def source_packages() -> set[str]:
    packages = set()
    for folder, name in SOURCE_ROOTS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            packages.add(".".join([name, *relative.parts]))
    return packages


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (built,) = out.glob("callcore-*.whl")
    return built


def test_wheel_contains_every_package_and_asset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in source_packages():
        assert f"{package.replace('.', '/')}/__init__.py" in names, package
    assert "callcore/py.typed" in names
    assert "callcore/db/migrations/0001_domain.sql" in names
    assert "callcore/web/templates/base.html" in names
    assert "callcore/web/static/callcore.css" in names
    # Front-end libraries come from npm via `make assets`, never from git; the wheel has them.
    assert "callcore/web/static/vendor/pico.min.css" in names
    assert "callcore/web/static/vendor/htmx.min.js" in names
    assert "callcore/web/static/vendor/drawflow.min.js" in names
    assert "callcore/web/static/vendor/drawflow.min.css" in names
    assert not any(name.startswith(("plugins/", "web/", "tests/")) for name in names)


def test_every_package_imports_from_the_unpacked_wheel(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path)
    packages = sorted(source_packages())
    script = (
        "import importlib, sys\n"
        f"root = {str(tmp_path)!r}\n"
        f"for name in {packages!r}:\n"
        "    module = importlib.import_module(name)\n"
        "    assert module.__file__.startswith(root), (name, module.__file__)\n"
        "from importlib.resources import files\n"
        "assert files('callcore.web').joinpath('templates/status.html').is_file()\n"
        "print(len(" + repr(packages) + "))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(packages))
