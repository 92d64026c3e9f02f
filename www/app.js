// The notes demo: opens the outbox, mounts the panels, and re-renders them from the
// outbox's events (plus a 1 s tick for the "next try in ..." times).

import { $, announce, setText, describe, shortKey } from "./js/dom.js";
import { api } from "./js/api.js";
import { openOutbox } from "./js/outbox.js";
import { enableOfflineShell } from "./js/offline-shell.js";
import { mountNotes } from "./js/panels/notes.js";
import { mountConnection } from "./js/panels/connection.js";
import { mountPending } from "./js/panels/pending.js";
import { mountFailed } from "./js/panels/failed.js";
import { mountFlags } from "./js/panels/flags.js";
import { mountChaos } from "./js/panels/chaos.js";
import { mountServer } from "./js/panels/server.js";

// Errors: shown in the alert box at the top; a passing one (a failed PUT while offline)
// clears itself, a failure to start stays.
let failTimer;
function fail(message, { sticky = false } = {}) {
  const box = $("fatal");
  setText(box, message);
  box.hidden = false;
  console.warn(message);
  clearTimeout(failTimer);
  if (!sticky) failTimer = setTimeout(() => (box.hidden = true), 15_000);
}

async function main() {
  const outbox = await openOutbox();
  const state = { pending: [], dead: [] };

  // Re-reads the outbox and re-renders; coalesces bursts of events into one pass.
  let running = null;
  let queued = false;
  async function refreshNow() {
    const [pending, dead] = await Promise.all([outbox.pending(), outbox.deadLetters()]);
    state.pending = pending;
    state.dead = dead;
    for (const p of panels) p.render?.();
  }
  function refresh() {
    if (running) {
      queued = true;
      return running;
    }
    running = refreshNow()
      .catch((e) => fail(`Reading the outbox failed: ${e.message}`))
      .finally(() => {
        running = null;
        if (queued) {
          queued = false;
          refresh();
        }
      });
    return running;
  }

  const ctx = { outbox, api, state, refresh, fail };
  const server = mountServer(ctx);
  const panels = [mountNotes(ctx), mountConnection(ctx), mountPending(ctx), mountFailed(ctx), mountFlags(ctx), mountChaos(ctx)];

  let serverTimer;
  outbox.subscribe((event) => {
    switch (event.type) {
      case "dead-lettered":
        announce(`A message failed to sync (${event.reason}${event.lastError?.status ? `, ${event.lastError.status}` : ""}); see Failed sync.`);
        break;
      case "delivered":
        clearTimeout(serverTimer);
        serverTimer = setTimeout(server.poll, 150);
        break;
      case "storage-failed":
        fail(`The outbox could not write to IndexedDB: ${event.message}`, { sticky: true });
        break;
    }
    refresh();
  });
  // "All synced" when the queue empties.
  let hadPending = false;
  const announceDrain = () => {
    const pendingNow = outbox.stats().pending;
    if (hadPending && pendingNow === 0) announce("All changes are on the server.");
    hadPending = pendingNow > 0;
  };
  setInterval(() => {
    announceDrain();
    for (const p of panels) p.render?.();
  }, 1000);

  await refresh();
  window.demo = { outbox, api, refresh, describe, shortKey, ready: true };
  document.documentElement.dataset.ready = "true";

  enableOfflineShell()
    .then((text) => setText($("shell-state"), text))
    .catch((e) => setText($("shell-state"), `Offline copy of the app: failed (${e.message}).`))
    .finally(() => (document.documentElement.dataset.shell = "done"));
}

main().catch((e) => {
  fail(`The demo could not start: ${e && (e.code ? `${e.code}: ` : "") + e.message}`, { sticky: true });
  window.demo = { error: String(e && e.stack || e) };
});
