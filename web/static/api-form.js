// Forms that write one resource of the JSON API, for the admin pages. The page renders:
//
//   <form data-api-form data-method="PUT" data-url="/api/v1/things/5" data-etag='"3"'
//         data-done="/page?done=saved" data-deleted="/page?done=deleted"
//         data-conflict="(translated message for a stale version)">
//     <input data-field="/label/fr" ...>            (the field() macro sets data-field)
//     <button type="button" data-delete data-confirm="Delete it?">
//
// Each enabled element with data-field becomes that JSON pointer of the body: checkboxes as
// booleans, number inputs and data-type="integer" selects as numbers, anything else as text.
// The API's problem+json errors land next to their inputs (callcore.js showProblem); a stale
// version (412) shows data-conflict instead. On success the browser goes to data-done (or
// data-deleted), where the page shows what happened.

import { ProblemError, fetchJSON } from "/static/callcore.js";

function setPointer(body, pointer, value) {
  const keys = pointer.split("/").slice(1);
  let target = body;
  for (const key of keys.slice(0, -1)) target = target[key] ??= {};
  target[keys.at(-1)] = value;
}

/**
 * The JSON body a form stands for. Beyond the defaults above, data-type says how to read a
 * value: "set" (checkboxes sharing one pointer: the array of the checked ones' values), "list"
 * (text: the array of its comma- or space-separated items), "optional" (text: empty is null),
 * "keep-if-empty" (empty is omitted: a write-only secret stays as stored) and "null-if-checked"
 * (a checkbox that, when checked, sends null at its pointer: "remove the password").
 */
export function formBody(form) {
  const body = {};
  const sets = new Map();
  for (const input of form.querySelectorAll("[data-field]")) {
    if (input.disabled || input.closest("fieldset:disabled")) continue;
    const type = input.dataset.type;
    let value = input.value;
    if (type === "set") {
      if (!sets.has(input.dataset.field)) sets.set(input.dataset.field, []);
      if (input.checked) sets.get(input.dataset.field).push(value);
      continue;
    } else if (type === "null-if-checked") {
      if (!input.checked) continue;
      value = null;
    } else if (input.type === "checkbox") value = input.checked;
    else if (input.type === "number" || type === "integer" || type === "keep-if-empty") {
      if (value.trim() === "") continue; // omitted: the API applies its default
      if (type !== "keep-if-empty") value = Number(value);
    } else if (type === "list") value = value.split(/[\s,]+/).filter(Boolean);
    else if (type === "optional" && value.trim() === "") value = null;
    setPointer(body, input.dataset.field, value);
  }
  for (const [pointer, values] of sets) setPointer(body, pointer, values);
  return body;
}

function showConflict(form) {
  const general = form.querySelector("[data-form-error]");
  general.textContent = form.dataset.conflict;
  general.hidden = false;
}

async function send(form, method, body, next) {
  const headers = form.dataset.etag ? { "If-Match": form.dataset.etag } : {};
  const buttons = form.querySelectorAll("button");
  for (const button of buttons) button.disabled = true;
  form.setAttribute("aria-busy", "true");
  try {
    await fetchJSON(form.dataset.url, { method, body, headers, form });
    window.location.assign(next);
  } catch (error) {
    // fetchJSON already showed the problem on the form, or a toast when unreachable.
    if (error instanceof ProblemError && error.status === 412 && form.dataset.conflict) {
      showConflict(form);
    }
    for (const button of buttons) button.disabled = false;
  } finally {
    form.removeAttribute("aria-busy");
  }
}

for (const form of document.querySelectorAll("form[data-api-form]")) {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send(form, form.dataset.method, formBody(form), form.dataset.done);
  });
  for (const button of form.querySelectorAll("[data-delete]")) {
    button.addEventListener("click", () => {
      if (window.confirm(button.dataset.confirm)) {
        send(form, "DELETE", undefined, form.dataset.deleted);
      }
    });
  }
}
