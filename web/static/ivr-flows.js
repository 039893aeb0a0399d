// The IVR flows list page: rows from GET /api/v1/ivr-flows (page by page, with the loading,
// empty and error states), a new flow (POST) and an import (POST .../import of an export
// file, renamed if asked); both open the new flow's editor. User data is only ever set as text.

import { ProblemError, errorState, fetchJSON, showProblem } from "/static/callcore.js";

const list = document.getElementById("ivr-flows");
const strings = JSON.parse(document.getElementById("ivr-flows-strings").textContent);
const API = "/api/v1/ivr-flows";
const PAGE_SIZE = 50;

function format(template, values) {
  return template.replace(/%\((\w+)\)s/g, (_, key) => String(values[key] ?? ""));
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function editorUrl(flow) {
  return `${list.dataset.editorUrl}/${flow.id}`;
}

function row(flow) {
  const state = [flow.published_version == null ? strings.not_published
    : format(strings.published_version, { number: flow.published_version })];
  if (flow.is_fallback) state.push(strings.fallback);
  if (strings.emergency_modes[flow.emergency_mode]) {
    state.push(strings.emergency_modes[flow.emergency_mode]);
  }
  return el("tr", { "data-testid": `flow-${flow.name}` },
    el("td", {}, el("a", { href: editorUrl(flow), textContent: flow.name })),
    el("td", { textContent: flow.description || "" }),
    el("td", { textContent: state.join(" · ") }));
}

async function load(cursor, body) {
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (cursor) query.set("cursor", cursor);
  const page = await fetchJSON(`${API}?${query}`);
  if (!body) {
    if (!page.items.length) {
      list.replaceChildren(el("p", { className: "empty-state", "data-state": "empty",
        textContent: strings.empty }));
      return;
    }
    body = el("tbody");
    const head = el("thead", {}, el("tr", {},
      ...[strings.name, strings.description, strings.state].map((text) =>
        el("th", { scope: "col", textContent: text }))));
    list.replaceChildren(el("div", { className: "overflow-auto" },
      el("table", { className: "striped" }, head, body)));
  }
  body.append(...page.items.map(row));
  if (page.next_cursor) {
    const more = el("button", { type: "button", className: "outline", textContent: strings.more });
    const holder = el("tr", {}, el("td", { colSpan: 3 }, more));
    more.addEventListener("click", async () => {
      more.setAttribute("aria-busy", "true");
      try {
        await load(page.next_cursor, body);
        holder.remove();
      } catch {
        more.removeAttribute("aria-busy");
      }
    });
    body.append(holder);
  }
}

async function submit(form, makeBody, url) {
  const button = form.querySelector("button[type=submit]");
  button.setAttribute("aria-busy", "true");
  button.disabled = true;
  try {
    const body = await makeBody();
    if (body === null) return;
    const flow = await fetchJSON(url, { method: "POST", body, form });
    window.location.assign(editorUrl(flow));
  } catch (error) {
    if (!(error instanceof ProblemError)) throw error; // the toast already said it
  } finally {
    button.removeAttribute("aria-busy");
    button.disabled = false;
  }
}

const create = document.getElementById("new-flow-form");
create?.addEventListener("submit", (event) => {
  event.preventDefault();
  submit(create, async () => ({
    name: create.elements.name.value.trim(),
    description: create.elements.description.value.trim(),
    is_fallback: create.elements.is_fallback.checked,
  }), API);
});

const upload = document.getElementById("import-flow-form");
upload?.addEventListener("submit", (event) => {
  event.preventDefault();
  submit(upload, async () => {
    const file = upload.elements.file.files[0];
    let exported;
    try {
      exported = JSON.parse(await file.text());
    } catch {
      exported = null;
    }
    if (typeof exported !== "object" || exported === null || Array.isArray(exported)) {
      showProblem(upload, { detail: strings.bad_file });
      return null;
    }
    const name = upload.elements.name.value.trim();
    return name ? { ...exported, name } : exported; // a taken name is refused: rename it here
  }, `${API}/import`);
});

load().catch((error) => list.replaceChildren(errorState(error)));
