// The server's fault injection (GET/PUT /admin/chaos).

import { $, setText, announce } from "../dom.js";

const POLL_MS = 5000;

export function mountChaos(ctx) {
  const form = $("chaos-form");
  const fail = $("chaos-fail");
  const status = $("chaos-status");
  const lostAck = $("chaos-lostack");
  const latency = $("chaos-latency");
  const now = $("chaos-now");
  let dirty = false;

  form.addEventListener("input", () => (dirty = true));

  function show(c) {
    setText(now, c.spec || "off");
    if (dirty) return;
    fail.value = String(c.fail ?? 0);
    status.value = String(c.status ?? 503);
    lostAck.value = String(c.lostAck ?? 0);
    latency.value = String(c.latencyMs ?? 0);
  }

  async function put(doc) {
    try {
      const c = await ctx.api.putChaos(doc);
      dirty = false;
      show(c);
      announce(`Server chaos: ${c.spec || "off"}.`);
    } catch (e) {
      ctx.fail(`Setting chaos failed: ${e.message}`);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    put({
      fail: Number(fail.value) || 0,
      status: Number(status.value),
      lostAck: Number(lostAck.value) || 0,
      latencyMs: Math.round(Number(latency.value) || 0),
    });
  });
  $("chaos-off").addEventListener("click", () => {
    dirty = false;
    put({});
  });

  async function poll() {
    try {
      show(await ctx.api.getChaos());
    } catch {
      setText(now, navigator.onLine ? "unreadable" : "unknown (offline)");
    }
  }
  poll();
  setInterval(poll, POLL_MS);
  return {};
}
