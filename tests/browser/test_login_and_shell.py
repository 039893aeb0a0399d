"""Logging in, the layout, the language switch and logging out, in Debian's chromium."""

import pytest
from _browser import PASSWORD, serving


@pytest.fixture
async def base_url(aiohttp_server, callcore_settings):
    async with serving(aiohttp_server, callcore_settings, [("admin", "admin")]) as (base, _):
        yield f"{base}/"


@pytest.fixture
async def page(browser):
    # A French browser: when the page is in English, it is the user's own setting.
    context = await browser.new_context(locale="fr-FR")
    return await context.new_page()


async def log_in(page, password=PASSWORD):
    await page.get_by_label("Identifiant").fill("admin")
    await page.get_by_label("Mot de passe").fill(password)
    await page.get_by_role("button", name="Se connecter").click()


async def test_login_language_switch_and_logout(base_url, page):
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    await page.goto(f"{base_url}login")
    assert await page.title() == "Se connecter — callcore"
    await log_in(page)
    await page.wait_for_url(base_url)
    assert await page.title() == "État du service — callcore"
    assert "PostgreSQL" in await page.get_by_test_id("database-ok").inner_text()
    nav = page.get_by_test_id("main-nav")
    await nav.get_by_text("Surveillance").click()
    current = nav.get_by_role("link", name="État du service")
    assert await current.get_attribute("aria-current") == "page"
    await nav.get_by_text("Surveillance").click()  # close it: an open dropdown covers the page
    # Pico CSS and the shell's own module really loaded.
    assert "system-ui" in await page.evaluate("getComputedStyle(document.body).fontFamily")
    assert await page.evaluate("typeof window.htmx") == "object"

    await page.get_by_test_id("user-menu").locator("summary").click()
    await page.get_by_role("button", name="English").click()
    await page.wait_for_url(base_url)
    assert await page.title() == "Service status — callcore"
    assert await page.locator("html").get_attribute("lang") == "en"

    await page.get_by_test_id("user-menu").locator("summary").click()
    await page.get_by_test_id("logout").click()
    await page.wait_for_url(f"{base_url}login?logged_out")
    assert await page.get_by_test_id("logged-out").inner_text() == "You are logged out."
    assert await page.get_by_test_id("logout").count() == 0

    # Forget the visitor cookie too: English can now only come from the user's saved setting.
    await page.context.clear_cookies(name="callcore_lang")
    await page.goto(f"{base_url}login?next=/")
    assert await page.title() == "Se connecter — callcore"
    await log_in(page)
    await page.wait_for_url(base_url)
    assert await page.title() == "Service status — callcore"
    assert failed == [] and errors == []


async def test_wrong_password_shows_the_error_in_french(base_url, page):
    await page.goto(f"{base_url}login")
    await log_in(page, password="not the password")
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert await alert.inner_text() == "Identifiant ou mot de passe incorrect."
    assert await page.get_by_label("Identifiant").input_value() == "admin"
    assert await page.get_by_label("Mot de passe").input_value() == ""
    assert await page.title() == "Se connecter — callcore"


SHELL_SCRIPT_PROBE = """async () => {
  const shell = await import("/static/callcore.js");
  const form = document.createElement("form");
  form.innerHTML = `
    <input data-field="/current_password"><small data-field-error="/current_password"></small>
    <input data-field="/new_password"><small data-field-error="/new_password"></small>
    <p data-form-error hidden></p>`;
  document.body.append(form);
  const result = {};
  try {
    await shell.fetchJSON("/api/v1/auth/password", {
      method: "POST", body: {current_password: "x", bogus: 1}, form,
    });
  } catch (error) {
    result.status = error.status;
  }
  const field = (name) => form.querySelector(`[data-field="/${name}"]`);
  result.newInvalid = field("new_password").getAttribute("aria-invalid");
  result.newMessage = form.querySelector('[data-field-error="/new_password"]').textContent;
  result.currentInvalid = field("current_password").getAttribute("aria-invalid");
  result.formError = form.querySelector("[data-form-error]").textContent;

  const statuses = [];
  document.body.addEventListener("htmx:afterRequest", (e) => statuses.push(e.detail.xhr.status));
  const list = document.createElement("div");
  list.innerHTML = '<p aria-busy="true" data-state="loading">…</p>';
  document.body.append(list);
  await htmx.ajax("GET", "/no-such-rows", {target: list});
  await htmx.ajax("POST", "/api/v1/auth/password", {target: document.createElement("div")});
  result.listState = list.querySelector("[data-state]").dataset.state;
  result.htmxStatuses = statuses;
  result.toasts = document.querySelectorAll("#toasts .toast-error").length;
  return result;
}"""


async def test_shell_script_sends_csrf_and_places_problem_errors(base_url, page):
    await page.goto(f"{base_url}login")
    await log_in(page)
    await page.wait_for_url(base_url)
    result = await page.evaluate(SHELL_SCRIPT_PROBE)
    # 422, not 403: fetchJSON and htmx both sent the CSRF token with the session cookie.
    assert result["status"] == 422
    assert result["newInvalid"] == "true" and "/new_password" in result["newMessage"]
    assert result["currentInvalid"] is None
    assert result["formError"] == "/bogus is not a field of this resource"
    assert result["htmxStatuses"] == [404, 415]  # 415 (a form body to a JSON API), not 403
    assert result["listState"] == "error"  # the failed load shows the error state
    assert result["toasts"] == 2
