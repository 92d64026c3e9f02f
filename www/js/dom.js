// Small DOM helpers: element lookup, keyed list rendering (keeps focus on buttons that
// survive a refresh), the live announcer, and time formatting.

export const $ = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing from index.html`);
  return node;
};

/** Creates an element: el("li", { class: "x", dataset: { key } }, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

/**
 * Makes `list`'s children match `items`, in order, by key: existing nodes are updated
 * in place (so a focused button keeps its focus), new ones created, stale ones removed.
 */
export function syncList(list, items, keyOf, create, update) {
  const existing = new Map();
  for (const child of list.children) existing.set(child.dataset.key, child);
  let prev = null;
  for (const item of items) {
    const key = keyOf(item);
    let node = existing.get(key);
    if (node) existing.delete(key);
    else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    const want = prev ? prev.nextSibling : list.firstChild;
    if (node !== want) list.insertBefore(node, want);
    prev = node;
  }
  for (const stale of existing.values()) stale.remove();
}

/** Sets text only when it changed (no needless DOM churn for the live regions). */
export function setText(node, text) {
  const s = String(text);
  if (node.textContent !== s) node.textContent = s;
}

let announceTimer;
/** Says `text` through the page's polite live region. */
export function announce(text) {
  const region = $("announcer");
  clearTimeout(announceTimer);
  region.textContent = "";
  // A fresh text node after a tick, so the same message twice is read twice.
  announceTimer = setTimeout(() => (region.textContent = text), 50);
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function relative(ms, now = Date.now()) {
  const s = Math.round((ms - now) / 1000);
  if (Math.abs(s) < 1) return "now";
  const abs = Math.abs(s);
  const span = abs < 90 ? `${abs} s` : `${Math.round(abs / 60)} min`;
  return s > 0 ? `in ${span}` : `${span} ago`;
}

/** The tail of a key: UUIDv7 keys share their leading timestamp digits. */
export function shortKey(key) {
  return key.length > 12 ? `…${key.slice(-10)}` : key;
}

/** A one-line description of a message's payload (a note operation). */
export function describe(payload) {
  if (!payload || typeof payload !== "object") return JSON.stringify(payload);
  if (payload.op === "poison") return `poison message (reuses key ${shortKey(payload.reusedKey || "")})`;
  const title = payload.title ? `“${payload.title}”` : "(untitled)";
  return `${payload.op === "delete" ? "delete" : "save"} ${title}, rev ${payload.rev}`;
}

export function errorText(lastError) {
  if (!lastError) return "";
  const { status, message } = lastError;
  return status && !String(message).includes(String(status)) ? `${status}: ${message}` : message;
}
