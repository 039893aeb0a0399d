"""The UI shell over a real socket and database: languages, navigation, login, logout, escaping."""

import datetime as dt
import re
from pathlib import Path

import aiohttp_jinja2
import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from callcore.db.users import create_user
from callcore.runtime import open_runtime
from callcore.web.app import create_app
from callcore.web.i18n import CATALOGS, LOCALE_DIR, activate, choose_language, parse_accept_language
from callcore.web.nav import NavEntry, register_nav
from callcore.web.ui import safe_next

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"


@pytest.fixture
async def runtime(callcore_settings):
    async with open_runtime(callcore_settings) as runtime:
        yield runtime


@pytest.fixture
async def app(runtime):
    return create_app(runtime)


@pytest.fixture
async def client(aiohttp_client, app):
    return await aiohttp_client(app)


async def add_user(runtime, username, role, language="fr"):
    async with runtime.database.pool.acquire() as conn:
        return await create_user(
            conn,
            username=username,
            role=role,
            password=PASSWORD,
            actor_label="test",
            language=language,
        )


def cookie(client, name):
    morsel = client.session.cookie_jar.filter_cookies(client.make_url("/")).get(name)
    return None if morsel is None else morsel.value


async def log_in(client, username, password=PASSWORD, **extra):
    """Log in through the form as a browser does: load the page, post it with its CSRF token."""
    page = await client.get("/login")
    assert page.status == 200
    form = {
        "username": username,
        "password": password,
        "csrf_token": cookie(client, "callcore_csrf"),
    }
    return await client.post("/login", data={**form, **extra}, allow_redirects=False)


def hidden_csrf_values(html):
    return re.findall(r'name="csrf_token" value="([^"]*)"', html)


# --- language negotiation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", []),
        ("en-US,en;q=0.9,fr;q=0.8", ["en-us", "en", "fr"]),
        ("fr;q=0.2, en;q=0.7, de", ["de", "en", "fr"]),
        ("en;q=0, fr", ["fr"]),
        ("en;q=bogus, fr;q=0.1", ["fr"]),
    ],
)
def test_accept_language_is_ranked_by_quality(header, expected):
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize(
    ("user", "cookie_value", "header", "expected"),
    [
        ("en", "fr", "fr", "en"),  # the user's own setting wins
        (None, "en", "fr-FR", "en"),  # then the visitor's cookie
        (None, "xx", "en-GB,fr;q=0.5", "en"),  # an unknown cookie is ignored
        (None, None, "de, en-CA;q=0.5", "en"),  # then the browser's first supported language
        (None, None, "de, es", "fr"),  # else the default
        (None, None, "", "fr"),
    ],
)
def test_language_choice_order(user, cookie_value, header, expected):
    assert choose_language(user, cookie_value, header, "fr") == expected


async def test_login_page_follows_accept_language_then_cookie(client):
    french = await client.get("/login")
    assert french.headers["Content-Language"] == "fr"
    assert "<title>Se connecter — callcore</title>" in await french.text()
    assert '<html lang="fr">' in await french.text()

    english = await client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert english.headers["Content-Language"] == "en"
    assert "<title>Log in — callcore</title>" in await english.text()

    client.session.cookie_jar.update_cookies({"callcore_lang": "en"})
    chosen = await client.get("/login", headers={"Accept-Language": "fr"})
    assert chosen.headers["Content-Language"] == "en"
    assert "Vary" in chosen.headers and "Accept-Language" in chosen.headers["Vary"]


async def test_a_user_sees_their_own_language_and_can_switch_it(client, runtime):
    user = await add_user(runtime, "marie", "admin", language="en")
    assert (await log_in(client, "marie")).status == 303
    page = await client.get("/", headers={"Accept-Language": "fr"})
    html = await page.text()
    assert page.headers["Content-Language"] == "en"
    assert "Service status" in html and "Monitoring" in html

    switched = await client.post(
        "/account/language",
        data={"language": "fr", "next": "/", "csrf_token": cookie(client, "callcore_csrf")},
        allow_redirects=False,
    )
    assert switched.status == 303 and switched.headers["Location"] == "/"
    async with runtime.database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT language FROM users WHERE id = $1", user.id) == "fr"
        audit = await conn.fetchrow(
            "SELECT action, before, after FROM audit_log WHERE entity_type = 'user' "
            "AND entity_id = $1 ORDER BY id DESC LIMIT 1",
            str(user.id),
        )
    assert audit["action"] == "update"
    # The saved setting speaks for the user, whatever cookie the browser carries.
    client.session.cookie_jar.update_cookies({"callcore_lang": "en"})
    page = await client.get("/")
    assert page.headers["Content-Language"] == "fr"
    assert "État du service" in await page.text()


