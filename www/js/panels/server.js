// The server's view: what it applied, and how many resends it deduplicated.

import { $, el, syncList, setText, clock, shortKey, describe } from "../dom.js";

const POLL_MS = 2000;
const SHOWN = 8;

export function mountServer(ctx) {
  const counters = {
    total: $("srv-total"),
    keys: $("srv-keys"),
    replays: $("srv-replays"),
    conflicts: $("srv-conflicts"),
    mismatches: $("srv-mismatches"),
  };
  const stateLine = $("srv-state");
  const list = $("srv-list");
  const empty = $("srv-empty");
  let busy = false;
  let again = false;

  function render(doc) {
    const keys = new Set(doc.messages.map((m) => m.key)).size;
    const values = { total: doc.total, keys, replays: doc.replays, conflicts: doc.conflicts, mismatches: doc.mismatches };
    for (const [k, node] of Object.entries(counters)) setText(node, values[k]);
    setText(stateLine, `Read at ${clock(Date.now())}. Each key applied once: ${keys === doc.total ? "yes" : "NO"}.`);
    const latest = doc.messages.slice(-SHOWN).reverse();
    empty.hidden = latest.length > 0;
    syncList(
      list,
      latest,
      (m) => m.key,
      () => el("li", { class: "applied" }, el("span", { class: "num seq" }), " ", el("span", { class: "what" }), " ", el("code", { class: "key" })),
      (item, m) => {
        setText(item.querySelector(".seq"), `#${m.seq}`);
        setText(item.querySelector(".what"), describe(m.payload));
        const key = item.querySelector(".key");
        setText(key, shortKey(m.key));
        key.title = m.key;
      },
    );
  }

  async function poll() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      render(await ctx.api.getMessages());
    } catch (e) {
      setText(stateLine, navigator.onLine ? `Unreadable: ${e.message}` : "Offline: showing the last read.");
    } finally {
      busy = false;
      if (again) {
        again = false;
        poll();
      }
    }
  }

  poll();
  setInterval(poll, POLL_MS);
  return { poll };
}
