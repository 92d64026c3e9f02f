// The retry flags: the server's document, polled and applied with setFlags; editable.

import { $, setText, clock, announce } from "../dom.js";

const POLL_MS = 3000;
const show = (f) => `retries ${f.retryEnabled ? "on" : "off"}, interval ${f.retryIntervalMs} ms`;
const same = (a, b) => a.retryEnabled === b.retryEnabled && a.retryIntervalMs === b.retryIntervalMs;

export function mountFlags(ctx) {
  const form = $("flags-form");
  const retry = $("flag-retry");
  const interval = $("flag-interval");
  const serverLine = $("flags-server");
  const appliedLine = $("flags-applied");
  let dirty = false; // the visitor is editing: do not overwrite the inputs

  form.addEventListener("input", () => (dirty = true));

  function fill(flags) {
    if (dirty) return;
    retry.checked = flags.retryEnabled;
    interval.value = String(flags.retryIntervalMs);
  }

  /** Applies the server's document to the outbox if it differs from what is applied. */
  async function apply(doc) {
    setText(serverLine, `${show(doc)} (read ${clock(Date.now())})`);
    fill(doc);
    const current = ctx.outbox.flags();
    if (!same(current, doc)) {
      await ctx.outbox.setFlags({ retryEnabled: doc.retryEnabled, retryIntervalMs: doc.retryIntervalMs });
      announce(`Retry flags applied: ${show(doc)}.`);
    }
    render();
  }

  async function poll() {
    try {
      await apply(await ctx.api.getFlags());
    } catch (e) {
      setText(serverLine, `unreachable (${navigator.onLine ? e.message : "offline"}); keeping ${show(ctx.outbox.flags())}`);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const doc = { retryEnabled: retry.checked, retryIntervalMs: Number(interval.value) };
    try {
      const stored = await ctx.api.putFlags(doc);
      dirty = false;
      await apply(stored);
    } catch (e) {
      ctx.fail(`Saving the flags failed: ${e.message}`);
    }
  });

  function render() {
    setText(appliedLine, show(ctx.outbox.flags()));
  }

  fill(ctx.outbox.flags());
  render();
  poll();
  setInterval(poll, POLL_MS);
  return { render };
}
