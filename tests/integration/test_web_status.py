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
    anonymous = await client.get("/", allow_redirects=False)
    assert anonymous.status == 303 and anonymous.headers["Location"] == "/login?next=/"
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


async def test_an_expired_page_session_is_renewed_silently_through_the_login_page(client):
    runtime = client.app[RUNTIME]
    await add_user(runtime.database.pool, "sam", "supervisor")
    session = await login(client, "sam")
    client.session.cookie_jar.clear()
    # The access token has expired (the browser dropped it); the refresh cookie remains.
    stale = {"Cookie": f"callcore_refresh={session.refresh}"}
    page = await client.get("/?tab=db", headers=stale, allow_redirects=False)
    assert page.status == 303 and page.headers["Location"] == "/login?next=/?tab%3Ddb"
    renewed = await client.get(page.headers["Location"], headers=stale, allow_redirects=False)
    assert renewed.status == 303 and renewed.headers["Location"] == "/?tab=db"
    fresh = renewed.cookies["callcore_access"].value
    assert fresh and renewed.cookies["callcore_refresh"].value != session.refresh
    again = await client.get("/", headers={"Cookie": f"callcore_access={fresh}"})
    assert again.status == 200
    # The spent refresh token cannot renew twice: reuse ends the session.
    client.session.cookie_jar.clear()
    replay = await client.get("/login?next=/", headers=stale, allow_redirects=False)
    assert replay.status == 200 and "callcore_access" not in replay.cookies
