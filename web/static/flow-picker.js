// The IVR flow picker of the DID form: a <select data-flow-picker> whose options are the flows
// of GET /api/v1/ivr-flows (every page of them), each saying whether it is published, with a
// link to the chosen flow's editor. The page renders the "fallback flow" option and the DID's
// current flow, so the form stays right while the list loads or if it cannot be loaded.

import { fetchJSON } from "/static/callcore.js";

const MAX_PAGES = 20;

async function allFlows() {
  const flows = [];
  let cursor = null;
  for (let page = 0; page < MAX_PAGES; page += 1) {
    const query = new URLSearchParams({ limit: "100" });
    if (cursor) query.set("cursor", cursor);
    const answer = await fetchJSON(`/api/v1/ivr-flows?${query}`);
    flows.push(...answer.items);
    cursor = answer.next_cursor;
    if (!cursor) break;
  }
  return flows.sort((a, b) => a.name.localeCompare(b.name));
}

function showLink(select, link) {
  link.hidden = select.value === "";
  link.href = `${link.dataset.editorUrl}/${select.value}`;
}

async function fill(select) {
  const status = document.getElementById(select.dataset.statusId);
  const link = document.getElementById(select.dataset.linkId);
  const chosen = select.value;
  select.setAttribute("aria-busy", "true");
  select.addEventListener("change", () => showLink(select, link));
  showLink(select, link);
  try {
    const flows = await allFlows();
    const fallback = select.options[0];
    const options = flows.map((flow) => {
      const option = document.createElement("option");
      option.value = String(flow.id);
      option.textContent = flow.published_version == null
        ? `${flow.name} — ${select.dataset.notPublished}`
        : flow.name;
      option.selected = option.value === chosen;
      return option;
    });
    select.replaceChildren(fallback, ...options); // a flow no longer listed: the fallback
    status.textContent = flows.length ? "" : select.dataset.noFlows;
  } catch {
    status.textContent = select.dataset.loadFailed;
  } finally {
    select.removeAttribute("aria-busy");
    showLink(select, link);
  }
}

for (const select of document.querySelectorAll("select[data-flow-picker]")) fill(select);
