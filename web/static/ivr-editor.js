// The IVR flow editor page: palette, canvas, node settings, problems, versions, test call.
//
// Everything goes through the JSON API (/api/v1/ivr-nodes, /api/v1/ivr-flows/{id}...): the
// palette is the node catalog (a plugin's node appears with no change here), a node's outputs
// are the exits the API computes from its params, the draft is saved with If-Match (a 412
// means someone else saved first: the page says so and keeps the local graph), and problems
// from saving, checking or publishing are marked on their nodes and listed. Translated
// strings come from the page (#ivr-strings); user data is only ever set as text.

import { ProblemError, errorState, fetchJSON, showProblem, toast } from "/static/callcore.js";
import { FlowCanvas } from "/static/ivr-canvas.js";
import { defaults, schemaForm } from "/static/schema-form.js";

const root = document.getElementById("ivr-editor");
const strings = JSON.parse(document.getElementById("ivr-strings").textContent);
const flowUrl = root.dataset.flowUrl;
const readOnly = root.dataset.readonly === "true";
const NODE_MIME = "application/x-callcore-node";
const CATEGORY_ORDER = ["call", "media", "input", "logic", "routing"];
const EMPTY_GRAPH = { entry: null, nodes: [], edges: [] };
const PARAMS_DELAY_MS = 350;

const state = {
  flow: null,
  etag: null,
  catalog: new Map(), // node type name -> catalog item
  exitsCache: new Map(), // type + params JSON -> exits
  dirty: false,
  problems: [],
  selected: null,
  form: null,
};
let canvas = null;

const $ = (selector) => root.querySelector(selector);

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key] ?? ""));
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("data-") || key.startsWith("aria-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function say(message, kind = "info") {
  const status = $("#ivr-status");
  status.textContent = message;
  status.dataset.kind = kind;
}

function etagOf(meta, flow) {
  return meta.etag || (flow && flow.version !== undefined ? `"${flow.version}"` : state.etag);
}

function describe(type) {
  const item = state.catalog.get(type);
  if (!item) return null;
  const label = (exit) => item.exit_labels?.[exit] ?? strings.exit_names[exit] ?? exit;
  return { label: item.label, exitLabel: label };
}

