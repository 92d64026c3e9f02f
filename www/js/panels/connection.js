// Connection state (online, offline, sending) and the outbox's counters.

import { $, setText, announce } from "../dom.js";

export function mountConnection(ctx) {
  const state = $("conn-state");
  const counters = {
    pending: $("stat-pending"),
    inFlight: $("stat-inflight"),
    dead: $("stat-dead"),
    delivered: $("stat-delivered"),
    attempts: $("stat-attempts"),
  };
  let lastOnline = null;

  function render() {
    const s = ctx.outbox.stats();
    const word = !s.online ? "offline" : s.inFlight > 0 ? "sending" : "online";
    state.dataset.state = word;
    setText(state, word);
    for (const [k, node] of Object.entries(counters)) setText(node, s[k]);
    if (lastOnline !== null && lastOnline !== s.online) {
      announce(s.online ? "Back online: sending what is waiting." : "Offline: changes are kept and sent later.");
    }
    lastOnline = s.online;
  }

  return { render };
}
