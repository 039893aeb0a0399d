"""The status page and /healthz of a running node, over a real socket and database."""

import pytest
from _auth_session import add_user, login

from callcore.runtime import open_runtime
from callcore.web.app import RUNTIME, create_app


@pytest.fixture
async def client(aiohttp_client, callcore_settings):
    async with open_runtime(callcore_settings) as runtime:
        yield await aiohttp_client(create_app(runtime))


async def test_healthz_reports_database_and_plugins(client):
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["healthy"] is True
    assert body["database"]["reachable"] is True
    assert int(body["database"]["server_version"].split(".")[0]) >= 15
    assert body["database"]["migrations"] >= 1
    assert "callcore.plugins.dispositions" in {p["name"] for p in body["plugins"]}
    assert body["dispositions"] >= 8


async def test_status_page_needs_a_supervisor_and_renders_in_french(client):
    assert (await client.get("/")).status == 401
    runtime = client.app[RUNTIME]
    await add_user(runtime.database.pool, "ana", "agent")
    await add_user(runtime.database.pool, "sam", "supervisor")
    agent = await login(client, "ana")
    assert (await client.get("/", headers=agent.cookie())).status == 403
    supervisor = await login(client, "sam")
    response = await client.get("/", headers=supervisor.cookie())
    assert response.status == 200
    html = await response.text()
    assert "État du service" in html
    assert 'data-testid="database-ok"' in html
    assert "/static/vendor/pico.min.css" in html
    css = await client.get("/static/vendor/pico.min.css")
    assert css.status == 200


async def test_unknown_path_is_404(client):
    assert (await client.get("/nope")).status == 404
