// The users and groups pages (admin_users.py): forms that write through the JSON API.
//
//   <section data-record data-url="/api/v1/users/5" data-etag='"3"' data-list="/agents/users"
//            data-saved="(translated)" data-conflict="(translated)">
//     <form data-action="save|create|reset|toggle|delete" data-method="PATCH" [data-path="/password"]
//           [data-confirm="(translated)"]>
//       <input data-field="/display_name"> ...  <p data-form-error hidden></p>
//     </form>
//     <article data-password hidden><code data-password-value></code><a data-password-link></a></article>
//   </section>
//
// Every form of a record sends If-Match with the version the page holds, and each answer
// updates it. A stale version (412) shows data-conflict; other problems land on the form's
// fields (callcore.js showProblem). A generated password (create, reset) is shown once.

import { ProblemError, fetchJSON, toast } from "/static/callcore.js";

/** A field's value as the API types it: data-type "ids" (a multiple select: numbers),
 *  "bool" (a hidden input: "true"/"false"), "optional" (text: empty is null). */
function fieldValue(input) {
  const type = input.dataset.type;
  if (type === "ids") return [...input.selectedOptions].map((option) => Number(option.value));
  if (type === "bool") return input.value === "true";
  if (input.type === "checkbox") return input.checked;
  if (type === "optional" && input.value.trim() === "") return null;
  return input.value;
}

function formBody(form) {
  const fields = [...form.querySelectorAll("[data-field]")].filter((input) => !input.disabled);
  if (fields.length === 0) return undefined;
  return Object.fromEntries(fields.map((input) => [input.dataset.field.slice(1), fieldValue(input)]));
}

function showPassword(record, user) {
  const panel = record.querySelector("[data-password]");
  panel.querySelector("[data-password-value]").textContent = user.password;
  const link = panel.querySelector("[data-password-link]");
  if (link) link.href = `${record.dataset.list}/${user.id}`;
  panel.hidden = false;
}

async function submit(record, form) {
  const action = form.dataset.action;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) return;
  const headers = record.dataset.etag ? { "If-Match": record.dataset.etag } : {};
  const url = record.dataset.url + (form.dataset.path || "");
  form.setAttribute("aria-busy", "true");
  try {
    const answer = await fetchJSON(url, {
      method: form.dataset.method,
      body: formBody(form),
      headers,
      form,
    });
    if (answer && answer.version !== undefined) record.dataset.etag = `"${answer.version}"`;
    if (action === "delete") window.location.assign(record.dataset.list);
    else if (action === "toggle") window.location.reload();
    else if (answer && answer.password) {
      if (action === "create") form.hidden = true;
      showPassword(record, answer);
    } else if (action === "create") window.location.assign(`${record.dataset.list}/${answer.id}`);
    else toast(record.dataset.saved);
  } catch (error) {
    if (error instanceof ProblemError && error.status === 412) {
      const general = form.querySelector("[data-form-error]");
      general.textContent = record.dataset.conflict;
      general.hidden = false;
    }
  } finally {
    form.removeAttribute("aria-busy");
  }
}

for (const record of document.querySelectorAll("[data-record]")) {
  for (const form of record.querySelectorAll("form[data-action]")) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      submit(record, form);
    });
  }
}