/** A params-relative path from an API field ("/params/options/1", "params/x", "params"). */
function paramsPath(field) {
  return String(field || "").replace(/^\//, "").replace(/^params(\/|$)/, "");
}

// --- API -----------------------------------------------------------------------------------

async function exitsOf(type, params) {
  const key = `${type}\u0000${JSON.stringify(params)}`;
  if (!state.exitsCache.has(key)) {
    const url = `/api/v1/ivr-nodes/${encodeURIComponent(type)}/exits`;
    const answer = await fetchJSON(url, { method: "POST", body: { params } });
    state.exitsCache.set(key, answer.exits);
  }
  return state.exitsCache.get(key);
}

/** Exits of a stored node: the API's, else (unknown type, invalid params) the wired ones. */
async function storedExits(node, graph) {
  if (state.catalog.has(node.type)) {
    try {
      return await exitsOf(node.type, node.params ?? {});
    } catch (error) {
      if (!(error instanceof ProblemError)) throw error;
    }
  }
  const wired = graph.edges.filter((edge) => edge.from === node.id).map((edge) => edge.exit);
  return [...new Set(wired)];
}

async function write(url, { method = "POST", body, conditional = true } = {}) {
  const meta = {};
  const headers = conditional ? { "If-Match": state.etag } : {};
  try {
    const answer = await fetchJSON(url, { method, body, headers, meta });
    if (conditional || answer?.version !== undefined) state.etag = etagOf(meta, answer);
    return answer;
  } catch (error) {
    if (error instanceof ProblemError && error.status === 412) conflict();
    throw error;
  }
}

function conflict() {
  const alert = $("#ivr-conflict");
  alert.textContent = strings.conflict;
  alert.hidden = false;
  say(strings.conflict, "error");
}

// --- page state ----------------------------------------------------------------------------

function setDirty(dirty) {
  state.dirty = dirty;
  $("#ivr-dirty").hidden = !dirty;
}

function showFlow(flow) {
  state.flow = flow;
  $("#ivr-flow-name").textContent = flow.name;
  const published = flow.published_version;
  $("#ivr-published").textContent = published == null
    ? strings.not_published
    : format(strings.published_version, { number: published });
  $("#ivr-fallback").hidden = !flow.is_fallback;
  const emergency = $("#ivr-emergency");
  emergency.hidden = !flow.emergency_mode || flow.emergency_mode === "none";
  emergency.textContent = strings.emergency_modes[flow.emergency_mode] ?? flow.emergency_mode;
}

function showProblems(problems) {
  state.problems = problems;
  canvas.showProblems(problems);
  const section = $("#ivr-problems");
  const list = section.querySelector("ul");
  list.replaceChildren(...problems.map((problem) => {
    const record = problem.node ? canvas.byId(problem.node) : null;
    const text = problem.message;
    const item = el("li", { "data-code": problem.code });
    if (record) {
      const button = el("button", { type: "button", className: "secondary outline" },
        record.label || record.id);
      button.addEventListener("click", () => canvas.focus(record));
      item.append(button, " ", text);
    } else {
      item.append(text);
    }
    return item;
  }));
  section.hidden = problems.length === 0;
  if (state.selected && state.form) showFieldProblems(state.selected);
}

function showFieldProblems(record) {
  const errors = state.problems
    .filter((p) => p.node === record.id && String(p.field || "").startsWith("params"))
    .map((p) => ({ path: paramsPath(p.field), message: p.message }));
  state.form.showErrors(errors);
}

// --- the node panel ------------------------------------------------------------------------

function renderPanel(record) {
  state.selected = record;
  state.form = null;
  const panel = $("#ivr-panel");
  if (!record) {
    panel.replaceChildren(el("p", { className: "empty-state", "data-state": "empty",
      textContent: readOnly ? strings.select_node_readonly : strings.select_node }));
    return;
  }
  const item = state.catalog.get(record.type);
  const box = el("fieldset", { disabled: readOnly, "data-testid": "ivr-node-panel" });
  box.append(
    el("h2", { textContent: item ? item.label : record.type }),
    el("p", {}, el("code", { textContent: record.id })),
  );
  if (item?.description) box.append(el("p", { className: "ivr-help", textContent: item.description }));
  const label = el("input", { type: "text", name: "node-label", maxLength: 200,
    value: record.label, placeholder: record.id });
  label.addEventListener("input", () => canvas.setLabel(record, label.value.trim()));
  box.append(el("label", {}, strings.node_label, label));
  if (canvas.entry === record.id) {
    box.append(el("p", { className: "ivr-entry-note", textContent: strings.is_entry }));
  } else {
    const entry = el("button", { type: "button", className: "outline",
      textContent: strings.set_entry, "data-testid": "set-entry" });
    entry.addEventListener("click", () => {
      canvas.setEntry(record);
      renderPanel(record);
    });
    box.append(el("p", {}, entry));
  }
  if (item) {
    state.form = schemaForm(item.params_schema, record.params, strings.form);
    const params = el("form", { className: "ivr-params", "data-testid": "ivr-params" },
      state.form.element);
    params.addEventListener("submit", (event) => event.preventDefault());
    params.addEventListener("input", () => paramsEdited(record));
    params.addEventListener("change", () => paramsEdited(record));
    box.append(params);
    showFieldProblems(record);
  } else {
    box.append(el("p", { role: "alert", textContent: format(strings.unknown_type,
      { type: record.type }) }));
  }
  box.append(el("div", { id: "ivr-exits" }));
  if (!readOnly) {
    const remove = el("button", { type: "button", className: "secondary",
      textContent: strings.delete_node, "data-testid": "delete-node" });
    remove.addEventListener("click", () => canvas.removeNode(record));
    box.append(remove);
  }
  panel.replaceChildren(box);
  renderExits(record);
}

/** The exits of the selected node, each with where it leads (a keyboard way to connect). */
function renderExits(record) {
  const holder = $("#ivr-exits");
  if (!holder || state.selected !== record) return;
  const info = describe(record.type);
  const others = [...canvas.nodes.values()].filter((node) => node !== record);
  const rows = record.exits.map((exit) => {
    const select = el("select", { name: `exit-${exit}`, "data-exit": exit });
    select.append(el("option", { value: "", textContent: strings.not_connected }));
    const target = canvas.target(record, exit);
    for (const node of [record, ...others]) {
      const text = node.label ? `${node.label} (${node.id})` : node.id;
      select.append(el("option", { value: node.id, textContent: text,
        selected: target === node }));
    }
    select.addEventListener("change", () => {
      canvas.connect(record, exit, canvas.byId(select.value));
    });
    return el("label", {}, info ? info.exitLabel(exit) : exit, select);
  });
  const none = record.exitsPending ? strings.exits_pending : strings.no_exits;
  holder.replaceChildren(
    el("h3", { textContent: strings.exits }),
    ...(rows.length ? rows : [el("p", { className: "ivr-help", textContent: none })]),
  );
}

function paramsEdited(record) {
  if (readOnly || state.selected !== record || !state.form) return;
  canvas.setParams(record, state.form.read());
  clearTimeout(record.timer); // a node's exits are asked for once its edits pause
  record.timer = setTimeout(() => refreshExits(record), PARAMS_DELAY_MS);
}

async function refreshExits(record) {
  const params = record.params;
  try {
    const exits = await exitsOf(record.type, params);
    if (record.params !== params || !canvas.nodes.has(record.dfId)) return; // edited again
    if (state.selected === record) state.form.clearErrors();
    record.exitsPending = false;
    canvas.setExits(record, exits);
    renderExits(record);
  } catch (error) {
    if (!(error instanceof ProblemError) || state.selected !== record) return;
    state.form.showErrors((error.problem.errors || []).map((e) => ({
      path: paramsPath(e.field), message: e.message })));
  }
}

// --- palette and canvas --------------------------------------------------------------------

function buildPalette(items) {
  const palette = $("#ivr-palette-groups");
  if (!items.length) {
    palette.replaceChildren(el("p", { className: "empty-state", "data-state": "empty",
      textContent: strings.no_node_types }));
    return;
  }
  const groups = new Map();
  for (const item of items) {
    if (!groups.has(item.category)) groups.set(item.category, []);
    groups.get(item.category).push(item);
  }
  const rank = (category) => {
    const index = CATEGORY_ORDER.indexOf(category);
    return index < 0 ? CATEGORY_ORDER.length : index;
  };
  const categories = [...groups.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  palette.replaceChildren(...categories.map((category) => {
    const buttons = groups.get(category).map((item) => {
      const button = el("button", { type: "button", className: "outline ivr-palette-item",
        draggable: !readOnly, disabled: readOnly, title: item.description || "",
        textContent: item.label, "data-type": item.name, "data-testid": `palette-${item.name}` });
      button.addEventListener("dragstart", (event) => {
        event.dataTransfer.setData(NODE_MIME, item.name);
        event.dataTransfer.setData("text/plain", item.label);
        event.dataTransfer.effectAllowed = "copy";
      });
      button.addEventListener("click", () => addNode(item.name, canvas.visibleCentre()));
      return el("li", {}, button);
    });
    const title = strings.categories[category] ?? category;
    return el("section", { className: "ivr-palette-group" },
      el("h3", { textContent: title }), el("ul", {}, ...buttons));
  }));
}

async function addNode(type, position) {
  const item = state.catalog.get(type);
  if (!item || readOnly) return;
  const params = defaults(item.params_schema);
  let exits = null;
  try {
    exits = await exitsOf(type, params);
  } catch (error) {
    if (!(error instanceof ProblemError)) return; // its required settings are not filled in yet
  }
  const record = canvas.addNode({ id: canvas.freshId(type), type, params, position }, exits ?? []);
  record.exitsPending = exits === null;
  canvas.select(record);
}

function wireCanvas(container) {
  canvas = new FlowCanvas(container, {
    describe,
    strings: { start: strings.start, unknownType: strings.unknown },
    readOnly,
  });
  canvas.addEventListener("change", () => {
    setDirty(true);
    if (state.selected) renderExits(state.selected);
  });
  canvas.addEventListener("select", (event) => {
    if (event.detail !== state.selected) renderPanel(event.detail);
  });
  canvas.addEventListener("removed", (event) => {
    if (state.selected === event.detail) renderPanel(null);
  });
  container.addEventListener("dragover", (event) => {
    if (event.dataTransfer.types.includes(NODE_MIME)) {
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
    }
  });
  container.addEventListener("drop", (event) => {
    const type = event.dataTransfer.getData(NODE_MIME);
    if (!type) return;
    event.preventDefault();
    const point = canvas.canvasPoint(event.clientX, event.clientY);
    addNode(type, { x: Math.round(point.x - 20), y: Math.round(point.y - 20) });
  });
}

async function drawGraph(graph) {
  const exits = new Map();
  await Promise.all(graph.nodes.map(async (node) => {
    exits.set(node.id, await storedExits(node, graph));
  }));
  canvas.load(graph, (node) => exits.get(node.id));
  renderPanel(null);
  showProblems([]);
  canvas.showPath([]);
  setDirty(false);
}

/** The graph to edit: the draft, else the published version (saving makes a new draft). */
async function graphOf(flow) {
  if (flow.draft) return flow.draft.graph;
  if (flow.published_version == null) return EMPTY_GRAPH;
  return (await fetchJSON(`${flowUrl}/versions/${flow.published_version}`)).graph;
}

// --- toolbar actions -----------------------------------------------------------------------

async function busy(button, work) {
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = false;
  }
}

async function saveDraft() {
  try {
    const flow = await write(`${flowUrl}/draft`, { method: "PUT", body: { graph: canvas.graph() } });
    showFlow(flow);
    setDirty(false);
    showProblems(flow.problems || []);
    say(flow.problems?.length ? strings.saved_with_problems : strings.saved);
    return true;
  } catch (error) {
    if (error instanceof ProblemError && error.status !== 412) {
      if (error.problem.problems) showProblems(error.problem.problems);
      say(error.problem.detail || error.problem.title || strings.failed, "error");
    }
    return false;
  }
}

async function check() {
  try {
    const answer = await write(`${flowUrl}/validate`, {
      body: { graph: canvas.graph() }, conditional: false });
    showProblems(answer.problems);
    say(answer.valid ? strings.valid : strings.invalid, answer.valid ? "info" : "error");
  } catch (error) {
    if (error instanceof ProblemError) say(error.problem.detail || strings.failed, "error");
  }
}

async function publish() {
  if (state.dirty && !(await saveDraft())) return;
  try {
    const flow = await write(`${flowUrl}/publish`, { body: {} });
    showFlow(flow);
    showProblems([]);
    say(format(strings.published, { number: flow.published_version }));
  } catch (error) {
    if (!(error instanceof ProblemError) || error.status === 412) return;
    showProblems(error.problem.problems || []);
    say(error.problem.problems?.length ? strings.publish_refused
      : error.problem.detail || strings.failed, "error");
  }
}

async function exportFlow() {
  const data = await fetchJSON(`${flowUrl}/export`);
  const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
  const link = el("a", { href: URL.createObjectURL(blob),
    download: `${state.flow.name.replace(/[^\w-]+/g, "_") || "flow"}.json` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

async function openVersions() {
  const dialog = $("#ivr-versions");
  const body = dialog.querySelector("[data-versions]");
  body.replaceChildren(el("p", { "aria-busy": "true", "data-state": "loading",
    textContent: strings.loading }));
  dialog.showModal();
  try {
    const { items } = await fetchJSON(`${flowUrl}/versions`);
    if (!items.length) {
      body.replaceChildren(el("p", { className: "empty-state", "data-state": "empty",
        textContent: strings.no_versions }));
      return;
    }
    const lang = document.documentElement.lang;
    const rows = items.map((version) => {
      const when = version.published_at || version.created_at;
      const cells = [
        el("td", { textContent: format(strings.version, { number: version.version_number }) }),
        el("td", { textContent: strings.statuses[version.status] ?? version.status }),
        el("td", { textContent: when ? new Date(when).toLocaleString(lang) : "" }),
        el("td", { textContent: version.created_by_username || "" }),
        el("td", { textContent: version.note || "" }),
      ];
      const action = el("td");
      if (!readOnly && version.status === "archived") {
        const restore = el("button", { type: "button", className: "outline",
          textContent: strings.rollback, "data-testid": `rollback-${version.version_number}` });
        restore.addEventListener("click", () => rollback(version.version_number, restore));
        action.append(restore);
      }
      return el("tr", { "data-testid": `version-${version.version_number}` }, ...cells, action);
    });
    body.replaceChildren(el("table", { className: "striped" }, el("tbody", {}, ...rows)));
  } catch (error) {
    body.replaceChildren(errorState(error));
  }
}

/** Publish an archived version again (as a new version); the draft, if any, stays. */
async function rollback(number, button) {
  await busy(button, async () => {
    try {
      const flow = await write(`${flowUrl}/rollback`, { body: { version_number: number } });
      $("#ivr-versions").close();
      showFlow(flow);
      say(format(strings.rolled_back, { number, published: flow.published_version }));
    } catch (error) {
      if (error instanceof ProblemError && error.status !== 412) {
        say(error.problem.detail || strings.failed, "error");
      }
    }
  });
}

// --- test call -----------------------------------------------------------------------------

function describeEffect(effect) {
  if (typeof effect !== "object" || effect === null) return String(effect);
  return Object.entries(effect)
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(", ");
}

async function testCall(form) {
  const data = new FormData(form);
  const body = {
    digits: String(data.get("digits") || "").split(/[\s,]+/).filter(Boolean),
    caller_id: String(data.get("caller_id") || ""),
    language: String(data.get("language") || document.documentElement.lang),
    graph: canvas.graph(), // what is on the canvas, saved or not
  };
  if (data.get("did")) body.did = String(data.get("did"));
  if (data.get("at")) body.at = new Date(String(data.get("at"))).toISOString();
  const result = $("#ivr-test-result");
  result.replaceChildren(el("p", { "aria-busy": "true", textContent: strings.loading }));
  try {
    const run = await fetchJSON(`${flowUrl}/dry-run`, { method: "POST", body, form });
    canvas.showPath(run.path);
    const steps = run.path.map((step) => {
      const record = canvas.byId(step.node);
      const name = record?.label || step.node;
      const exit = step.exit ? ` → ${describe(step.type)?.exitLabel(step.exit) ?? step.exit}` : "";
      return el("li", { textContent: `${name} (${describe(step.type)?.label ?? step.type})${exit}` });
    });
    const effects = (run.effects || []).map((effect) => el("li", { textContent: describeEffect(effect) }));
    const variables = Object.entries(run.variables || {}).map(([key, value]) =>
      el("li", {}, el("code", { textContent: key }), ` = ${JSON.stringify(value)}`));
    result.replaceChildren(
      el("p", { "data-testid": "ivr-test-outcome" }, strings.outcome, " ",
        el("strong", { textContent: strings.outcomes[run.outcome] ?? run.outcome })),
      el("h3", { textContent: strings.path }),
      el("ol", { "data-testid": "ivr-test-path" }, ...steps),
      el("h3", { textContent: strings.effects }),
      effects.length ? el("ul", { "data-testid": "ivr-test-effects" }, ...effects)
        : el("p", { className: "empty-state", textContent: strings.no_effects }),
      ...(variables.length ? [el("h3", { textContent: strings.variables }), el("ul", {}, ...variables)] : []),
      el("details", {}, el("summary", { textContent: strings.commands }),
        el("pre", { textContent: (run.commands || []).join("\n") })),
    );
  } catch (error) {
    result.replaceChildren();
    if (!(error instanceof ProblemError)) return;
    if (error.problem.problems) showProblems(error.problem.problems);
  }
}

// --- flow settings -------------------------------------------------------------------------

function openSettings() {
  const dialog = $("#ivr-settings");
  const form = dialog.querySelector("form");
  const flow = state.flow;
  form.elements.name.value = flow.name;
  form.elements.description.value = flow.description || "";
  form.elements.is_fallback.checked = Boolean(flow.is_fallback);
  form.elements.emergency_mode.value = flow.emergency_mode || "none";
  form.elements.emergency_message.value = flow.emergency_message || "";
  dialog.showModal();
}

async function saveSettings(form) {
  const body = {
    name: form.elements.name.value.trim(),
    description: form.elements.description.value,
    is_fallback: form.elements.is_fallback.checked,
    emergency_mode: form.elements.emergency_mode.value,
    emergency_message: form.elements.emergency_message.value.trim(),
  };
  try {
    const meta = {};
    const flow = await fetchJSON(flowUrl, { method: "PATCH", body, form, meta,
      headers: { "If-Match": state.etag } });
    state.etag = etagOf(meta, flow);
    showFlow(flow);
    form.closest("dialog").close();
    say(strings.settings_saved);
  } catch (error) {
    if (error instanceof ProblemError && error.status === 412) {
      showProblem(form, { detail: strings.conflict });
      conflict();
    }
  }
}

async function deleteFlow(form) {
  if (!window.confirm(format(strings.delete_confirm, { name: state.flow.name }))) return;
  try {
    await fetchJSON(flowUrl, { method: "DELETE", form, headers: { "If-Match": state.etag } });
    setDirty(false);
    window.location.assign(`${root.dataset.listUrl}?done=deleted`);
  } catch (error) {
    if (error instanceof ProblemError && error.status === 412) {
      showProblem(form, { detail: strings.conflict });
      conflict();
    }
  }
}

// --- start ---------------------------------------------------------------------------------

async function reload() {
  const meta = {};
  const flow = await fetchJSON(flowUrl, { meta });
  state.etag = etagOf(meta, flow);
  showFlow(flow);
  await drawGraph(await graphOf(flow));
}

function bindToolbar() {
  const on = (id, handler) => {
    const button = $(`#${id}`);
    button?.addEventListener("click", () => busy(button, handler));
  };
  on("ivr-save", saveDraft);
  on("ivr-check", check);
  on("ivr-publish", publish);
  on("ivr-export", exportFlow);
  $("#ivr-zoom-in").addEventListener("click", () => canvas.zoom(1));
  $("#ivr-zoom-out").addEventListener("click", () => canvas.zoom(-1));
  $("#ivr-zoom-reset").addEventListener("click", () => canvas.zoom(0));
  $("#ivr-open-versions").addEventListener("click", openVersions);
  $("#ivr-open-settings")?.addEventListener("click", openSettings);
  for (const close of root.querySelectorAll("[data-close]")) {
    close.addEventListener("click", () => close.closest("dialog").close());
  }
  const settings = $("#ivr-settings form");
  settings?.addEventListener("submit", (event) => {
    event.preventDefault();
    saveSettings(settings);
  });
  $("#ivr-delete-flow")?.addEventListener("click", () => deleteFlow(settings));
  const test = $("#ivr-test-form");
  test?.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = test.querySelector("button[type=submit]");
    busy(button, () => testCall(test));
  });
  window.addEventListener("beforeunload", (event) => {
    if (!state.dirty) return;
    event.preventDefault();
    event.returnValue = ""; // the browser asks before leaving unsaved changes
  });
}

async function start() {
  try {
    const { items } = await fetchJSON("/api/v1/ivr-nodes");
    for (const item of items) state.catalog.set(item.name, item);
    wireCanvas($("#ivr-canvas"));
    buildPalette(items);
    bindToolbar();
    $("#ivr-workspace").hidden = false; // drawflow measures what it draws: it must be shown
    await reload();
    $("[data-state=loading]").remove();
    root.dataset.ready = "true";
  } catch (error) {
    $("#ivr-workspace").hidden = true;
    $("[data-state=loading]").replaceWith(errorState(error));
    if (!(error instanceof ProblemError)) toast(strings.failed, "error");
  }
}

start();
