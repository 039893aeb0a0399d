"""The IVR flow editor in Debian's chromium, over the real API and node plugins: an admin draws
a flow with the mouse (nodes dragged from the palette, exits dragged onto inputs), fills the
forms generated from the nodes' JSON Schemas, publishes, routes a DID to it with the DID page's
flow picker, and simulated calls to that DID follow the path drawn (to the voicemail when the
queue does not exist, to an agent when it has one); a refused publication
shows its problems on the nodes; two editors of one flow conflict instead of overwriting; a
webhook's secret header is typed once and only its mask comes back; a plugin's node type takes
its place in the palette and on the canvas with no JS change, and the canvas zooms and pans."""

import json
import types

import attrs
import pytest
from _browser import PASSWORD, log_in, serving

import callcore
from callcore.ivr import CallContext, Node, NodeRegistry
from callcore.ivr.node import SECRET_MASK
from callcore.sim.agi_channel import Caller, PressDuring
from callcore.sim.pbx import MemberConfig, QueueConfig
from callcore.sim.run import SimConfig, Simulator

VIEWPORT = {"width": 1600, "height": 1100}
DID = "+33123456789"
HOSTILE = '<img src=x onerror="window.hacked=1">'


@pytest.fixture
async def site(aiohttp_server, callcore_settings):
    users = [("admin", "admin"), ("super", "supervisor")]
    async with serving(aiohttp_server, callcore_settings, users, agi=True) as site:
        yield site


async def open_editor(page, base, name):
    """From the flows list: create flow ``name`` and wait for its editor to be ready."""
    await page.goto(f"{base}/inbound/ivr-flows")
    await page.get_by_test_id("new-flow").locator("summary").click()
    await page.get_by_test_id("new-flow-form").locator('[name="name"]').fill(name)
    await page.get_by_test_id("create-flow").click()
    await page.locator("#ivr-editor[data-ready=true]").wait_for()


async def drop(page, node_type, x, y):
    """Drag a node type from the palette onto the canvas at (x, y); returns the new node."""
    before = await page.locator(".drawflow-node").count()
    canvas = page.get_by_test_id("ivr-canvas")
    await page.get_by_test_id(f"palette-{node_type}").drag_to(
        canvas, target_position={"x": x, "y": y}
    )
    await page.locator(".drawflow-node").nth(before).wait_for()
    return page.locator(".drawflow-node").nth(before)


def node(page, node_id):
    return page.get_by_test_id(f"ivr-node-{node_id}")


async def connect(page, source, exit_name, target):
    """Press on ``source``'s exit, move onto ``target``'s input and release, as a person would."""
    output = node(page, source).locator(f'.output[data-exit="{exit_name}"]')
    entry = node(page, target).locator(".input")
    start, end = await output.bounding_box(), await entry.bounding_box()
    await page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=4)
    await page.mouse.up()


async def select(page, node_id):
    """Click a node: its settings open in the side panel."""
    await node(page, node_id).locator(".ivr-node-head").click()
    panel = page.get_by_test_id("ivr-node-panel")
    await panel.locator(f"code:text-is('{node_id}')").wait_for()
    return panel


async def status_is(page, text):
    await page.get_by_test_id("ivr-status").filter(has_text=text).wait_for()


async def saved_draft(pool, name):
    graph = await pool.fetchval(
        "SELECT v.graph FROM flow_versions v JOIN flows f ON f.id = v.flow_id "
        "WHERE f.name = $1 AND v.status = 'draft'",
        name,
    )
    return None if graph is None else json.loads(graph) if isinstance(graph, str) else graph


