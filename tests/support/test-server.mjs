// A small HTTP server for the end-to-end tests.
//
// - GET  /            a blank test page: imports /pkg/index.js and puts Outbox on window
// - GET  /pkg/*       the built package (application/wasm, text/javascript, ...)
// - POST /messages    the outbox endpoint: records every request and answers by
//                     a programmable plan; emulates an idempotent server (the first
//                     2xx for a key applies the effect, later ones are replays)
//
// const server = await startTestServer({ pkgDir });
// server.url, server.port, server.endpoint, await server.close()
// server.received   [{ key, body, at, status, headers, n }] in arrival order
// server.applied    [{ key, body, at, n }] in first-applied order (n: index in received)
// server.queue(...responses), server.queueFor(key, ...responses)  one-shot answers
// server.program({ default, failureRate, failureResponse, seed, reject, delayMs })
// server.appliedOnce(key), server.applyCount(key), server.replayCount(key)
// server.requestsFor(key), server.waitForRequests(n, opts), server.reset()
// server.stats.maxInFlight   the most /messages requests open at once
//
// A response spec is { status, headers?, body?, delayMs?, destroy?, hang?, apply? }
// (destroy: drop the connection without answering, a network error for the
// client; hang: never answer, after applying the effect if `apply`).

import http from "node:http";
import fs from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, "..", "..");
// E2E_PKG_DIR: serve another build of the package (for debugging the tests).
export const DEFAULT_PKG_DIR = process.env.E2E_PKG_DIR ? path.resolve(process.env.E2E_PKG_DIR) : path.join(REPO_ROOT, "pkg");

const MIME = {
  ".wasm": "application/wasm",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".html": "text/html; charset=utf-8",
};

export const TEST_PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><title>durable-outbox e2e</title></head>
<body>
<script type="module">
  try {
    const mod = await import("/pkg/index.js");
    window.Outbox = mod.Outbox;
    window.outboxModule = mod;
    window.outboxReady = true;
  } catch (e) {
    window.outboxImportError = String(e && e.stack || e);
  }
