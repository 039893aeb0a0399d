// callcore's shell script, loaded as an ES module by base.html.
// - every htmx request carries the CSRF token (header X-CSRF-Token, from the callcore_csrf cookie);
// - fetchJSON() does the same for JSON calls and shows problem+json field errors on a form;
// - failed htmx requests show the error state in their target and a toast.

const CSRF_COOKIE = "callcore_csrf";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/** The session's CSRF token, read from its (non-HttpOnly) cookie; "" when logged out. */
export function csrfToken() {
  for (const pair of document.cookie.split(";")) {
    const [name, ...value] = pair.trim().split("=");
    if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
  }
  return "";
}

/** Show a short message in the page's toast area; kind is "info" or "error". */
export function toast(message, kind = "info") {
  const area = document.getElementById("toasts");
  if (!area) return;
  const item = document.createElement("p");
  item.className = `toast toast-${kind}`;
  item.setAttribute("role", kind === "error" ? "alert" : "status");
  item.textContent = message;
  area.append(item);
  setTimeout(() => item.remove(), 8000);
}

/** An API error: status plus the problem+json body (title, detail, errors). */
export class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** Clear the field and form errors a previous showProblem() put on a form. */
export function clearProblem(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const small of form.querySelectorAll("[data-field-error]")) small.textContent = "";
  const general = form.querySelector("[data-form-error]");
  if (general) {
    general.textContent = "";
    general.hidden = true;
  }
}

/**
 * Put a problem+json body on a form: each {field, message} of its errors list next to the input
 * whose data-field is that JSON pointer (the field() macro sets it); the rest, and the problem's
 * detail, in the form's [data-form-error] element.
 */
export function showProblem(form, problem) {
  clearProblem(form);
  const unplaced = [];
  for (const error of problem.errors || []) {
    const input = form.querySelector(`[data-field="${CSS.escape(error.field || "")}"]`);
    const small = form.querySelector(`[data-field-error="${CSS.escape(error.field || "")}"]`);
    if (input && small) {
      input.setAttribute("aria-invalid", "true");
      small.textContent = [small.textContent, error.message].filter(Boolean).join(" ");
    } else {
      unplaced.push(error.message); // the API's messages name their field
    }
  }
  const general = form.querySelector("[data-form-error]");
  const text = [problem.errors?.length ? "" : problem.detail || problem.title, ...unplaced]
    .filter(Boolean)
    .join(" ");
  if (general && text) {
    general.textContent = text;
    general.hidden = false;
  } else if (text) {
    toast(text, "error");
  }
}

/**
 * Call the JSON API: sends and parses JSON, adds the CSRF header on state-changing methods,
 * returns the parsed body (null for 204). A problem+json answer throws a ProblemError, after
 * being shown on `form` when one is given. Other headers (If-Match...) go in `headers`; `meta`,
 * an object, receives the answer's `etag` (for the next If-Match), success or not.
 */
export async function fetchJSON(url, { method = "GET", body, headers = {}, form, meta } = {}) {
  const sent = { Accept: "application/json, application/problem+json", ...headers };
  if (!SAFE_METHODS.has(method.toUpperCase())) sent["X-CSRF-Token"] = csrfToken();
  if (body !== undefined) sent["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(url, {
      method,
      headers: sent,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (error) {
    toast(document.getElementById("toasts")?.dataset.networkError || String(error), "error");
    throw error;
  }
  if (meta) meta.etag = response.headers.get("ETag");
  const type = response.headers.get("Content-Type") || "";
  const parsed = response.status === 204 || !type.includes("json") ? null : await response.json();
  if (form && response.ok) clearProblem(form);
  if (response.ok) return parsed;
  const problem = parsed && type.includes("problem+json") ? parsed : { title: response.statusText };
  if (form) showProblem(form, problem);
  throw new ProblemError(response.status, problem);
}

/**
 * The error state for a container a script fills, when its load failed: the page's error-state
 * template, with the API's detail when it sent a problem, and a toast, as htmx targets get (a
 * network failure was already toasted by fetchJSON).
 */
export function errorState(error) {
  const box = document.getElementById("error-state").content.firstElementChild.cloneNode(true);
  if (error instanceof ProblemError) {
    toast(document.getElementById("toasts")?.dataset.serverError || "Error", "error");
    if (error.problem.detail) {
      const detail = document.createElement("p");
      detail.textContent = error.problem.detail;
      box.append(detail);
    }
  }
  return box;
}

document.addEventListener("htmx:configRequest", (event) => {
  const token = csrfToken();
  if (token) event.detail.headers["X-CSRF-Token"] = token;
});

// A failed htmx request (a 5xx, a 4xx without a body meant for swapping, or no answer at all)
// replaces a still-loading target with the error state and says so in a toast.
function showFailure(event, messageKey) {
  const target = event.detail.target;
  const template = document.getElementById("error-state");
  if (target && template && target.querySelector("[data-state=loading]")) {
    target.replaceChildren(template.content.cloneNode(true));
  }
  toast(document.getElementById("toasts")?.dataset[messageKey] || "Error", "error");
}

document.addEventListener("htmx:responseError", (event) => showFailure(event, "serverError"));
document.addEventListener("htmx:sendError", (event) => showFailure(event, "networkError"));
