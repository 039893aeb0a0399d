"""Fixtures shared by the API, page and command-line tests."""

import pytest
from _api_client import open_api
from _cli import cli_environment


@pytest.fixture
async def api(aiohttp_client, callcore_settings):
    """The real app on a real socket, with helpers to log in as any role (see _api_client)."""
    async with open_api(aiohttp_client, callcore_settings) as api:
        yield api


@pytest.fixture
def cli_env(database_url, tmp_path):
    """Settings for a `callcore` process on the test's database (see _cli.run)."""
    return cli_environment(database_url, str(tmp_path / "data"))