async def test_admin_builds_publishes_and_routes_a_menu_calendar_queue_voicemail_flow(site, page):
    base, runtime = site
    pool = runtime.database.pool
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.set_viewport_size(VIEWPORT)
    await log_in(page, base)

    # The Inbound menu leads to the flows, none yet.
    nav = page.get_by_test_id("main-nav")
    await nav.get_by_text("Appels entrants").click()
    await nav.get_by_role("link", name="Flux SVI").click()
    await page.wait_for_url(f"{base}/inbound/ivr-flows")
    await page.get_by_test_id("ivr-flows").locator("[data-state=empty]").wait_for()
    await open_editor(page, base, "Accueil")
    flow_id = await pool.fetchval("SELECT id FROM flows WHERE name = 'Accueil'")
    assert page.url == f"{base}/inbound/ivr-flows/{flow_id}"

    # The palette is the node catalog, by category, in French.
    palette = page.get_by_test_id("ivr-palette")
    assert "Saisie de l’appelant" in await palette.inner_text()
    assert await page.get_by_test_id("palette-menu").inner_text() == "Menu"

    # Four nodes dragged onto the canvas; the first one is where calls start.
    await drop(page, "menu", 40, 60)
    await drop(page, "calendar", 300, 40)
    await drop(page, "queue", 560, 30)
    await drop(page, "voicemail", 560, 260)
    await drop(page, "hangup", 820, 300)
    assert await node(page, "menu_1").locator(".ivr-entry-badge").inner_text() == "Début"

    # The menu's form comes from its schema; its exits follow the keys offered.
    panel = await select(page, "menu_1")
    await panel.locator('[name="prompt"]').fill("bienvenue")
    await panel.locator('[name="options"]').nth(1).check()  # key 1
    await panel.locator('[name="options"]').nth(2).check()  # key 2
    await node(page, "menu_1").locator('.output[data-exit="digit_2"]').wait_for()
    exits = node(page, "menu_1").locator(".output")
    labels = [await exits.nth(i).get_attribute("data-label") for i in range(await exits.count())]
    assert labels[:2] == ["Touche 1", "Touche 2"]

    # The calendar: open every day, all day, public holidays ignored (so the call is
    # predictable); without the holidays option its "holiday" exit goes away.
    panel = await select(page, "calendar_1")
    assert await node(page, "calendar_1").locator('.output[data-exit="holiday"]').count() == 1
    await panel.locator('[name="holidays_closed"]').uncheck()
    await panel.locator(".schema-array").first.get_by_role("button", name="Ajouter").click()
    for day in range(7):
        await panel.locator('[name="hours/0/days"]').nth(day).check()
    await panel.locator('[name="hours/0/start"]').fill("00:00")
    await panel.locator('[name="hours/0/end"]').fill("24:00")
    await (
        node(page, "calendar_1").locator('.output[data-exit="holiday"]').wait_for(state="detached")
    )

    # A bad queue name is refused on its field by the exits API; then a good one.
    panel = await select(page, "queue_1")
    await panel.locator('[name="queue"]').fill("Sales Team")
    error = panel.locator('[data-error-for="queue"]')
    await error.filter(has_text="queue").wait_for()
    await panel.locator('[name="queue"]').fill("accueil")
    await error.filter(has_text="queue").wait_for(state="detached")
    await panel.locator('[name="node-label"]').fill(HOSTILE)
    assert await node(page, "queue_1").locator(".ivr-node-name").inner_text() == HOSTILE

    panel = await select(page, "voicemail_1")
    await panel.locator('[name="mailbox"]').fill("100")

    # Wiring with the mouse, and the queue's fallbacks with the panel's exit pickers.
    await connect(page, "menu_1", "digit_1", "calendar_1")
    await connect(page, "menu_1", "digit_2", "voicemail_1")
    await connect(page, "calendar_1", "open", "queue_1")
    await connect(page, "calendar_1", "closed", "voicemail_1")
    await connect(page, "voicemail_1", "next", "hangup_1")
    await connect(page, "voicemail_1", "failed", "hangup_1")
    panel = await select(page, "queue_1")
    for exit_name in ("timeout", "full", "empty"):
        await panel.locator(f'select[data-exit="{exit_name}"]').select_option("voicemail_1")
    assert await page.locator(".connection").count() == 9

    # Checked, then published (which saves the draft first).
    await page.get_by_test_id("ivr-check").click()
    await status_is(page, "Aucun problème")
    await page.get_by_test_id("ivr-publish").click()
    await status_is(page, "Version")
    assert await page.get_by_test_id("ivr-published").inner_text() == "Publié : version 1"
    published = await pool.fetchval(
        "SELECT graph FROM flow_versions WHERE flow_id = $1 AND status = 'published'", flow_id
    )
    graph = json.loads(published) if isinstance(published, str) else published
    assert graph["entry"] == "menu_1"
    assert {(e["from"], e["exit"], e["to"]) for e in graph["edges"]} == {
        ("menu_1", "digit_1", "calendar_1"),
        ("menu_1", "digit_2", "voicemail_1"),
        ("calendar_1", "open", "queue_1"),
        ("calendar_1", "closed", "voicemail_1"),
        ("queue_1", "timeout", "voicemail_1"),
        ("queue_1", "full", "voicemail_1"),
        ("queue_1", "empty", "voicemail_1"),
        ("voicemail_1", "next", "hangup_1"),
        ("voicemail_1", "failed", "hangup_1"),
    }
    params = {n["id"]: n["params"] for n in graph["nodes"]}
    assert params["menu_1"]["options"] == ["1", "2"] and params["menu_1"]["prompt"] == "bienvenue"
    assert params["calendar_1"]["hours"] == [
        {"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "24:00"}
    ]
    assert params["calendar_1"]["holidays_closed"] is False
    assert params["queue_1"]["queue"] == "accueil"
    assert {n["id"]: n.get("label") for n in graph["nodes"]}["queue_1"] == HOSTILE

    # A test call in the editor: key 1 goes through the calendar to the queue.
    await page.get_by_test_id("ivr-test").locator("summary").click()
    await page.locator('#ivr-test-form [name="digits"]').fill("1")
    await page.get_by_test_id("ivr-test-run").click()
    await page.get_by_test_id("ivr-test-outcome").wait_for()
    path = await page.get_by_test_id("ivr-test-path").locator("li").all_inner_texts()
    assert path == [
        "menu_1 (Menu) → Touche 1",
        "calendar_1 (Horaires d'ouverture) → Ouvert",
        f"{HOSTILE} (File d’attente) → Répondu",  # a dry run's queue is answered
    ]
    assert "queue" in await page.get_by_test_id("ivr-test-effects").inner_text()
    for node_id in ("menu_1", "calendar_1", "queue_1"):
        assert "ivr-path" in await node(page, node_id).get_attribute("class")
    assert "ivr-path" not in await node(page, "hangup_1").get_attribute("class")

    # The DID page's flow picker lists the flow; the DID routes to it.
    await page.goto(f"{base}/settings/dids/new")
    did_form = page.get_by_test_id("did-form")
    picker = did_form.locator('[name="flow_id"]')
    await picker.locator("option", has_text="Accueil").wait_for(state="attached")
    await did_form.locator('[name="number"]').fill("01 23 45 67 89")
    await picker.select_option(label="Accueil")
    await page.get_by_test_id("save").click()
    await page.wait_for_url(f"{base}/settings/dids?done=created")
    assert await pool.fetchval("SELECT flow_id FROM dids WHERE number = $1", DID) == flow_id

    # A call to that DID: the caller presses 1 during the menu's prompt.
    config = SimConfig(agi_address=("127.0.0.1", runtime.agi.port))
    async with Simulator(config) as sim:
        call = await sim.inbound_call(
            did=DID, caller=Caller(dtmf=(PressDuring("bienvenue", "1", after=0.2),))
        )
        record = await call.wait()
    row = await pool.fetchrow("SELECT * FROM ivr_calls WHERE did = $1", DID)
    assert row["flow_id"] == flow_id and row["flow_version"] == 1
    # No such queue on this PBX: the caller goes on to the voicemail, then hangs up.
    assert list(row["path"]) == ["menu_1", "calendar_1", "queue_1", "voicemail_1", "hangup_1"]
    assert row["outcome"] == "completed"
    assert ("EXEC", "Queue", "accueil,,,,300") in record.commands
    assert ("EXEC", "VoiceMail", "100,u") in record.commands

    # On a PBX whose "accueil" queue has an agent (who answers after 1.5 s and talks 4 s), the
    # next caller is connected: the call ends in the queue, answered.
    agent = MemberConfig("Local/agent1@agents/n", "Agent One", 0, "Local/agent1@agents")
    staffed = attrs.evolve(config, queues=(QueueConfig("accueil", members=(agent,)),))
    async with Simulator(staffed) as sim:
        call = await sim.inbound_call(
            did=DID, caller=Caller(dtmf=(PressDuring("bienvenue", "1", after=0.2),))
        )
        record = await call.wait()
    row = await pool.fetchrow("SELECT * FROM ivr_calls WHERE did = $1 ORDER BY id DESC", DID)
    assert list(row["path"]) == ["menu_1", "calendar_1", "queue_1"]
    assert row["outcome"] == "completed"
    assert record.variables["QUEUESTATUS"] == "" and record.duration >= 5.5  # talked
    assert await page.evaluate("window.hacked") is None
    assert errors == []


async def test_a_refused_publication_shows_the_problems_on_their_nodes(site, page):
    base, runtime = site
    await page.set_viewport_size(VIEWPORT)
    await log_in(page, base)
    await open_editor(page, base, "Incomplet")
    await drop(page, "answer", 60, 60)
    await drop(page, "queue", 360, 60)
    await drop(page, "hangup", 360, 300)
    panel = await select(page, "queue_1")
    await panel.locator('[name="queue"]').fill("accueil")
    await node(page, "queue_1").locator('.output[data-exit="timeout"]').wait_for()
    await connect(page, "answer_1", "next", "queue_1")

    await page.get_by_test_id("ivr-publish").click()
    await status_is(page, "Publication refusée")
    # The queue's required exits are left unwired; the hang-up cannot be reached.
    queue = node(page, "queue_1")
    assert "ivr-problem" in await queue.get_attribute("class")
    problems = " ".join(await queue.locator(".ivr-node-problems li").all_inner_texts())
    assert "'timeout'" in problems and "'full'" in problems and "'empty'" in problems
    assert "doit être connectée" in problems  # in the admin's language
    for exit_name, unwired in (("timeout", True), ("answered", False)):
        output = queue.locator(f'.output[data-exit="{exit_name}"]')
        assert ("ivr-problem-exit" in await output.get_attribute("class")) is unwired
    assert "ivr-problem" in await node(page, "hangup_1").get_attribute("class")
    assert "ivr-problem" not in await node(page, "answer_1").get_attribute("class")
    listed = page.get_by_test_id("ivr-problems").locator("li")
    assert await listed.count() == 4
    # A problem in the list leads to its node.
    await listed.filter(has_text="hangup_1").get_by_role("button").click()
    await page.get_by_test_id("ivr-node-panel").locator("code:text-is('hangup_1')").wait_for()
    assert (
        await runtime.database.pool.fetchval(
            "SELECT count(*) FROM flow_versions WHERE status = 'published'"
        )
        == 0
    )
    # The draft was saved all the same: reloading the page draws it again, problems fixed
    # by wiring the queue's exits to the hang-up, and then it publishes.
    await page.reload()
    await page.locator("#ivr-editor[data-ready=true]").wait_for()
    assert await page.locator(".connection").count() == 1
    for exit_name in ("timeout", "full", "empty"):
        await connect(page, "queue_1", exit_name, "hangup_1")
    await page.get_by_test_id("ivr-publish").click()
    await status_is(page, "Version 1 publiée")
    assert await page.get_by_test_id("ivr-problems").is_hidden()
    assert "ivr-problem" not in await queue.get_attribute("class")


async def test_two_editors_of_one_flow_conflict_instead_of_overwriting(site, page, browser):
    base, runtime = site
    pool = runtime.database.pool
    await page.set_viewport_size(VIEWPORT)
    await log_in(page, base)
    await open_editor(page, base, "Partagé")
    editor_url = page.url

    other = await (await browser.new_context(locale="fr-FR", viewport=VIEWPORT)).new_page()
    await other.goto(f"{base}/login")
    await other.get_by_label("Identifiant").fill("admin")
    await other.get_by_label("Mot de passe").fill(PASSWORD)
    await other.get_by_role("button", name="Se connecter").click()
    await other.wait_for_url(f"{base}/")
    await other.goto(editor_url)
    await other.locator("#ivr-editor[data-ready=true]").wait_for()

    await drop(page, "answer", 60, 60)
    await page.get_by_test_id("ivr-save").click()
    await status_is(page, "Brouillon enregistré")

    await drop(other, "hangup", 300, 60)
    await other.get_by_test_id("ivr-save").click()
    conflict = other.get_by_test_id("ivr-conflict")
    await conflict.wait_for()
    assert (await conflict.inner_text()).startswith("Quelqu’un d’autre a enregistré ce flux")
    draft = await saved_draft(pool, "Partagé")
    assert [n["id"] for n in draft["nodes"]] == ["answer_1"]
    assert await other.get_by_test_id("ivr-dirty").is_visible()  # nothing of theirs was lost

    # A supervisor sees the flow read-only: no save, no palette to drag from.
    await other.context.clear_cookies()
    await other.goto(f"{base}/login")
    await other.get_by_label("Identifiant").fill("super")
    await other.get_by_label("Mot de passe").fill(PASSWORD)
    await other.get_by_role("button", name="Se connecter").click()
    await other.goto(editor_url)
    await other.locator("#ivr-editor[data-ready=true]").wait_for()
    assert await other.get_by_test_id("ivr-save").count() == 0
    assert await other.get_by_test_id("palette-menu").is_disabled()
    await node(other, "answer_1").wait_for()
    await other.context.close()


async def test_a_webhook_secret_is_typed_once_then_only_its_mask_comes_back(site, page):
    base, runtime = site
    pool = runtime.database.pool
    await page.set_viewport_size(VIEWPORT)
    await log_in(page, base)
    await open_editor(page, base, "CRM")
    await drop(page, "webhook", 60, 60)
    panel = await select(page, "webhook_1")
    await panel.locator('[name="url"]').fill("https://crm.example/lookup")
    secrets = panel.locator("fieldset.schema-object").filter(has_text="En-têtes secrets")
    await secrets.get_by_role("button", name="Ajouter").click()
    await secrets.locator(".schema-key").fill("Authorization")
    value = secrets.locator(".schema-map-row input:not(.schema-key)")
    assert await value.get_attribute("type") == "password"
    await value.fill("Bearer s3cr3t")
    await page.get_by_test_id("ivr-save").click()
    await status_is(page, "Brouillon enregistré")

    async def stored():
        row = await pool.fetchrow(
            "SELECT v.graph::text AS graph, v.secrets FROM flow_versions v "
            "JOIN flows f ON f.id = v.flow_id WHERE f.name = 'CRM'"
        )
        assert "s3cr3t" not in row["graph"]
        token = row["secrets"]["webhook_1"]["secret_headers"]["Authorization"]
        return runtime.cipher.decrypt(token.encode()).value

    assert await stored() == "Bearer s3cr3t"
    # Reloaded, the page holds the mask, never the secret; saving it back keeps the value.
    await page.reload()
    await page.locator("#ivr-editor[data-ready=true]").wait_for()
    panel = await select(page, "webhook_1")
    value = panel.locator(".schema-map-row input:not(.schema-key)").last
    assert await value.input_value() == SECRET_MASK
    assert "s3cr3t" not in await page.content()
    await panel.locator('[name="timeout_s"]').fill("3")
    await page.get_by_test_id("ivr-save").click()
    await status_is(page, "Brouillon enregistré")
    assert await stored() == "Bearer s3cr3t"
    assert (await saved_draft(pool, "CRM"))["nodes"][0]["params"]["timeout_s"] == 3


class Survey(Node):
    """A third party's node: only Python, its schema and its French strings."""

    name = "acme_survey"
    label = "Satisfaction survey"
    description = "Ask the caller to rate the call."
    category = "input"
    waits_for_caller = True
    params_schema = {
        "type": "object",
        "required": ["question"],
        "additionalProperties": False,
        "properties": {
            "question": {"type": "string", "title": "Question prompt", "pattern": "^[a-z0-9-]+$"},
            "scale": {"type": "integer", "title": "Highest mark", "minimum": 2, "maximum": 9},
        },
    }
    exit_labels = {"rated": "Rated", "no_answer": "No answer"}

    def exits(self) -> tuple[str, ...]:
        return ("rated", "no_answer")

    async def run(self, ctx: CallContext) -> str:
        mark = await ctx.channel.get_data(self.params["question"], 5000, 1)
        return "rated" if mark.digits else "no_answer"


def install_survey(runtime) -> None:
    plugin = types.ModuleType("acme_survey")
    plugin.translations = {
        "fr": {
            "Satisfaction survey": "Enquête de satisfaction",
            "Ask the caller to rate the call.": "Demande à l’appelant de noter l’appel.",
            "Question prompt": "Annonce de la question",
            "Highest mark": "Note maximale",
            "Rated": "Noté",
            "No answer": "Sans réponse",
        }
    }

    @callcore.hookimpl
    def register_ivr_nodes(registry: NodeRegistry) -> None:
        registry.add(Survey)

    plugin.register_ivr_nodes = register_ivr_nodes
    assert runtime.plugins.register(plugin, "acme_survey"), runtime.plugins.failures


async def test_a_plugins_node_is_drawn_like_a_built_in_one_and_the_canvas_zooms_and_pans(
    site, page
):
    base, runtime = site
    install_survey(runtime)
    await page.set_viewport_size(VIEWPORT)
    await log_in(page, base)
    await open_editor(page, base, "Survey")
    item = page.get_by_test_id("palette-acme_survey")
    assert (await item.text_content()).strip() == "Enquête de satisfaction"
    survey = await drop(page, "acme_survey", 300, 200)
    assert "Enquête de satisfaction" in await survey.locator(".ivr-node-head").text_content()
    panel = await select(page, "acme_survey_1")
    await panel.get_by_text("Note maximale").wait_for()
    await panel.get_by_text("Annonce de la question").wait_for()
    # Its exits come from the API once the params fit its schema (the question is required).
    await panel.locator('[name="question"]').fill("rate-us")
    await survey.locator('.output[title="Sans réponse"]').wait_for()
    titles = [
        await output.get_attribute("title") for output in await survey.locator(".output").all()
    ]
    assert titles == ["Noté", "Sans réponse"]

    async def box():
        return await survey.bounding_box()

    async def changes(before, test):
        for _ in range(100):  # up to ~5 s on a loaded machine
            now = await box()
            if test(before, now):
                return now
            await page.wait_for_timeout(50)
        raise AssertionError(f"the node stayed at {now} (was {before})")

    start = await box()
    await page.locator("#ivr-zoom-in").click()
    bigger = await changes(start, lambda a, b: b["width"] > a["width"] * 1.05)
    await page.locator("#ivr-zoom-out").click()
    await page.locator("#ivr-zoom-out").click()
    await changes(bigger, lambda a, b: b["width"] < start["width"] * 0.95)
    await page.locator("#ivr-zoom-reset").click()
    reset = await changes(start, lambda a, b: abs(b["width"] - a["width"]) < 1)
    # Pan: drag the empty canvas; the node moves with it.
    canvas = await page.get_by_test_id("ivr-canvas").bounding_box()
    x, y = canvas["x"] + 40, canvas["y"] + canvas["height"] - 40
    await page.mouse.move(x, y)
    await page.mouse.down()
    await page.mouse.move(x + 120, y - 60, steps=6)
    await page.mouse.up()
    moved = await box()
    assert abs(moved["x"] - reset["x"] - 120) < 2 and abs(moved["y"] - reset["y"] + 60) < 2
    assert (moved["width"], moved["height"]) == (reset["width"], reset["height"])
