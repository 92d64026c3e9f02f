// Issue 5: many tabs, one sender. Several pages of ONE browser context (same
// origin, so one IndexedDB and one set of Web Locks) open the same outbox:
// - exactly one tab sends (stats().sender), the others only enqueue and observe;
// - events and stats() of every tab are current (BroadcastChannel), quickly;
// - retryDead / discardDead / setFlags / enqueue / flush work from any tab;
// - when the sender closes, crashes or is frozen, another tab takes over and
//   resends what was in flight with the same key; nothing is lost or doubled.
// Each tab sends its own static header X-Tab, so the server knows who sent what.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { launchBrowser, setup, waitFor, waitForOutboxModule, sleep, safeJson, CHROMIUM_PATH, CHROMIUM_ARGS } from "../support/e2e.mjs";
import { startTestServer } from "../support/test-server.mjs";

const DEBUG = !!process.env.E2E_DEBUG;
const LABELS = ["A", "B", "C", "D"];
// Cross-tab latency bound. The contract says 100 ms; this allows for a loaded
// 2-core machine. Measured values are printed as diagnostics.
const LATENCY_LIMIT_MS = 500;
// How long a hand-over (close, crash, freeze) may take. The issue says "within a second".
const TAKEOVER_LIMIT_MS = 2_000;

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

// ---------------------------------------------------------------- helpers

function watchPage(page, label, pageErrors) {
  page.on("pageerror", (e) => {
    pageErrors.push(`[${label}] ${String((e && e.stack) || e)}`);
    console.error(`[page ${label} error] ${(e && e.stack) || e}`);
  });
  page.on("console", (m) => {
    if (DEBUG || m.type() === "error") {
      const text = m.text();
      if (!DEBUG && /Failed to load resource|ERR_INTERNET_DISCONNECTED/.test(text)) return;
      console.error(`[page ${label} console.${m.type()}] ${text}`);
    }
  });
}

/**
 * A fresh server and context with `n` pages (tabs A, B, C, ...) of the test
 * page, all in the same browser context. Nothing is opened yet.
 * With `freezable`, the pages live in a browser that Page.setWebLifecycleState
 * can really freeze (see launchFreezableBrowser), each in its own window.
 */
async function openTabs(t, n, { freezable = false } = {}) {
  let server, context, newPage;
  let pageErrors = [];
  const pages = [];
  if (freezable) {
    server = await startTestServer();
    t.after(() => server.close().catch(() => {}));
    const fb = await launchFreezableBrowser(t);
    context = fb.context;
    newPage = fb.newPage;
  } else {
    const s = await setup(t, browser);
    ({ server, context, pageErrors } = s);
    pages.push(s.page);
    newPage = () => context.newPage();
  }
  for (let i = pages.length; i < n; i++) {
    const p = await newPage();
    watchPage(p, LABELS[i], pageErrors);
    await p.goto(server.url + "/");
    await waitForOutboxModule(p);
    pages.push(p);
  }
  const tabs = pages.map((page, i) => ({ label: LABELS[i], page, closed: false, frozen: false }));
  return { server, context, tabs, pageErrors };
}

/**
 * Page.setWebLifecycleState {state: "frozen"} is a no-op on pages that
 * Playwright launched: it turns on focus emulation (Emulation.setFocusEmulationEnabled),
 * which holds a capturer that keeps the page "visible", and Chromium does not
 * freeze a visible page (timers keep running, no `freeze` event). Pages of the
 * default context of a browser connected with `noDefaults` get no such
 * emulation. So: a Chromium of our own (same binary and flags), connected over
 * CDP with noDefaults; each page in its own window so that all are visible.
 * Closed (and its profile removed) after the test.
 */
