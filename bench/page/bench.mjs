// The measured cases, run inside the bench page (served by the reference server from a
// temporary www dir that bench/run.mjs fills). bench/run.mjs opens a fresh page for
// every case, deletes every IndexedDB database of the origin first (except where a
// case reopens a database filled on an earlier page), and calls one of these
// functions with page.evaluate. Each returns plain JSON: `ms` is the timed section,
// measured with performance.now(); everything outside it (opening databases,
// building payloads, filling a queue before timing its drain) is untimed.
//
// Every case checks its own outcome (counts stored, statuses answered) and throws if
// the work was not done, so a broken case fails the run instead of reporting a number.

import { Outbox } from "/pkg/index.js";
import init from "/pkg/durable_outbox.js";
import { QueueStore, StorableRequest } from "./workbox.js";

const TOKEN = "demo-token";
const ENDPOINT = new URL("/v1/messages", location.origin).href;
const FILLER =
  "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. ".repeat(
    12,
  );

/** A JSON payload of about `bytes` bytes (exactly, for n < 10^6 and bytes >= 200). */
export function makePayload(i, bytes = 1024) {
  const p = {
    type: "note.save",
    noteId: `note-${i % 50}`,
    seq: i,
    updatedAt: 1_700_000_000_000 + i,
    title: `Note number ${i}`,
    tags: ["bench", "outbox"],
    text: "",
  };
  const pad = bytes - JSON.stringify(p).length;
  p.text = FILLER.slice(0, Math.max(0, pad));
  return p;
}

function payloads(n, bytes) {
  return Array.from({ length: n }, (_, i) => makePayload(i, bytes));
}

const req = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
const done = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });

/** Deletes every IndexedDB database of this origin (run on a fresh page, so no open connections). */
export async function deleteAllDatabases() {
  const dbs = await indexedDB.databases();
  for (const { name } of dbs) {
    await new Promise((resolve, reject) => {
      const r = indexedDB.deleteDatabase(name);
      r.onsuccess = () => resolve();
      r.onerror = () => reject(r.error);
      r.onblocked = () => reject(new Error(`deleting ${name} is blocked by an open connection`));
    });
  }
  return dbs.map((d) => d.name);
}

/** Counts fetch calls in flight (the outbox calls the global fetch at send time). */
function instrumentFetch() {
  const orig = window.fetch;
  const stats = { calls: 0, inFlight: 0, maxInFlight: 0 };
  window.fetch = function (...args) {
    stats.calls += 1;
    stats.inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    const p = orig.apply(this, args);
    p.then(
      () => (stats.inFlight -= 1),
      () => (stats.inFlight -= 1),
    );
    return p;
  };
  return { stats, restore: () => (window.fetch = orig) };
}

// ---------------------------------------------------------------- raw IndexedDB

async function openRaw(name) {
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => open.result.createObjectStore("items", { keyPath: "key" });
  return req(open);
}

async function countRaw(db) {
  const tx = db.transaction("items");
  return req(tx.objectStore("items").count());
}

/**
 * Raw IndexedDB, one readwrite transaction per item, each awaited (oncomplete)
 * before the next starts. `durability`: undefined (the browser's default), "strict"
 * or "relaxed". `commit`: call `tx.commit()` after the put, as the outbox does.
 */
export async function rawPerItem({ n, bytes, durability, commit }) {
  const items = payloads(n, bytes).map((payload, i) => ({ key: `k${String(i).padStart(8, "0")}`, createdAt: Date.now(), payload }));
  const db = await openRaw(`bench-raw-per-item-${crypto.randomUUID()}`);
  const opts = durability ? { durability } : undefined;
  const t0 = performance.now();
  for (const item of items) {
    const tx = db.transaction("items", "readwrite", opts);
    tx.objectStore("items").put(item);
    if (commit) tx.commit();
    await done(tx);
  }
  const ms = performance.now() - t0;
  const stored = await countRaw(db);
  db.close();
  if (stored !== n) throw new Error(`raw per-item: ${stored} of ${n} stored`);
  return { ms, n, durability: durability ?? "default", commit: !!commit };
}

