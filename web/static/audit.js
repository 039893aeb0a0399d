// The audit page, live: subscribes to the WebSocket hub's "audit" topic (docs/web.md,
// "WebSocket hub") and reloads the table through htmx when an entry newer than the ones shown
// is committed. The snapshot and the deltas only carry entry ids here, so they are applied
// idempotently: whatever the order, an id at or below the newest seen changes nothing.
// Pages further back (a cursor in the URL) stay as they are: they never gain entries.

const TOPIC = "audit";
const CLOSE_UNAUTHENTICATED = 4001;
const REFRESH_DELAY_MS = 200;
const MAX_RETRY_MS = 30000;

const rows = document.getElementById("audit-rows");
const status = document.getElementById("audit-live");
let newestSeen = 0;
let refreshTimer = null;

function setLive(live) {
  if (!status) return;
  status.textContent = live ? status.dataset.live : status.dataset.offline;
  status.hidden = false;
}

function newestShown() {
  const table = rows.querySelector("[data-newest-id]");
  return table ? Number(table.dataset.newestId) : 0;
}

function consider(entryId) {
  if (entryId <= Math.max(newestSeen, newestShown())) return;
  newestSeen = entryId;
  if (rows.dataset.paged === "true" || refreshTimer !== null) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    window.htmx.trigger(rows, "audit-refresh");
  }, REFRESH_DELAY_MS);
}

function handle(message) {
  if (message.topic !== TOPIC) return;
  if (message.type === "snapshot") {
    setLive(true);
    for (const entry of message.data.entries) consider(entry.entry_id);
  } else if (message.type === "event") {
    consider(message.event.payload.entry_id);
  } else if (message.type === "error") {
    setLive(false);
  }
}

function connect(attempt) {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/api/v1/ws`);
  socket.addEventListener("open", () => {
    attempt = 0;
    socket.send(JSON.stringify({ type: "subscribe", topics: [TOPIC] }));
  });
  socket.addEventListener("message", (event) => {
    for (const message of JSON.parse(event.data)) handle(message);
  });
  socket.addEventListener("close", (event) => {
    setLive(false);
    // A session that ended needs the login page (which renews it): reloading is the user's call.
    if (event.code === CLOSE_UNAUTHENTICATED) return;
    setTimeout(() => connect(attempt + 1), Math.min(MAX_RETRY_MS, 1000 * 2 ** attempt));
  });
}

if (rows) connect(0);