async def test_language_switch_needs_csrf_and_a_known_language(client, runtime):
    await add_user(runtime, "paul", "admin")
    await log_in(client, "paul")
    forged = await client.post("/account/language", data={"language": "en"})
    assert forged.status == 403
    unknown = await client.post(
        "/account/language",
        data={"language": "de", "csrf_token": cookie(client, "callcore_csrf")},
        allow_redirects=False,
    )
    assert unknown.status == 400
    async with runtime.database.pool.acquire() as conn:
        assert await conn.fetchval("SELECT language FROM users WHERE username = 'paul'") == "fr"


async def test_anonymous_language_switch_sets_the_cookie_only(client):
    await client.get("/login")
    response = await client.post(
        "/account/language",
        data={"language": "en", "next": "/login", "csrf_token": cookie(client, "callcore_csrf")},
        allow_redirects=False,
    )
    assert response.status == 303 and response.headers["Location"] == "/login"
    assert cookie(client, "callcore_lang") == "en"
    assert "Log in" in await (await client.get("/login")).text()


async def test_numbers_and_dates_follow_the_language(app):
    template = aiohttp_jinja2.get_env(app).from_string(
        "{{ 1234567.5|number }} {{ day|date('long') }}"
    )
    day = dt.date(2025, 7, 14)
    with activate(app[CATALOGS]["fr"]):
        assert template.render(day=day) == "1\u202f234\u202f567,5 14 juillet 2025"
    with activate(app[CATALOGS]["en"]):
        assert template.render(day=day) == "1,234,567.5 July 14, 2025"


# --- navigation by role --------------------------------------------------------------------


async def test_navigation_shows_only_what_the_role_may_open(aiohttp_client, runtime):
    app = create_app(runtime)
    register_nav(app, NavEntry("console", "Agent console", "/console", ("agent",)))
    client = await aiohttp_client(app)
    await add_user(runtime, "admin1", "admin")
    await add_user(runtime, "agent1", "agent")

    await log_in(client, "admin1")
    html = await (await client.get("/")).text()
    assert 'data-testid="nav-monitoring"' in html
    assert '<a href="/" aria-current="page">État du service</a>' in html
    assert "nav-console" not in html and "/console" not in html
    for present in ("nav-agents", "nav-inbound", "nav-settings"):
        assert present in html  # sections whose pages exist
    for absent in ("nav-supervision", "nav-reporting", "nav-outbound"):
        assert absent not in html  # no section without a page in it

    await client.post("/logout", data={"csrf_token": cookie(client, "callcore_csrf")})
    landed = await log_in(client, "agent1")
    assert landed.headers["Location"] == "/console"  # an agent lands on their first page
    refused = await client.get("/")
    assert refused.status == 403
    sent_on = await client.get("/login", allow_redirects=False)  # already logged in
    assert sent_on.status == 303 and sent_on.headers["Location"] == "/console"


async def test_anonymous_pages_have_no_navigation(client):
    html = await (await client.get("/login")).text()
    assert "nav-monitoring" not in html and 'data-testid="logout"' not in html


def test_nav_entries_are_checked():
    with pytest.raises(ValueError, match="'cockpit'"):
        NavEntry("cockpit", "Cockpit", "/cockpit", ("admin",))
    with pytest.raises(ValueError, match="'root'"):
        NavEntry("settings", "Trunks", "/trunks", ("root",))
    with pytest.raises(ValueError, match=r"'//evil\.example'"):
        NavEntry("settings", "Trunks", "//evil.example", ("admin",))


# --- login, logout, redirects --------------------------------------------------------------


async def test_login_redirects_to_the_page_asked_for_and_logout_ends_the_session(client, runtime):
    await add_user(runtime, "ana", "supervisor")
    response = await log_in(client, "ana", next="/?tab=db")
    assert response.status == 303 and response.headers["Location"] == "/?tab=db"
    assert (await client.get("/")).status == 200

    logout = await client.post(
        "/logout", data={"csrf_token": cookie(client, "callcore_csrf")}, allow_redirects=False
    )
    assert logout.status == 303 and logout.headers["Location"] == "/login?logged_out"
    assert cookie(client, "callcore_access") in (None, "")
    async with runtime.database.pool.acquire() as conn:
        revoked = await conn.fetchval(
            "SELECT revoked_reason FROM refresh_families ORDER BY created_at DESC LIMIT 1"
        )
    assert revoked == "logout"
    after = await client.get("/", allow_redirects=False)
    assert after.status == 303 and after.headers["Location"] == "/login?next=/"
    notice = await (await client.get("/login?logged_out")).text()
    assert "Votre session est fermée." in notice


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/", "/"),
        ("/reports?day=2025-07-14&x=%2F%2F", "/reports?day=2025-07-14&x=%2F%2F"),
        ("//evil.example/", None),
        ("/\\evil.example", None),
        ("/\t/evil.example", None),
        ("/\n/evil.example", None),
        ("https://evil.example/", None),
        ("javascript:alert(1)", None),
        ("evil.example", None),
        ("/caf\u00e9", None),
        ("", None),
        (None, None),
    ],
)
def test_only_same_site_paths_are_redirect_targets(value, expected):
    assert safe_next(value) == expected