/** Raw IndexedDB, all items put in one readwrite transaction, awaited once. */
export async function rawOneTx({ n, bytes, durability }) {
  const items = payloads(n, bytes).map((payload, i) => ({ key: `k${String(i).padStart(8, "0")}`, createdAt: Date.now(), payload }));
  const db = await openRaw(`bench-raw-one-tx-${crypto.randomUUID()}`);
  const opts = durability ? { durability } : undefined;
  const t0 = performance.now();
  const tx = db.transaction("items", "readwrite", opts);
  const store = tx.objectStore("items");
  for (const item of items) store.put(item);
  await done(tx);
  const ms = performance.now() - t0;
  const stored = await countRaw(db);
  db.close();
  if (stored !== n) throw new Error(`raw one-tx: ${stored} of ${n} stored`);
  return { ms, n, durability: durability ?? "default" };
}

// ---------------------------------------------------------------- Workbox

/**
 * The entries Workbox's Queue.pushRequest would store: StorableRequest.fromRequest(request)
 * .toObject() plus a timestamp. Built before timing (Workbox's own pushRequest also reads
 * the body and converts the request, which is left out here: the peer gets the benefit).
 */
async function workboxEntries(n, bytes) {
  const out = [];
  for (const payload of payloads(n, bytes)) {
    const request = new Request(ENDPOINT, {
      method: "POST",
      headers: {
        "Content-Type": "application/json",
        Authorization: `Bearer ${TOKEN}`,
        "Idempotency-Key": crypto.randomUUID(),
      },
      body: JSON.stringify(payload),
    });
    const storable = await StorableRequest.fromRequest(request);
    out.push({ requestData: storable.toObject(), timestamp: Date.now() });
  }
  return out;
}

/** Workbox keeps every queue in one database, "workbox-background-sync"; opened before timing. */
async function workboxStore() {
  const store = new QueueStore(`bench-${crypto.randomUUID()}`);
  if ((await store.size()) !== 0) throw new Error("the Workbox queue is not empty at start");
  return store;
}

/** QueueStore.pushEntry for every entry: "sequential" (each awaited) or "concurrent" (Promise.all). */
export async function workboxPush({ n, bytes, mode }) {
  const entries = await workboxEntries(n, bytes);
  const store = await workboxStore();
  const t0 = performance.now();
  if (mode === "concurrent") {
    await Promise.all(entries.map((e) => store.pushEntry(e)));
  } else {
    for (const e of entries) await store.pushEntry(e);
  }
  const ms = performance.now() - t0;
  const size = await store.size();
  if (size !== n) throw new Error(`workbox pushEntry (${mode}): ${size} of ${n} queued`);
  return { ms, n, mode };
}

/** QueueStore.shiftEntry until empty (no network): the storage half of Workbox's replay. */
export async function workboxShift({ n, bytes }) {
  const entries = await workboxEntries(n, bytes);
  const store = await workboxStore();
  await Promise.all(entries.map((e) => store.pushEntry(e)));
  let shifted = 0;
  const t0 = performance.now();
  while (await store.shiftEntry()) shifted += 1;
  const ms = performance.now() - t0;
  if (shifted !== n) throw new Error(`workbox shiftEntry: ${shifted} of ${n} shifted`);
  return { ms, n };
}

/**
 * Workbox's replay pattern (Queue.replayRequests): shiftEntry, rebuild the Request,
 * fetch it, one at a time; on a network failure unshiftEntry and stop. Each entry
 * carries its own Idempotency-Key, so the reference server applies each one.
 */
export async function workboxReplay({ n, bytes }) {
  const entries = await workboxEntries(n, bytes);
  const store = await workboxStore();
  await Promise.all(entries.map((e) => store.pushEntry(e)));
  const net = instrumentFetch();
  const statuses = {};
  let sent = 0;
  let failure = null;
  const t0 = performance.now();
  let entry;
  while ((entry = await store.shiftEntry())) {
    try {
      const res = await fetch(new StorableRequest(entry.requestData).toRequest());
      statuses[res.status] = (statuses[res.status] || 0) + 1;
      sent += 1;
    } catch (e) {
      await store.unshiftEntry(entry);
      failure = String(e);
      break;
    }
  }
  const ms = performance.now() - t0;
  net.restore();
  if (failure) throw new Error(`workbox replay: network failure after ${sent}: ${failure}`);
  if (sent !== n || statuses[201] !== n) throw new Error(`workbox replay: ${sent} of ${n} sent, statuses ${JSON.stringify(statuses)}`);
  return { ms, n, statuses, maxInFlight: net.stats.maxInFlight };
}

