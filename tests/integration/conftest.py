"""Fixtures shared by the API and page tests."""

import pytest
from _api_client import open_api


@pytest.fixture
async def api(aiohttp_client, callcore_settings):
    """The real app on a real socket, with helpers to log in as any role (see _api_client)."""
    async with open_api(aiohttp_client, callcore_settings) as api:
        yield api