async def test_login_never_redirects_off_site(client, runtime):
    await add_user(runtime, "admin2", "admin")
    response = await log_in(client, "admin2", next="//evil.example/")
    assert response.headers["Location"] == "/"


async def test_wrong_password_and_rate_limit_are_translated_errors(client, runtime):
    await add_user(runtime, "zoe", "admin")
    wrong = await log_in(client, "zoe", password="nope")
    assert wrong.status == 401
    html = await wrong.text()
    assert "Identifiant ou mot de passe incorrect." in html
    assert 'value="zoe"' in html  # the username is kept, the password never echoed
    assert "nope" not in html

    for _ in range(4):
        await log_in(client, "zoe", password="nope")
    locked = await log_in(client, "zoe")  # even the right password waits for the lock to lift
    assert locked.status == 429
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert "Trop de tentatives échouées. Réessayez dans 15 minutes." in await locked.text()

    english = await client.post(
        "/login",
        data={
            "username": "zoe",
            "password": PASSWORD,
            "csrf_token": cookie(client, "callcore_csrf"),
        },
        headers={"Accept-Language": "en"},
    )
    assert "Too many failed attempts. Try again in 15 minutes." in await english.text()


async def test_login_form_needs_its_fields_and_its_csrf_token(client, runtime):
    await add_user(runtime, "lea", "admin")
    missing = await log_in(client, "lea", password="")
    assert missing.status == 400
    assert "Saisissez votre identifiant et votre mot de passe." in await missing.text()
    # A post forged from another site carries no CSRF cookie (SameSite=Strict): refused.
    client.session.cookie_jar.clear()
    forged = await client.post(
        "/login", data={"username": "lea", "password": PASSWORD}, allow_redirects=False
    )
    assert forged.status == 403
    assert cookie(client, "callcore_access") is None


# --- escaping and CSRF in forms ------------------------------------------------------------


async def test_user_controlled_text_is_escaped(client, runtime):
    name = "<script>alert(1)</script>"
    await add_user(runtime, name, "admin")
    response = await log_in(client, name)
    assert response.status == 303
    html = await (await client.get("/")).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert name not in html

    await client.post("/logout", data={"csrf_token": cookie(client, "callcore_csrf")})
    typed = '"><img src=x onerror=alert(1)>'
    echoed = await (await log_in(client, typed, password="x")).text()
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in echoed
    assert "<img src=x" not in echoed


async def test_every_form_carries_the_csrf_token(client, runtime):
    login_html = await (await client.get("/login")).text()
    anonymous = cookie(client, "callcore_csrf")
    assert anonymous and hidden_csrf_values(login_html) == [anonymous, anonymous]

    await add_user(runtime, "hugo", "admin")
    await log_in(client, "hugo")
    session = cookie(client, "callcore_csrf")
    assert session != anonymous  # the session's own token replaces the pre-session one
    html = await (await client.get("/")).text()
    forms = html.count("<form")
    assert forms == 2  # language switch and logout
    assert hidden_csrf_values(html) == [session] * forms


# --- catalogs ------------------------------------------------------------------------------


def test_every_ui_string_is_translated_in_both_catalogs():
    """What `make messages` would extract is in fr and en, translated, with the same fields."""
    with (ROOT / "babel.cfg").open() as config:
        method_map, options_map = parse_mapping_cfg(config)
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    extracted = {
        message[2]: message
        for message in extract_from_dir(ROOT / "web", method_map, options_map, keywords=keywords)
    }
    assert "Service status" in extracted and "Monitoring" in extracted
    for code in ("fr", "en"):
        with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalog = read_po(po, locale=code)
        for msgid in extracted:
            key = msgid[0] if isinstance(msgid, tuple) else msgid
            message = catalog.get(key)
            assert message is not None, f"{code}: {key!r} is not in the catalog"
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            assert all(strings), f"{code}: {key!r} is not translated"
            fields = set(re.findall(r"%\(\w+\)", key))
            for string in strings:
                assert set(re.findall(r"%\(\w+\)", string)) == fields, (code, key, string)