// ---------------------------------------------------------------- network floor

/**
 * No storage at all: n POSTs of the same requests (unique Idempotency-Key each) with
 * `concurrency` requests in flight at most. The floor that the browser, the loopback
 * network and the reference server set for any delivery.
 */
export async function fetchOnly({ n, bytes, concurrency = 1 }) {
  const bodies = payloads(n, bytes).map((p) => JSON.stringify(p));
  const statuses = {};
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const body = bodies[next++];
        const res = await fetch(ENDPOINT, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${TOKEN}`, "Idempotency-Key": crypto.randomUUID() },
          body,
        });
        await res.arrayBuffer();
        statuses[res.status] = (statuses[res.status] || 0) + 1;
      }
    }),
  );
  const ms = performance.now() - t0;
  if (statuses[201] !== n) throw new Error(`fetch only: statuses ${JSON.stringify(statuses)}`);
  return { ms, n, concurrency, statuses };
}

// ---------------------------------------------------------------- durable-outbox

function outboxOptions(name, extra = {}) {
  return { name, endpoint: ENDPOINT, headers: { Authorization: `Bearer ${TOKEN}` }, autoStart: false, ...extra };
}

/** Outbox.enqueue: "concurrent" (all started together, Promise.all) or "sequential" (each awaited). */
export async function outboxEnqueue({ n, bytes, mode, durability }) {
  const items = payloads(n, bytes);
  const ob = await Outbox.open(outboxOptions(`bench-enqueue-${crypto.randomUUID()}`, durability ? { durability } : {}));
  const t0 = performance.now();
  if (mode === "concurrent") {
    await Promise.all(items.map((p) => ob.enqueue(p)));
  } else {
    for (const p of items) await ob.enqueue(p);
  }
  const ms = performance.now() - t0;
  const s = ob.stats();
  await ob.close();
  if (s.pending !== n) throw new Error(`outbox enqueue (${mode}): stats().pending ${s.pending}, expected ${n}`);
  return { ms, n, mode, durability: durability ?? "default" };
}

/**
 * Delivery of n pending messages to the reference server. The outbox is opened with
 * autoStart false and filled (untimed); then `method` "flush" times `await flush()`,
 * "resume" times from resume() until n "delivered" events have arrived (and then
 * checks stats().pending === 0). `concurrency` undefined means the library default.
 */
export async function outboxDelivery({ n, bytes, method, concurrency, durability, batch }) {
  const items = payloads(n, bytes);
  const extra = {
    ...(concurrency ? { concurrency } : {}),
    ...(durability ? { durability } : {}),
    // Batch mode: up to `batch` messages per request to the reference server's batch endpoint.
    ...(batch ? { batchEndpoint: ENDPOINT + "/batch", batchMaxItems: batch } : {}),
  };
  const ob = await Outbox.open(outboxOptions(`bench-delivery-${crypto.randomUUID()}`, extra));
  await Promise.all(items.map((p) => ob.enqueue(p)));
  if (ob.stats().pending !== n) throw new Error("outbox delivery: not all messages enqueued");
  const net = instrumentFetch();
  const statuses = {};
  let delivered = 0;
  let allDelivered;
  const drained = new Promise((r) => (allDelivered = r));
  const unsubscribe = ob.subscribe((e) => {
    if (e.type === "delivered") {
      statuses[e.status] = (statuses[e.status] || 0) + 1;
      if (++delivered === n) allDelivered();
    }
  });
  let summary = null;
  const t0 = performance.now();
  if (method === "flush") {
    summary = await ob.flush();
  } else {
    ob.resume();
    await drained;
  }
  const ms = performance.now() - t0;
  net.restore();
  const s = ob.stats();
  unsubscribe();
  await ob.close();
  if (s.pending !== 0 || s.dead !== 0) throw new Error(`outbox delivery (${method}): stats ${JSON.stringify(s)} after the timed section`);
  if (summary && summary.delivered !== n) throw new Error(`outbox flush: summary ${JSON.stringify(summary)}`);
  return { ms, n, method, summary, stats: s, maxInFlight: net.stats.maxInFlight, fetchCalls: net.stats.calls, concurrency: concurrency ?? "default", durability: durability ?? "default", batch: batch ?? 1 };
}

/**
 * Fills the outbox `name` with n pending messages for the open and memory cases:
 * enqueue in chunks of `chunk` (concurrent within a chunk), autoStart false,
 * durability "relaxed" (the fill is not measured). Untimed by the report.
 */
export async function outboxFill({ name, n, bytes, chunk = 1000 }) {
  const ob = await Outbox.open(outboxOptions(name, { durability: "relaxed" }));
  const t0 = performance.now();
  for (let start = 0; start < n; start += chunk) {
    const count = Math.min(chunk, n - start);
    await Promise.all(Array.from({ length: count }, (_, j) => ob.enqueue(makePayload(start + j, bytes))));
  }
  const ms = performance.now() - t0;
  const s = ob.stats();
  await ob.close();
  if (s.pending !== n) throw new Error(`outbox fill: stats().pending ${s.pending}, expected ${n}`);
  return { ms, n };
}

/**
 * On a fresh page: loads the wasm first (timed separately as wasmInitMs), then times
 * `await Outbox.open(...)` plus `stats()` on the filled outbox `name`.
 */
export async function outboxOpen({ name, n }) {
  const w0 = performance.now();
  await init();
  const wasmInitMs = performance.now() - w0;
  const t0 = performance.now();
  const ob = await Outbox.open(outboxOptions(name));
  const s = ob.stats();
  const ms = performance.now() - t0;
  await ob.close();
  if (s.pending !== n) throw new Error(`outbox open: stats().pending ${s.pending}, expected ${n}`);
  return { ms, n, wasmInitMs, stats: s };
}

function heap() {
  if (typeof window.gc === "function") window.gc();
  return performance.memory ? performance.memory.usedJSHeapSize : null;
}

/**
 * On a fresh page: the JS heap (performance.memory.usedJSHeapSize, after a forced GC)
 * before loading the wasm, after loading it, and after opening the filled outbox `name`
 * and calling stats(); the wasm linear memory (the module's exported memory,
 * buffer.byteLength: it only grows, so it is the high-water mark of the open).
 */
export async function outboxMemory({ name, n }) {
  const heapBefore = heap();
  const wasm = await init();
  const heapWasmLoaded = heap();
  const wasmMemoryBeforeOpen = wasm.memory.buffer.byteLength;
  const t0 = performance.now();
  const ob = await Outbox.open(outboxOptions(name));
  const s = ob.stats();
  const openMs = performance.now() - t0;
  const heapOpened = heap();
  const wasmMemoryOpened = wasm.memory.buffer.byteLength;
  let uaMemory = null;
  if (typeof performance.measureUserAgentSpecificMemory === "function" && self.crossOriginIsolated) {
    try {
      uaMemory = (await performance.measureUserAgentSpecificMemory()).bytes;
    } catch (e) {
      uaMemory = `failed: ${e}`;
    }
  }
  await ob.close();
  if (s.pending !== n) throw new Error(`outbox memory: stats().pending ${s.pending}, expected ${n}`);
  return {
    n,
    openMs,
    gcForced: typeof window.gc === "function",
    heapBefore,
    heapWasmLoaded,
    heapOpened,
    heapGrowthOpen: heapOpened - heapWasmLoaded,
    wasmMemoryBeforeOpen,
    wasmMemoryOpened,
    measureUserAgentSpecificMemory: uaMemory ?? "unavailable (needs cross-origin isolation)",
    stats: s,
  };
}