</script>
</body>
</html>
`;

/** mulberry32: a small seeded PRNG, so "random" failures replay exactly. */
export function seededRandom(seed) {
  let a = seed >>> 0;
  return function () {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function defaultPlan() {
  return {
    default: { status: 201 },
    failureRate: 0,
    failureResponse: { status: 503 },
    random: seededRandom(1),
    reject: null, // { match(body, key) -> bool, status = 400, body? }
    delayMs: 0,
  };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

function stableStringify(v) {
  return JSON.stringify(v);
}

export async function startTestServer({ pkgDir = DEFAULT_PKG_DIR, host = "127.0.0.1", page = TEST_PAGE } = {}) {
  let plan = defaultPlan();
  let globalQueue = [];
  const keyQueues = new Map();
  const received = [];
  const applied = [];
  const appliedByKey = new Map(); // key -> { body, status, count, replays }
  const conflicts = [];
  const waiters = new Set();
  const sockets = new Set();
  let inFlight = 0;
  const stats = { maxInFlight: 0 };

  function notify() {
    for (const w of [...waiters]) {
      if (w.check()) {
        waiters.delete(w);
        w.resolve();
      }
    }
  }

  function chooseResponse(key, body) {
    const q = key != null ? keyQueues.get(key) : undefined;
    if (q && q.length) return { ...q.shift() };
    if (globalQueue.length) return { ...globalQueue.shift() };
    if (plan.reject && plan.reject.match(body, key)) {
      return { status: plan.reject.status ?? 400, body: plan.reject.body ?? { error: "rejected by test plan" } };
    }
    if (plan.failureRate > 0 && plan.random() < plan.failureRate) return { ...plan.failureResponse };
    return { ...plan.default };
  }

  async function handleMessage(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks).toString("utf8");
    let body;
    try {
      body = raw.length ? JSON.parse(raw) : undefined;
    } catch {
      body = { __unparsable: raw };
    }
    const key = req.headers["idempotency-key"] ?? null;
    const entry = {
      n: received.length,
      key,
      body,
      raw,
      at: Date.now(),
      status: null,
      headers: { ...req.headers },
      replay: false,
    };
    received.push(entry);
    inFlight += 1;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    res.on("close", () => {
      inFlight -= 1;
    });

    let spec = chooseResponse(key, body);
    const delay = spec.delayMs ?? plan.delayMs;
    if (delay) await sleep(delay);

    if (spec.hang) {
      // Never answer (until close()). With `apply`, the effect is applied
      // first: the server did the work, the client never hears of it.
      if (spec.apply && key != null && !appliedByKey.has(key)) {
        appliedByKey.set(key, { body, status: 201, count: 1, replays: 0 });
        applied.push({ key, body, at: entry.at, n: entry.n });
      }
      entry.status = "hung";
      notify();
      return;
    }
    if (spec.destroy) {
      entry.status = "destroyed";
      notify();
      req.socket.destroy();
      return;
    }

    // Idempotent-server emulation: the first 2xx for a key applies the effect;
    // a later request with the same key replays the stored answer (a payload
    // different from the applied one is a key reuse, answered 422 as the IETF
    // draft says).
    let status = spec.status ?? 201;
    const prev = key != null ? appliedByKey.get(key) : undefined;
    if (prev && status >= 200 && status < 300) {
      if (stableStringify(prev.body) !== stableStringify(body)) {
        conflicts.push({ key, applied: prev.body, got: body });
        status = 422;
        spec = { status, body: { error: "idempotency key reused with a different payload" } };
      } else {
        prev.replays += 1;
        entry.replay = true;
        status = prev.status;
      }
    } else if (status >= 200 && status < 300) {
      if (key != null) appliedByKey.set(key, { body, status, count: 1, replays: 0 });
      applied.push({ key, body, at: entry.at, n: entry.n });
    }
    entry.status = status;

    const headers = { "Content-Type": "application/json", "Cache-Control": "no-store", ...(spec.headers || {}) };
    if (entry.replay) headers["Idempotent-Replayed"] = "true";
    const out = spec.body !== undefined ? spec.body : status >= 200 && status < 300 ? { ok: true, key } : { error: `status ${status}` };
    res.writeHead(status, headers);
    res.end(JSON.stringify(out));
    notify();
  }

  async function serveFile(res, file, method) {
    try {
      const data = await fs.readFile(file);
      res.writeHead(200, {
        "Content-Type": MIME[path.extname(file)] ?? "application/octet-stream",
        "Content-Length": data.length,
        "Cache-Control": "no-cache",
      });
      res.end(method === "HEAD" ? undefined : data);
    } catch {
      res.writeHead(404, { "Content-Type": "text/plain" });
      res.end("not found");
    }
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://localhost");
    const p = decodeURIComponent(url.pathname);
    if (req.method === "POST" && p === "/messages") {
      handleMessage(req, res).catch((e) => {
        res.writeHead(500);
        res.end(String(e));
      });
      return;
    }
    if ((req.method === "GET" || req.method === "HEAD") && (p === "/" || p === "/index.html")) {
      res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache" });
      res.end(req.method === "HEAD" ? undefined : page);
      return;
    }
    if ((req.method === "GET" || req.method === "HEAD") && p.startsWith("/pkg/")) {
      const rel = path.normalize(p.slice("/pkg/".length));
      if (rel.startsWith("..") || path.isAbsolute(rel)) {
        res.writeHead(403);
        res.end();
        return;
      }
      serveFile(res, path.join(pkgDir, rel), req.method);
      return;
    }
    if (p === "/favicon.ico") {
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not found");
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, host, resolve);
  });
  const port = server.address().port;
  const url = `http://${host}:${port}`;

  const api = {
    url,
    port,
    endpoint: `${url}/messages`,
    pkgDir,
    received,
    applied,
    conflicts,
    /** maxInFlight: the most /messages requests open at once. */
    stats,

    /** Changes the plan; only the fields given change. `reject: null` clears it. */
    program(changes = {}) {
      const next = { ...plan };
      if ("default" in changes) next.default = changes.default;
      if ("failureRate" in changes) next.failureRate = changes.failureRate;
      if ("failureResponse" in changes) next.failureResponse = changes.failureResponse;
      if ("seed" in changes) next.random = seededRandom(changes.seed);
      if ("delayMs" in changes) next.delayMs = changes.delayMs;
      if ("reject" in changes) {
        const r = changes.reject;
        next.reject = r == null ? null : typeof r === "function" ? { match: r, status: 400 } : { status: 400, ...r };
      }
      plan = next;
      return api;
    },
    /** One-shot answers for the next requests of any key. */
    queue(...responses) {
      globalQueue.push(...responses);
      return api;
    },
    /** One-shot answers for the next requests carrying this key. */
    queueFor(key, ...responses) {
      if (!keyQueues.has(key)) keyQueues.set(key, []);
      keyQueues.get(key).push(...responses);
      return api;
    },
    /** Forgets the plan, the queues and everything recorded. */
    reset() {
      plan = defaultPlan();
      globalQueue = [];
      keyQueues.clear();
      received.length = 0;
      applied.length = 0;
      appliedByKey.clear();
      conflicts.length = 0;
      stats.maxInFlight = 0;
      return api;
    },

    requestsFor(key) {
      return received.filter((r) => r.key === key);
    },
    /** Number of applied effects for the key (0 or 1: later 2xx are replays). */
    applyCount(key) {
      return applied.filter((a) => a.key === key).length;
    },
    replayCount(key) {
      return appliedByKey.get(key)?.replays ?? 0;
    },
    appliedOnce(key) {
      return api.applyCount(key) === 1;
    },
    appliedKeys() {
      return applied.map((a) => a.key);
    },
    /** Resolves when `predicate()` holds (re-checked after each request). */
    waitUntil(predicate, { timeoutMs = 10_000, message = "server condition" } = {}) {
      if (predicate()) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const w = { check: predicate, resolve: () => { clearTimeout(timer); resolve(); } };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${message} (received ${received.length} requests)`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
    waitForRequests(n, opts = {}) {
      return api.waitUntil(() => received.length >= n, { message: `${n} requests`, ...opts });
    },

    close() {
      for (const w of waiters) w.resolve();
      waiters.clear();
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  return api;
}