async function launchFreezableBrowser(t) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "outbox-multitab-"));
  const proc = spawn(CHROMIUM_PATH, [...CHROMIUM_ARGS, "--remote-debugging-port=0", `--user-data-dir=${dir}`, "about:blank"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = once(proc, "exit");
  let cdpBrowser;
  t.after(async () => {
    await cdpBrowser?.close().catch(() => {});
    if (proc.exitCode === null && proc.signalCode === null) proc.kill();
    await Promise.race([exited, sleep(5_000)]);
    await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
  });
  const wsUrl = await new Promise((resolve, reject) => {
    let buf = "";
    const timer = setTimeout(() => reject(new Error(`chromium did not print its DevTools endpoint: ${buf}`)), 15_000);
    proc.stderr.on("data", (d) => {
      buf += d;
      const m = buf.match(/DevTools listening on (ws:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.once("exit", (code) => reject(new Error(`chromium exited (${code}): ${buf}`)));
  });
  cdpBrowser = await chromium.connectOverCDP(wsUrl, { noDefaults: true });
  const context = cdpBrowser.contexts()[0];
  const bcdp = await cdpBrowser.newBrowserCDPSession();
  const newPage = async () => {
    const page = context.waitForEvent("page");
    await bcdp.send("Target.createTarget", { url: "about:blank", newWindow: true });
    return page;
  };
  return { context, newPage };
}

/**
 * Opens `window.ob` in the tab, with the header X-Tab: <label>, and records
 * every event in `window.events` with `_t` (a wall-clock time in ms, with
 * sub-ms precision, comparable across the pages of one machine).
 */
async function openIn(tab, options) {
  await tab.page.evaluate(
    async ({ label, options }) => {
      window.tabLabel = label;
      window.now = () => performance.timeOrigin + performance.now();
      window.events = [];
      window.ob = await window.Outbox.open({
        endpoint: location.origin + "/messages",
        headers: { "X-Tab": label },
        ...options,
      });
      window.unsubscribe = window.ob.subscribe((e) => window.events.push({ ...e, _t: window.now() }));
    },
    { label: tab.label, options },
  );
}

/** Opens the outbox in each tab, one after the other (so A opens first). */
async function openAll(tabs, options) {
  for (const tab of tabs) await openIn(tab, options);
}

const live = (tabs) => tabs.filter((t) => !t.closed && !t.frozen);
const statsOf = (tab) => tab.page.evaluate(() => window.ob.stats());
const eventsOf = (tab) => tab.page.evaluate(() => window.events);
const deadOf = (tab) => tab.page.evaluate(() => window.ob.deadLetters());
const now = () => Date.now();

async function liveStats(tabs) {
  return Promise.all(live(tabs).map(async (tab) => ({ tab: tab.label, ...(await statsOf(tab)) })));
}

/** Which tab sent each request (the X-Tab header), as { A: n, B: n, ... }. */
function requestsByTab(requests) {
  const out = {};
  for (const r of requests) {
    const tab = r.headers["x-tab"] ?? "(none)";
    out[tab] = (out[tab] ?? 0) + 1;
  }
  return out;
}

/** waitFor, with `describe()` (the state, for the failure message) appended on timeout. */
async function waitOr(fn, opts, describe) {
  try {
    return await waitFor(fn, opts);
  } catch (e) {
    let detail;
    try {
      // A tab whose outbox is wedged may never answer: do not hang here.
      detail = await within(Promise.resolve().then(describe), 10_000, "(describing the state timed out)");
    } catch (e2) {
      detail = `(could not describe: ${e2})`;
    }
    throw new Error(`${e.message}\n  state: ${typeof detail === "string" ? detail : safeJson(detail)}`);
  }
}

/**
 * Waits until exactly one live tab says stats().sender === true and every
 * other live tab says false, and returns that tab.
 */
async function waitForOneSender(tabs, { timeoutMs = 5_000, message = "exactly one live tab with stats().sender === true, the others false" } = {}) {
  const label = await waitOr(
    async () => {
      const all = await liveStats(tabs);
      const senders = all.filter((s) => s.sender === true);
      const others = all.filter((s) => s.sender === false);
      return senders.length === 1 && others.length === all.length - 1 ? senders[0].tab : null;
    },
    { timeoutMs, intervalMs: 10, message },
    async () => (await liveStats(tabs)).map((s) => ({ tab: s.tab, sender: s.sender })),
  );
  return tabs.find((t) => t.label === label);
}

/** Waits until every live tab's stats().pending is 0. */
function waitForAllDrained(tabs, { timeoutMs = 10_000 } = {}) {
  return waitOr(
    async () => (await liveStats(tabs)).every((s) => s.pending === 0 && s.inFlight === 0),
    { timeoutMs, message: "stats().pending and inFlight to reach 0 in every live tab" },
    async () => {
      const out = [];
      for (const tab of live(tabs)) {
        const st = await within(statsOf(tab), 1_000, "(stats() did not answer)");
        const pend = await within(
          tab.page.evaluate(async () =>
            (await window.ob.pending()).map((m) => ({ key: m.key, state: m.state, attempts: m.attempts, inMs: m.nextAttemptAt == null ? null : Math.round(m.nextAttemptAt - Date.now()), lastError: m.lastError?.status ?? m.lastError?.message })),
          ),
          1_000,
          "(pending() did not answer)",
        );
        out.push({ tab: tab.label, pending: st.pending, inFlight: st.inFlight, dead: st.dead, sender: st.sender, pendingList: Array.isArray(pend) ? { count: pend.length, first: pend.slice(0, 4) } : pend });
      }
      return out;
    },
  );
}

/** The keys of the tab's events of this type (with repeats). */
async function eventKeys(tab, type) {
  return (await eventsOf(tab)).filter((e) => e.type === type).map((e) => e.key);
}

/** `promise`, or `fallback` after `ms` (a wedged page may never answer). */
function within(promise, ms, fallback) {
  return Promise.race([promise.catch((e) => `(failed: ${e.message.split("\n")[0]})`), sleep(ms).then(() => fallback)]);
}

/**
 * For a failure message: the requests of the keys not applied yet, and what
 * each live tab says of them (stats() and events first; pending() last, as it
 * has been seen to panic).
 */
async function describeStuck(server, tabs, keys, outboxName) {
  const stuck = keys.filter((k) => !server.appliedOnce(k));
  // IndexedDB itself (not through the outbox): is the record there, under which
  // seq, and which other messages (applied or not) share that seq?
  const idb = outboxName && live(tabs).length
    ? await within(
        live(tabs)[0].page.evaluate(
          async ({ dbName, ks }) => {
            const req = (r) => new Promise((res, rej) => ((r.onsuccess = () => res(r.result)), (r.onerror = () => rej(r.error))));
            const db = await req(indexedDB.open(dbName));
            const out = {};
            const os = (n) => db.transaction(n).objectStore(n);
            for (const storeName of db.objectStoreNames) {
              for (const k of ks) {
                if (os(storeName).keyPath !== "key") continue;
                const rec = await req(os(storeName).get(k));
                if (!rec) continue;
                const same = os(storeName).indexNames.contains("seq") ? await req(os(storeName).index("seq").getAll(rec.seq)) : [];
                out[k] = { store: storeName, seq: rec.seq, sameSeqInStore: same.map((x) => x.key) };
              }
            }
            db.close();
            return out;
          },
          { dbName: `durable-outbox/${outboxName}`, ks: stuck.slice(0, 5) },
        ),
        2_000,
        "(IndexedDB not readable)",
      )
    : undefined;
  const requests = Object.fromEntries(
    stuck.slice(0, 5).map((k) => [k, server.requestsFor(k).map((r) => ({ n: r.n, tab: r.headers["x-tab"], status: r.status, msAgo: Date.now() - r.at }))]),
  );
  const perTab = [];
  for (const tab of live(tabs)) {
    const st = await within(statsOf(tab), 1_000, "(stats() did not answer)");
    const evts = await within(
      tab.page.evaluate((ks) => window.events.filter((e) => ks.includes(e.key)).map((e) => `${e.key}:${e.type}${e.status ? "/" + e.status : ""}${e.counted === false ? "(uncounted)" : ""}@-${Math.round(window.now() - e._t)}ms`), stuck.slice(0, 2)),
      1_000,
      "(events not readable)",
    );
    const pend = await within(
      tab.page.evaluate(async (ks) => (await window.ob.pending()).filter((m) => ks.includes(m.key)).map((m) => ({ key: m.key, state: m.state, attempts: m.attempts, inMs: m.nextAttemptAt == null ? null : m.nextAttemptAt - Date.now(), lastError: m.lastError })), stuck.slice(0, 5)),
      1_000,
      "(pending() did not answer)",
    );
    perTab.push({ tab: tab.label, stats: st, eventsOfFirstStuck: Array.isArray(evts) ? evts.slice(-12) : evts, pendingOfStuck: pend });
  }
  return { stuck: stuck.length, stuckKeys: stuck.slice(0, 10), received: server.received.length, byTab: requestsByTab(server.received), lastRequests: server.received.slice(-6).map((r) => ({ key: r.key, tab: r.headers["x-tab"], status: r.status, msAgo: Date.now() - r.at })), requests, idb, perTab };
}

function sameSet(actual, expected) {
  const a = new Set(actual);
  const missing = expected.filter((k) => !a.has(k));
  const e = new Set(expected);
  const extra = [...a].filter((k) => !e.has(k));
  return { ok: missing.length === 0 && extra.length === 0, missing, extra };
}

function duplicates(list) {
  const seen = new Map();
  for (const x of list) seen.set(x, (seen.get(x) ?? 0) + 1);
  return [...seen].filter(([, n]) => n > 1);
}

/**
 * Starts, in the tab, a 2 ms poll of `predicate(window.ob)`; `resultOf` later
 * returns the first time (same clock as events' _t) it held, or null.
 */
async function startWatch(tab, name, predicate) {
  await tab.page.evaluate(
    ({ name, src }) => {
      const f = new Function(`return (${src})`)();
      window.watches = window.watches || {};
      const w = (window.watches[name] = { at: null });
      const check = () => {
        try {
          if (f(window.ob)) {
            w.at = window.now();
            return true;
          }
        } catch {}
        return false;
      };
      if (check()) return;
      const id = setInterval(() => {
        if (check()) clearInterval(id);
      }, 2);
    },
    { name, src: predicate.toString() },
  );
}
const watchResult = (tab, name) => tab.page.evaluate((name) => window.watches?.[name]?.at ?? null, name);

const cdpFreeze = async (context, tab) => {
  tab.cdp = tab.cdp || (await context.newCDPSession(tab.page));
  await tab.cdp.send("Page.setWebLifecycleState", { state: "frozen" });
  tab.frozen = true;
};
const cdpUnfreeze = async (context, tab) => {
  tab.cdp = tab.cdp || (await context.newCDPSession(tab.page));
  await tab.cdp.send("Page.setWebLifecycleState", { state: "active" });
  tab.frozen = false;
};

const fastRetries = { flags: { retryEnabled: true, retryIntervalMs: 20 }, jitter: "none", maxDelayMs: 200, maxAttempts: 1000 };

// ---------------------------------------------------------------- 1. one sender

test("300 messages enqueued across three tabs: each applied once, all sent by the one sending tab, every tab sees every event", { timeout: 45_000 }, async (t) => {
  const { server, tabs, pageErrors } = await openTabs(t, 3);
  server.program({ failureRate: 0.2, seed: 5 });
  await openAll(tabs, { name: "mt-300", ...fastRetries });

  const started = now();
  const keysByTab = await Promise.all(
    tabs.map((tab) =>
      tab.page.evaluate(async (label) => {
        const ms = await Promise.all(
          Array.from({ length: 100 }, (_, i) => window.ob.enqueue({ tab: label, i }, { key: `${label}-${String(i).padStart(3, "0")}` })),
        );
        return ms.map((m) => m.key);
      }, tab.label),
    ),
  );
  const keys = keysByTab.flat();
  assert.equal(new Set(keys).size, 300, "300 distinct keys were enqueued");

  await waitOr(
    () => keys.every((k) => server.appliedOnce(k)),
    { timeoutMs: 25_000, intervalMs: 50, message: "all 300 keys applied on the server" },
    () => describeStuck(server, tabs, keys, "mt-300"),
  );
  const appliedMs = now() - started;
  await waitForAllDrained(tabs);
  // Every tab's listener hears of every delivery (events reach all tabs).
  await waitOr(
    async () => {
      for (const tab of tabs) if (!sameSet(await eventKeys(tab, "delivered"), keys).ok) return false;
      return true;
    },
    { timeoutMs: 5_000, message: "every tab's listener to have seen a delivered event for each of the 300 keys" },
    async () =>
      Promise.all(
        tabs.map(async (tab) => {
          const d = sameSet(await eventKeys(tab, "delivered"), keys);
          return { tab: tab.label, missingDelivered: d.missing.length, extra: d.extra.slice(0, 5), exampleMissing: d.missing.slice(0, 5) };
        }),
      ),
  );

  const byTab = requestsByTab(server.received);
  const failures = server.received.filter((r) => r.status === 503).length;
  t.diagnostic(`applied 300 in ${appliedMs} ms; ${server.received.length} requests (${failures} answered 503); requests by tab: ${safeJson(byTab)}`);

  // The server: each key applied exactly once, and only the enqueued payload.
  for (const k of keys) assert.equal(server.applyCount(k), 1, `key ${k} applied ${server.applyCount(k)} times`);
  assert.equal(server.applied.length, 300, "exactly 300 applied effects");
  assert.deepEqual(server.conflicts, [], "no key was reused with another payload");
  for (const a of server.applied) {
    const [label, i] = a.key.split("-");
    assert.deepEqual(a.body, { tab: label, i: Number(i) }, `the payload applied under ${a.key}`);
  }
  for (const r of server.received) assert.ok(keys.includes(r.key), `a request with an unknown key ${r.key}`);

  // Exactly one tab sends, and it is the one that says so.
  const all = await liveStats(tabs);
  const senders = all.filter((s) => s.sender === true).map((s) => s.tab);
  assert.deepEqual(
    all.map((s) => [s.tab, s.sender]).filter(([, v]) => typeof v !== "boolean"),
    [],
    `stats().sender is a boolean in every tab: ${safeJson(all.map((s) => ({ tab: s.tab, sender: s.sender })))}`,
  );
  assert.equal(senders.length, 1, `exactly one tab reports stats().sender === true: ${safeJson(all.map((s) => ({ tab: s.tab, sender: s.sender })))}`);
  const sendingTabs = Object.keys(byTab);
  assert.deepEqual(sendingTabs, senders, `all requests came from the sender tab ${senders[0]}; requests by tab: ${safeJson(byTab)}`);
  for (const tab of tabs) if (tab.label !== senders[0]) assert.equal(byTab[tab.label] ?? 0, 0, `tab ${tab.label} (not the sender) sent requests`);

  // Every tab is current: nothing pending nor dead, every enqueue and delivery heard of.
  for (const s of all) {
    assert.equal(s.pending, 0, `tab ${s.tab} stats(): ${safeJson(s)}`);
    assert.equal(s.dead, 0, `tab ${s.tab} stats(): ${safeJson(s)}`);
  }
  for (const tab of tabs) {
    assert.deepEqual(await deadOf(tab), [], `tab ${tab.label} deadLetters()`);
    const enq = sameSet(await eventKeys(tab, "enqueued"), keys);
    assert.ok(enq.ok, `tab ${tab.label} heard an enqueued event for every key: missing ${enq.missing.length} (e.g. ${safeJson(enq.missing.slice(0, 5))}), extra ${safeJson(enq.extra.slice(0, 5))}`);
    const deliveredKeys = await eventKeys(tab, "delivered");
    assert.ok(sameSet(deliveredKeys, keys).ok, `tab ${tab.label} delivered events`);
    const dups = duplicates(deliveredKeys);
    if (dups.length) t.diagnostic(`tab ${tab.label}: ${dups.length} keys with more than one delivered event, e.g. ${safeJson(dups.slice(0, 3))}`);
    const dupEnq = duplicates(await eventKeys(tab, "enqueued"));
    if (dupEnq.length) t.diagnostic(`tab ${tab.label}: ${dupEnq.length} keys with more than one enqueued event, e.g. ${safeJson(dupEnq.slice(0, 3))}`);
  }
  // Failed attempts are events too: every tab hears one per 503 answer.
  await waitOr(
    async () => {
      for (const tab of tabs) if ((await eventKeys(tab, "attempt-failed")).length !== failures) return false;
      return true;
    },
    { timeoutMs: 2_000, message: `every tab's listener to have heard ${failures} attempt-failed events (one per 503 answer)` },
    async () => Promise.all(tabs.map(async (tab) => ({ tab: tab.label, attemptFailed: (await eventKeys(tab, "attempt-failed")).length }))),
  );
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- 2. hand-over

/**
 * The sending tab has 4 requests in flight that never get an answer (two of
 * them applied by the server, two not) and more messages pending; `kill`
 * ends it. Another tab must take over and deliver everything, once.
 */
async function handOver(t, name, kill) {
  const { server, context, tabs, pageErrors } = await openTabs(t, 3);
  await openAll(tabs, { name, ...fastRetries, concurrency: 4, requestTimeoutMs: 30_000 });
  const sender = await waitForOneSender(tabs);
  // The next four requests (whatever their keys) hang: the server never answers.
  server.queue({ hang: true, apply: true }, { hang: true }, { hang: true, apply: true }, { hang: true });

  const keys = (
    await Promise.all(
      tabs.map((tab) =>
        tab.page.evaluate(async (label) => {
          const out = [];
          for (let i = 0; i < 4; i++) out.push((await window.ob.enqueue({ tab: label, i }, { key: `${label}-h${i}` })).key);
          return out;
        }, tab.label),
      ),
    )
  ).flat();
  await server.waitUntil(() => server.received.filter((r) => r.status === "hung").length >= 4, { timeoutMs: 5_000, message: "4 hung requests" });
  await sleep(100);
  const hung = server.received.filter((r) => r.status === "hung");
  assert.deepEqual(requestsByTab(server.received), { [sender.label]: server.received.length }, "before the hand-over only the sender sent");
  const others = tabs.filter((x) => x !== sender);
  // The other tabs know that all 12 are pending (in flight included).
  await waitOr(
    async () => (await Promise.all(others.map(statsOf))).every((s) => s.pending === 12),
    { timeoutMs: 2_000, message: "the non-sending tabs to count 12 pending" },
    async () => Promise.all(others.map(async (x) => ({ tab: x.label, ...(await statsOf(x)) }))),
  );

  const receivedBefore = server.received.length;
  const killStart = now();
  await kill({ server, context, tab: sender });
  const killed = now();
  sender.closed = true;
  let takeover;
  try {
    takeover = await waitForOneSender(tabs, { timeoutMs: TAKEOVER_LIMIT_MS, message: `another tab to become the sender within ${TAKEOVER_LIMIT_MS} ms of the old one ending` });
  } finally {
    t.diagnostic(`ending the sender took ${killed - killStart} ms; a new sender after ${now() - killed} ms`);
  }
  assert.notEqual(takeover, sender);
  const changed = (await eventsOf(takeover)).filter((e) => e.type === "sender-changed");
  assert.ok(
    changed.length >= 1 && changed.at(-1).sender === true,
    `tab ${takeover.label} got a sender-changed event with sender: true (events: ${safeJson(changed)})`,
  );

  await waitOr(
    () => keys.every((k) => server.appliedOnce(k)),
    { timeoutMs: 10_000, message: "all 12 keys applied after the hand-over" },
    () => describeStuck(server, tabs, keys, name),
  );
  await waitForAllDrained(tabs);
  for (const k of keys) assert.equal(server.applyCount(k), 1, `key ${k} applied ${server.applyCount(k)} times`);
  assert.deepEqual(server.conflicts, []);
  const after = server.received.slice(receivedBefore);
  t.diagnostic(`after the hand-over: ${after.length} requests, by tab ${safeJson(requestsByTab(after))}`);
  assert.deepEqual(requestsByTab(after), { [takeover.label]: after.length }, "after the hand-over only the new sender sends");
  // What was in flight is resent, with the same key, by the new sender.
  for (const h of hung) {
    const resent = after.filter((r) => r.key === h.key);
    assert.ok(resent.length >= 1, `the in-flight message ${h.key} was resent after the hand-over`);
    assert.deepEqual(resent[0].body, h.body, `the resend of ${h.key} carries the same payload`);
  }
  for (const tab of live(tabs)) {
    const d = sameSet(await eventKeys(tab, "delivered"), keys);
    // A tab hears of the deliveries made after it is the only one left; the
    // 2 applied-but-unanswered ones are delivered (as replays) after the hand-over too.
    assert.ok(d.ok, `tab ${tab.label} heard a delivered event for every key: missing ${safeJson(d.missing)}`);
    assert.deepEqual(await deadOf(tab), [], `tab ${tab.label} deadLetters()`);
  }
  assert.deepEqual(pageErrors.filter((e) => !e.startsWith(`[${sender.label}]`)), []);
  return { server, tabs, sender, takeover };
}

test("closing the sending tab mid-flush hands sending over at once; nothing is lost or applied twice", { timeout: 30_000 }, async (t) => {
  await handOver(t, "mt-close", async ({ tab }) => {
    await tab.page.close();
  });
});

test("a crashed sending tab hands sending over; nothing is lost or applied twice", { timeout: 30_000 }, async (t) => {
  await handOver(t, "mt-crash", async ({ context, tab }) => {
    const crashed = new Promise((r) => tab.page.once("crash", () => r(true)));
    const cdp = await context.newCDPSession(tab.page);
    cdp.send("Page.crash").catch(() => {});
    assert.ok(await Promise.race([crashed, sleep(5_000).then(() => false)]), "the sending tab's renderer crashed (Page.crash)");
  });
});

// ---------------------------------------------------------------- 3. dead letters across tabs

test("a dead letter made in tab A is seen in tab B; retryDead and discardDead from B act on it; A hears redriven then delivered", { timeout: 30_000 }, async (t) => {
  const { server, tabs, pageErrors } = await openTabs(t, 2);
  await openAll(tabs, { name: "mt-dead", ...fastRetries });
  const sender = await waitForOneSender(tabs);
  // A enqueues (and is the sender when it opened first); B redrives from the other tab.
  const [A, B] = sender === tabs[0] ? tabs : [tabs[1], tabs[0]];
  t.diagnostic(`sender: ${sender.label}; A = ${A.label}, B = ${B.label}`);
  const poison = "A-poison", trash = "A-trash";
  server.queueFor(poison, { status: 400 });
  server.queueFor(trash, { status: 422 });
  await A.page.evaluate(async ({ poison, trash }) => {
    await window.ob.enqueue({ tab: "A", what: "poison" }, { key: poison });
    await window.ob.enqueue({ tab: "A", what: "trash" }, { key: trash });
  }, { poison, trash });

  await waitOr(
    async () => (await deadOf(B)).length === 2 && (await statsOf(B)).dead === 2,
    { timeoutMs: 5_000, message: "tab B's deadLetters() and stats().dead to show the two dead letters" },
    async () => ({ bDead: await deadOf(B), bStats: await statsOf(B), aDead: (await deadOf(A)).map((d) => d.key) }),
  );
  const bDead = await deadOf(B);
  const d = bDead.find((x) => x.key === poison);
  assert.equal(d?.reason, "rejected", safeJson(bDead));
  assert.equal(d.lastError?.status, 400);
  assert.deepEqual(d.payload, { tab: "A", what: "poison" });
  await waitOr(
    async () => sameSet(await eventKeys(B, "dead-lettered"), [poison, trash]).ok,
    { timeoutMs: 2_000, message: "tab B's listener to hear dead-lettered for both keys" },
    async () => (await eventsOf(B)).map((e) => `${e.type}:${e.key ?? ""}`),
  );
  assert.equal((await statsOf(A)).dead, 2);

  // The server is fixed (the queued 400 was one-shot); B redrives one and discards the other.
  const moved = await B.page.evaluate((k) => window.ob.retryDead([k]), poison);
  assert.equal(moved, 1, "retryDead([key]) in B moved one message");
  const dropped = await B.page.evaluate((k) => window.ob.discardDead([k]), trash);
  assert.equal(dropped, 1, "discardDead([key]) in B deleted one message");
  await waitOr(() => server.appliedOnce(poison), { timeoutMs: 5_000, message: "the redriven message applied" }, () => requestsByTab(server.received));
  await waitForAllDrained(tabs);
  await waitOr(
    async () => {
      const evts = (await eventsOf(A)).filter((e) => e.key === poison).map((e) => e.type);
      const r = evts.indexOf("redriven");
      return r >= 0 && evts.indexOf("delivered", r) > r;
    },
    { timeoutMs: 2_000, message: "tab A to hear redriven then delivered for the poison key" },
    async () => (await eventsOf(A)).filter((e) => e.key === poison).map((e) => e.type),
  );
  await waitOr(
    async () => (await eventKeys(A, "discarded")).includes(trash),
    { timeoutMs: 2_000, message: "tab A to hear discarded for the discarded key" },
    async () => (await eventsOf(A)).filter((e) => e.key === trash).map((e) => e.type),
  );
  for (const tab of tabs) {
    assert.deepEqual(await deadOf(tab), [], `tab ${tab.label} deadLetters() after redrive and discard`);
    assert.equal((await statsOf(tab)).dead, 0, `tab ${tab.label} stats().dead`);
  }
  const reqs = server.requestsFor(poison);
  assert.equal(reqs.length, 2, `one rejected send and one redriven send: ${safeJson(reqs.map((r) => r.status))}`);
  assert.deepEqual(reqs.map((r) => r.headers["x-tab"]), [sender.label, sender.label], "both sent by the sender tab");
  assert.equal(server.applyCount(poison), 1);
  assert.equal(server.requestsFor(trash).length, 1, "the discarded message was not resent");
  assert.equal(server.applyCount(trash), 0);
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- 4. flags

test("a flag change in one tab is seen in every tab, with a flags-changed event, quickly", { timeout: 20_000 }, async (t) => {
  const { tabs, pageErrors } = await openTabs(t, 3);
  await openAll(tabs, { name: "mt-flags", ...fastRetries });
  const sender = await waitForOneSender(tabs);
  const nonSender = tabs.find((x) => x !== sender);

  for (const [from, value] of [
    [nonSender, 1234],
    [sender, 4321],
  ]) {
    const others = tabs.filter((x) => x !== from);
    for (const o of others) await startWatch(o, `flags-${value}`, new Function(`return (ob) => ob.flags().retryIntervalMs === ${value}`)());
    const { t0, t1, flags } = await from.page.evaluate(async (value) => {
      const t0 = window.now();
      const flags = await window.ob.setFlags({ retryIntervalMs: value });
      return { t0, t1: window.now(), flags };
    }, value);
    assert.equal(flags.retryIntervalMs, value);
    const lat = {};
    for (const o of others) {
      const ev = await waitOr(
        async () => (await eventsOf(o)).find((e) => e.type === "flags-changed" && e.flags?.retryIntervalMs === value),
        { timeoutMs: 3_000, message: `tab ${o.label} to hear flags-changed with retryIntervalMs ${value} (set in tab ${from.label})` },
        async () => ({ flags: await o.page.evaluate(() => window.ob.flags()), events: (await eventsOf(o)).filter((e) => e.type === "flags-changed") }),
      );
      const seenAt = await waitOr(() => watchResult(o, `flags-${value}`), { timeoutMs: 2_000, message: `tab ${o.label}'s flags() to return ${value}` }, () => o.page.evaluate(() => window.ob.flags()));
      assert.equal(ev.flags.retryEnabled, true, `the other flags are unchanged in ${o.label}: ${safeJson(ev.flags)}`);
      lat[o.label] = { event: Math.round(ev._t - t1), flags: Math.round(seenAt - t1) };
    }
    t.diagnostic(`setFlags in tab ${from.label} (${from === sender ? "sender" : "not sender"}) took ${Math.round(t1 - t0)} ms; ms after it resolved until seen: ${safeJson(lat)}`);
    for (const [label, l] of Object.entries(lat)) {
      assert.ok(l.event < LATENCY_LIMIT_MS, `tab ${label} heard flags-changed ${l.event} ms after setFlags resolved in ${from.label} (limit ${LATENCY_LIMIT_MS})`);
      assert.ok(l.flags < LATENCY_LIMIT_MS, `tab ${label}'s flags() changed ${l.flags} ms after setFlags resolved in ${from.label} (limit ${LATENCY_LIMIT_MS})`);
    }
    for (const tab of tabs) assert.equal((await tab.page.evaluate(() => window.ob.flags())).retryIntervalMs, value, `tab ${tab.label} flags()`);
  }
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- 5. stats and flush across tabs

test("stats() of every tab follows enqueues and dead letters of another tab, and flush() from a non-sending tab flushes through the sender", { timeout: 20_000 }, async (t) => {
  const { server, tabs, pageErrors } = await openTabs(t, 3);
  // Retries off: a failed first send leaves the message pending until flush().
  await openAll(tabs, { name: "mt-stats", flags: { retryEnabled: false, retryIntervalMs: 20 }, jitter: "none", maxAttempts: 100 });
  const sender = await waitForOneSender(tabs);
  const [N1, N2] = tabs.filter((x) => x !== sender);
  server.program({ default: { status: 503 } });

  for (const o of tabs) if (o !== N1) await startWatch(o, "pending5", (ob) => ob.stats().pending === 5);
  const { t1, keys } = await N1.page.evaluate(async () => {
    const ms = [];
    for (let i = 0; i < 5; i++) ms.push(await window.ob.enqueue({ tab: window.tabLabel, i }, { key: `${window.tabLabel}-s${i}` }));
    return { t1: window.now(), keys: ms.map((m) => m.key) };
  });
  const lat = {};
  for (const o of tabs.filter((x) => x !== N1)) {
    const at = await waitOr(() => watchResult(o, "pending5"), { timeoutMs: 3_000, message: `tab ${o.label}'s stats().pending to be 5` }, () => statsOf(o));
    lat[o.label] = Math.round(at - t1);
  }
  t.diagnostic(`stats().pending === 5 in the other tabs, ms after the last enqueue in ${N1.label} resolved: ${safeJson(lat)}`);
  for (const [label, ms] of Object.entries(lat)) assert.ok(ms < LATENCY_LIMIT_MS, `tab ${label} saw pending 5 after ${ms} ms (limit ${LATENCY_LIMIT_MS})`);

  // The first sends fail (503) and, retries being off, wait.
  await server.waitUntil(() => keys.every((k) => server.requestsFor(k).length >= 1), { timeoutMs: 5_000, message: "a first send of each" });
  await sleep(100);
  assert.deepEqual(requestsByTab(server.received), { [sender.label]: 5 }, "the first sends came from the sender only");
  for (const s of await liveStats(tabs)) assert.equal(s.pending, 5, `tab ${s.tab}: ${safeJson(s)}`);

  // flush() in a non-sending tab: the sender flushes, and N2 gets its summary.
  server.program({ default: { status: 201 } });
  for (const o of tabs) if (o !== N2) await startWatch(o, "pending0", (ob) => ob.stats().pending === 0);
  const { summary, t1: f1 } = await N2.page.evaluate(async () => {
    const summary = await window.ob.flush();
    return { summary, t1: window.now() };
  });
  t.diagnostic(`flush() in non-sending tab ${N2.label}: ${safeJson(summary)}`);
  assert.equal(summary.attempted, 5, `flush summary: ${safeJson(summary)}`);
  assert.equal(summary.delivered, 5, `flush summary: ${safeJson(summary)}`);
  assert.equal(summary.failed, 0, `flush summary: ${safeJson(summary)}`);
  assert.equal(summary.dead, 0, `flush summary: ${safeJson(summary)}`);
  for (const k of keys) assert.equal(server.applyCount(k), 1, `key ${k}`);
  assert.deepEqual(requestsByTab(server.received), { [sender.label]: 10 }, "the flush was sent by the sender tab");
  assert.equal((await statsOf(N2)).pending, 0, "stats().pending in the flushing tab when flush() resolved");
  const lat0 = {};
  for (const o of tabs.filter((x) => x !== N2)) {
    const at = await waitOr(() => watchResult(o, "pending0"), { timeoutMs: 3_000, message: `tab ${o.label}'s stats().pending to be 0` }, () => statsOf(o));
    lat0[o.label] = Math.round(at - f1);
  }
  t.diagnostic(`stats().pending === 0, ms relative to flush() resolving in ${N2.label}: ${safeJson(lat0)}`);
  for (const [label, ms] of Object.entries(lat0)) assert.ok(ms < LATENCY_LIMIT_MS, `tab ${label} saw pending 0 ${ms} ms after flush resolved (limit ${LATENCY_LIMIT_MS})`);

  // A dead letter: stats().dead of every tab follows, measured from the sender's event.
  server.queueFor("X-dead", { status: 400 });
  for (const o of tabs) if (o !== sender) await startWatch(o, "dead1", (ob) => ob.stats().dead === 1);
  await N1.page.evaluate(() => window.ob.enqueue({ tab: window.tabLabel, dead: true }, { key: "X-dead" }));
  const deadAt = await waitOr(
    async () => (await eventsOf(sender)).find((e) => e.type === "dead-lettered" && e.key === "X-dead")?._t,
    { timeoutMs: 5_000, message: "the sender to dead-letter X-dead" },
    () => statsOf(sender),
  );
  const latD = {};
  for (const o of tabs.filter((x) => x !== sender)) {
    const at = await waitOr(() => watchResult(o, "dead1"), { timeoutMs: 3_000, message: `tab ${o.label}'s stats().dead to be 1` }, () => statsOf(o));
    latD[o.label] = Math.round(at - deadAt);
  }
  t.diagnostic(`stats().dead === 1 in the non-sending tabs, ms after the sender's dead-lettered event: ${safeJson(latD)}`);
  for (const [label, ms] of Object.entries(latD)) assert.ok(ms < LATENCY_LIMIT_MS, `tab ${label} saw dead 1 after ${ms} ms (limit ${LATENCY_LIMIT_MS})`);
  for (const tab of tabs) {
    const types = new Set((await eventsOf(tab)).filter((e) => e.key === "X-dead").map((e) => e.type));
    assert.ok(types.has("enqueued") && types.has("dead-lettered"), `tab ${tab.label} heard enqueued and dead-lettered for X-dead: ${safeJson([...types])}`);
  }
  assert.deepEqual(pageErrors, []);
});

test("right after enqueue in a non-sending tab, flush() there includes the message, and close() there stores it and still lets the sender learn of it", { timeout: 20_000 }, async (t) => {
  const { server, tabs, pageErrors } = await openTabs(t, 2);
  // Paused: only flush() sends, so a message the sender has not heard of is not sent.
  await openAll(tabs, { name: "mt-next-line", autoStart: false, jitter: "none" });
  const sender = await waitForOneSender(tabs);
  const [other] = tabs.filter((x) => x !== sender);

  const summary = await other.page.evaluate(async () => {
    await window.ob.enqueue({ n: 1 }, { key: "next-line-flush" });
    return window.ob.flush();
  });
  assert.equal(summary.delivered, 1, `the flush on the next line covers the message: ${safeJson(summary)}`);
  assert.ok(server.appliedOnce("next-line-flush"), "applied once");

  // One enqueue resolved before close(), one only started: both are stored and told.
  const stored = await other.page.evaluate(async () => {
    await window.ob.enqueue({ n: 2 }, { key: "next-line-close" });
    const started = window.ob.enqueue({ n: 3 }, { key: "started-before-close" });
    window.ob.close();
    return (await started).key;
  });
  assert.equal(stored, "started-before-close", "an enqueue started before close() resolves");
  await waitOr(async () => (await statsOf(sender)).pending === 2, { timeoutMs: 3_000, message: "the sender to hear of both messages enqueued just before close()" }, () => statsOf(sender));
  const last = await sender.page.evaluate(() => window.ob.flush());
  assert.equal(last.delivered, 2, safeJson(last));
  assert.ok(server.appliedOnce("next-line-close") && server.appliedOnce("started-before-close"), "each applied once");
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- 6. frozen leader

test("a frozen sending tab hands sending over; after it thaws nothing is applied twice and one tab sends", { timeout: 30_000 }, async (t) => {
  const { server, context, tabs, pageErrors } = await openTabs(t, 3, { freezable: true });
  await openAll(tabs, { name: "mt-freeze", ...fastRetries, requestTimeoutMs: 30_000 });
  const old = await waitForOneSender(tabs);
  const others = tabs.filter((x) => x !== old);

  // A message in flight when the sender freezes: its answer comes late.
  server.queueFor("F-inflight", { status: 201, delayMs: 2_000 });
  await others[0].page.evaluate(() => window.ob.enqueue({ what: "in flight at freeze" }, { key: "F-inflight" }));
  await server.waitUntil(() => server.requestsFor("F-inflight").length >= 1, { timeoutMs: 5_000, message: "F-inflight sent" });
  assert.equal(server.requestsFor("F-inflight")[0].headers["x-tab"], old.label);

  const visibility = await Promise.all(tabs.map((x) => x.page.evaluate(() => document.visibilityState)));
  assert.deepEqual(visibility, ["visible", "visible", "visible"], "every tab is visible before the freeze");
  await old.page.evaluate(() => document.addEventListener("freeze", () => (window.sawFreeze = window.now())));
  const freezeStart = now();
  await cdpFreeze(context, old);
  const frozenAt = now();
  let takeover;
  try {
    takeover = await waitForOneSender(tabs, { timeoutMs: TAKEOVER_LIMIT_MS, message: `a live tab to become the sender within ${TAKEOVER_LIMIT_MS} ms of the sender being frozen` });
  } finally {
    t.diagnostic(`freeze took ${frozenAt - freezeStart} ms; a new sender after ${now() - frozenAt} ms`);
  }
  const changed = (await eventsOf(takeover)).filter((e) => e.type === "sender-changed");
  assert.ok(changed.at(-1)?.sender === true, `tab ${takeover.label} got sender-changed {sender: true}: ${safeJson(changed)}`);

  // A message enqueued after the freeze is delivered, by the new sender.
  await others[1].page.evaluate(() => window.ob.enqueue({ what: "after freeze" }, { key: "F-after" }));
  await waitOr(() => server.appliedOnce("F-after") && server.appliedOnce("F-inflight"), { timeoutMs: 5_000, message: "F-after and F-inflight applied while the old sender is frozen" }, () =>
    server.received.map((r) => ({ key: r.key, tab: r.headers["x-tab"], status: r.status })),
  );
  assert.deepEqual(server.requestsFor("F-after").map((r) => r.headers["x-tab"]), [takeover.label], "F-after sent once, by the new sender");
  await waitForAllDrained(tabs);

  // Thaw the old sender.
  const beforeThaw = server.received.length;
  await cdpUnfreeze(context, old);
  assert.ok(await old.page.evaluate(() => window.sawFreeze), "the old sender got a freeze event (the harness really froze it)");
  await sleep(1_500);
  const all = await liveStats(tabs);
  t.diagnostic(`after the thaw: senders ${safeJson(all.map((s) => [s.tab, s.sender]))}; requests since the thaw ${safeJson(server.received.slice(beforeThaw).map((r) => ({ key: r.key, tab: r.headers["x-tab"], status: r.status, replay: r.replay })))}`);
  const now1 = await waitForOneSender(tabs, { timeoutMs: 2_000 });
  if (now1 === old) {
    t.diagnostic(`the old sender ${old.label} took the role back after the thaw`);
  } else {
    assert.equal((await statsOf(old)).sender, false, "the thawed old sender reports sender false");
    const oldChanged = (await eventsOf(old)).filter((e) => e.type === "sender-changed");
    assert.ok(oldChanged.some((e) => e.sender === false), `the old sender heard sender-changed {sender: false}: ${safeJson(oldChanged)}`);
  }

  // Messages after the thaw, from the old tab and another one: delivered once, by the one sender.
  const mark = server.received.length;
  await old.page.evaluate(() => window.ob.enqueue({ what: "from the thawed tab" }, { key: "F-thawed" }));
  await others[0].page.evaluate(() => window.ob.enqueue({ what: "after thaw" }, { key: "F-late" }));
  const keys = ["F-inflight", "F-after", "F-thawed", "F-late"];
  await waitOr(() => keys.every((k) => server.appliedOnce(k)), { timeoutMs: 5_000, message: "all four applied" }, () => keys.map((k) => [k, server.applyCount(k)]));
  await waitForAllDrained(tabs);
  await sleep(2_500); // the late answer of F-inflight and any stale resend from the thawed tab
  for (const k of keys) assert.equal(server.applyCount(k), 1, `key ${k} applied ${server.applyCount(k)} times`);
  assert.deepEqual(server.conflicts, []);
  const sinceMark = server.received.slice(mark);
  const finalSender = await waitForOneSender(tabs, { timeoutMs: 1_000 });
  assert.deepEqual(requestsByTab(sinceMark), { [finalSender.label]: sinceMark.length }, `after the thaw only the sender (${finalSender.label}) sends`);
  const stale = server.received.filter((r) => r.headers["x-tab"] === old.label && r.n >= beforeThaw);
  t.diagnostic(`requests from the thawed tab ${old.label} after the thaw: ${safeJson(stale.map((r) => ({ key: r.key, status: r.status, replay: r.replay })))}`);
  for (const tab of tabs) assert.equal((await statsOf(tab)).pending, 0, `tab ${tab.label} pending`);
  assert.deepEqual(pageErrors, []);
});

// ---------------------------------------------------------------- 7. no Web Locks

test("without the Web Locks API every message is still applied once and every tab drains", { timeout: 30_000 }, async (t) => {
  const { server, context, tabs, pageErrors } = await openTabs(t, 1);
  // Pages opened from now on have no navigator.locks.
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, "locks", { configurable: true, get: () => undefined });
  });
  for (const label of ["B", "C"]) {
    const p = await context.newPage();
    watchPage(p, label, pageErrors);
    await p.goto(server.url + "/");
    await waitForOutboxModule(p);
    tabs.push({ label, page: p, closed: false, frozen: false });
  }
  // Tab A (opened before the init script) is reloaded so that it too has no locks.
  await tabs[0].page.reload();
  await waitForOutboxModule(tabs[0].page);
  for (const tab of tabs) assert.equal(await tab.page.evaluate(() => navigator.locks), undefined, `tab ${tab.label} has no navigator.locks`);
  server.program({ failureRate: 0.2, seed: 11 });
  await openAll(tabs, { name: "mt-nolocks", ...fastRetries });
  const keys = (
    await Promise.all(
      tabs.map((tab) =>
        tab.page.evaluate(async (label) => {
          const ms = await Promise.all(Array.from({ length: 20 }, (_, i) => window.ob.enqueue({ tab: label, i }, { key: `${label}-n${i}` })));
          return ms.map((m) => m.key);
        }, tab.label),
      ),
    )
  ).flat();
  await waitOr(() => keys.every((k) => server.appliedOnce(k)), { timeoutMs: 15_000, message: "all 60 keys applied" }, () => describeStuck(server, tabs, keys, "mt-nolocks"));
  await waitForAllDrained(tabs);
  const all = await liveStats(tabs);
  t.diagnostic(`without Web Locks: senders ${safeJson(all.map((s) => [s.tab, s.sender]))}; requests by tab ${safeJson(requestsByTab(server.received))}; replays ${server.received.filter((r) => r.replay).length}`);
  for (const k of keys) assert.equal(server.applyCount(k), 1, `key ${k} applied ${server.applyCount(k)} times`);
  assert.deepEqual(server.conflicts, []);
  for (const tab of tabs) assert.deepEqual(await deadOf(tab), [], `tab ${tab.label} deadLetters()`);
  assert.deepEqual(pageErrors, []);
});
