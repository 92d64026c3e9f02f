// The dead-letter store: reason, last error, Retry / Discard per item and for all; and
// the two ways to make the server refuse a message (a revoked sign-in, a poison message).

import { $, el, syncList, setText, clock, shortKey, describe, errorText, announce } from "../dom.js";
import { session } from "../outbox.js";

const REASONS = {
  rejected: "refused by the server",
  "max-attempts": "ran out of attempts",
  expired: "too old to send",
};

// What the reference server means by the 4xx answers a demo visitor can cause.
const STATUS_HINTS = {
  401: "unauthorized: the server refused the sign-in",
  413: "payload-too-large",
  422: "key-mismatch: this key was already applied with other content",
};

export function mountFailed(ctx) {
  const list = $("failed-list");
  const empty = $("failed-empty");
  const count = $("failed-count");
  const retryAll = $("retry-all");
  const discardAll = $("discard-all");
  const tokenToggle = $("token-toggle");
  const poison = $("poison");
  const poisonState = $("poison-state");

  async function act(what, fn) {
    try {
      const n = await fn();
      announce(`${what}: ${n} message${n === 1 ? "" : "s"}.`);
    } catch (e) {
      ctx.fail(`${what} failed: ${e.message}`);
    }
    ctx.refresh();
  }

  retryAll.addEventListener("click", () => act("Retried", () => ctx.outbox.retryDead()));
  discardAll.addEventListener("click", () => act("Discarded", () => ctx.outbox.discardDead()));

  function renderToken() {
    // The label says what a press does (no aria-pressed: the label itself changes).
    tokenToggle.dataset.active = String(session.revoked);
    setText(tokenToggle, session.revoked ? "Restore the outbox's sign-in" : "Revoke the outbox's sign-in");
  }
  tokenToggle.addEventListener("click", () => {
    session.revoked = !session.revoked;
    renderToken();
    announce(session.revoked ? "Sign-in revoked: the server will answer 401." : "Sign-in restored: press Retry on failed messages.");
  });

  poison.addEventListener("click", async () => {
    let applied;
    try {
      applied = (await ctx.api.getMessages()).messages;
    } catch (e) {
      setText(poisonState, `Cannot read the server's log: ${e.message}`);
      return;
    }
    const target = applied.filter((m) => m.payload && m.payload.op !== "poison").at(-1);
    if (!target) {
      setText(poisonState, "Save a note and let it sync first: the poison message reuses its key.");
      return;
    }
    try {
      await ctx.outbox.enqueue(
        { op: "poison", reusedKey: target.key, note: "different content under an applied key" },
        { key: target.key, group: "poison" },
      );
      setText(poisonState, `Sent different content under key ${shortKey(target.key)}.`);
    } catch (e) {
      setText(poisonState, `The outbox refused it: ${e.code}: ${e.message}`);
    }
    ctx.refresh();
  });

  function render() {
    const items = ctx.state.dead;
    setText(count, items.length);
    empty.hidden = items.length > 0;
    retryAll.disabled = discardAll.disabled = items.length === 0;
    syncList(
      list,
      items,
      (m) => m.key,
      (m) =>
        el(
          "li",
          { class: "msg dead" },
          el("p", { class: "what" }),
          el("p", { class: "reason" }),
          el("p", { class: "meta" }, "key ", el("code", { class: "key" }), " · attempts ", el("span", { class: "num attempts" }), el("span", { class: "when" })),
          el(
            "div",
            { class: "buttons" },
            el("button", { type: "button", class: "retry", onclick: () => act("Retried", () => ctx.outbox.retryDead([m.key])) }, "Retry"),
            el("button", { type: "button", class: "danger discard", onclick: () => act("Discarded", () => ctx.outbox.discardDead([m.key])) }, "Discard"),
          ),
        ),
      (item, m) => {
        const what = describe(m.payload);
        setText(item.querySelector(".what"), what);
        item.dataset.reason = m.reason;
        const hint = STATUS_HINTS[m.lastError?.status];
        setText(item.querySelector(".reason"), `${REASONS[m.reason] || m.reason} (${m.reason}): ${errorText(m.lastError)}${hint ? ` (${hint})` : ""}`);
        const key = item.querySelector(".key");
        setText(key, shortKey(m.key));
        key.title = m.key;
        setText(item.querySelector(".attempts"), m.attempts);
        setText(item.querySelector(".when"), ` · failed at ${clock(m.deadAt)}`);
        item.querySelector(".retry").setAttribute("aria-label", `Retry ${what}`);
        item.querySelector(".discard").setAttribute("aria-label", `Discard ${what}`);
      },
    );
  }

  renderToken();
  return { render };
}
