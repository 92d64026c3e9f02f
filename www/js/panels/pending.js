// The messages waiting in the outbox: key, note, attempts, next retry time.

import { $, el, syncList, setText, clock, relative, shortKey, describe, errorText } from "../dom.js";

export function mountPending(ctx) {
  const list = $("pending-list");
  const empty = $("pending-empty");
  const count = $("pending-count");

  function nextText(m, now) {
    if (m.state === "in-flight") return "sending now";
    if (!ctx.outbox.stats().online) return "waits for the network";
    if (m.nextAttemptAt != null) {
      const paused = m.attempts > 0 && !ctx.outbox.flags().retryEnabled ? " (retries are off)" : "";
      return `next try ${relative(m.nextAttemptAt, now)}, at ${clock(m.nextAttemptAt)}${paused}`;
    }
    if (m.attempts > 0 && !ctx.outbox.flags().retryEnabled) return "waits: retries are off";
    return "queued";
  }

  function render() {
    const items = ctx.state.pending;
    const now = Date.now();
    setText(count, items.length);
    empty.hidden = items.length > 0;
    syncList(
      list,
      items,
      (m) => m.key,
      () =>
        el(
          "li",
          { class: "msg" },
          el("p", { class: "what" }),
          el("p", { class: "meta" }, "key ", el("code", { class: "key" }), " · attempts ", el("span", { class: "num attempts" })),
          el("p", { class: "next" }),
          el("p", { class: "err" }),
        ),
      (item, m) => {
        setText(item.querySelector(".what"), describe(m.payload));
        const key = item.querySelector(".key");
        setText(key, shortKey(m.key));
        key.title = m.key;
        setText(item.querySelector(".attempts"), m.attempts);
        setText(item.querySelector(".next"), nextText(m, now));
        const err = item.querySelector(".err");
        setText(err, m.lastError ? `last error ${errorText(m.lastError)}` : "");
        err.hidden = !m.lastError;
        item.dataset.state = m.state;
      },
    );
  }

  return { render };
}
