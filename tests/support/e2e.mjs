// Helpers shared by the end-to-end tests (tests/e2e/*.test.mjs):
// one headless Chromium per test file, a fresh test server and browser context
// (so a fresh IndexedDB) per test, and polling with deadlines.
import fs from "node:fs/promises";
import path from "node:path";
import { chromium } from "playwright-core";
import { startTestServer, DEFAULT_PKG_DIR, TEST_PAGE } from "./test-server.mjs";

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const DEBUG = !!process.env.E2E_DEBUG;

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `fn` (sync or async) until it returns a truthy value, which it returns.
 * Throws after `timeoutMs`, with `message` and the last value or error seen.
 */
export async function waitFor(fn, { timeoutMs = 10_000, intervalMs = 25, message = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  let lastError;
  for (;;) {
    try {
      last = await fn();
      lastError = undefined;
      if (last) return last;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `last error: ${lastError.stack || lastError}` : `last value: ${safeJson(last)}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${message}; ${detail}`);
    }
    await sleep(intervalMs);
  }
}

export function safeJson(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

/**
 * Serves the test page and pkg/ from disk inside the browser context (as a
 * service worker's cache would), so that a page reload works while the
 * context is offline. POSTs to /messages still go to the network.
 */
export async function installAppShell(context, { pkgDir = DEFAULT_PKG_DIR } = {}) {
  const types = { ".wasm": "application/wasm", ".js": "text/javascript", ".ts": "text/plain" };
  await context.route(
    (url) => url.pathname === "/" || url.pathname.startsWith("/pkg/"),
    async (route) => {
      const p = new URL(route.request().url()).pathname;
      if (p === "/") return route.fulfill({ status: 200, contentType: "text/html", body: TEST_PAGE });
      const file = path.join(pkgDir, path.normalize(p.slice("/pkg/".length)));
      try {
        const body = await fs.readFile(file);
        return route.fulfill({ status: 200, contentType: types[path.extname(file)] ?? "application/octet-stream", body });
      } catch {
        return route.fulfill({ status: 404, body: "not found" });
      }
    },
  );
}

/** Waits until the test page has imported /pkg/index.js (or failed to). */
export async function waitForOutboxModule(page) {
  await page.waitForFunction(() => window.outboxReady || window.outboxImportError, null, { timeout: 15_000 });
  const err = await page.evaluate(() => window.outboxImportError);
  if (err) throw new Error(`the test page could not import /pkg/index.js: ${err}`);
}

/**
 * A fresh test server, browser context and page for one test; all closed
 * after the test. Returns { server, context, page, pageErrors, endpoint }.
 */
export async function setup(t, browser, { appShell = false, server: serverOpts = {} } = {}) {
  const server = await startTestServer(serverOpts);
  const context = await browser.newContext();
  if (appShell) await installAppShell(context, serverOpts);
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => {
    pageErrors.push(String(e && e.stack || e));
    console.error(`[page error] ${e && e.stack || e}`);
  });
  page.on("console", (m) => {
    if (DEBUG || m.type() === "error") {
      const text = m.text();
      // Failed POSTs while offline or on error answers are expected noise.
      if (!DEBUG && /Failed to load resource|ERR_INTERNET_DISCONNECTED/.test(text)) return;
      console.error(`[page console.${m.type()}] ${text}`);
    }
  });
  t.after(async () => {
    await context.close().catch(() => {});
    await server.close().catch(() => {});
  });
  await page.goto(server.url + "/");
  await waitForOutboxModule(page);
  return { server, context, page, pageErrors, endpoint: server.endpoint };
}

/**
 * Opens `window.ob` in the page with the endpoint of the page's own server
 * and the given JSON-able options, and records every event in `window.events`.
 */
export async function openOutbox(page, options) {
  await page.evaluate(async (options) => {
    const opts = { endpoint: location.origin + "/messages", ...options };
    window.ob = await window.Outbox.open(opts);
    window.events = window.events || [];
    window.unsubscribe = window.ob.subscribe((e) => window.events.push(e));
  }, options);
}

/** Runs `fn(arg)` in the page and returns the OutboxError it threw (or null). */
export async function pageError(page, fn, arg) {
  return page.evaluate(
    async ({ src, arg }) => {
      const f = new Function(`return (${src})`)();
      try {
        await f(arg);
        return null;
      } catch (e) {
        return { name: e && e.name, code: e && e.code, message: e && e.message, isError: e instanceof Error };
      }
    },
    { src: fn.toString(), arg },
  );
}

/**
 * Runs `fn(db)` in the page on a connection of its own to the outbox database
 * `durable-outbox/<name>` (as another tab would have), then closes it. `fn` is sent as
 * source, so it can use nothing from the test's scope; it may return a promise.
 */
export function inDatabase(page, name, fn) {
  return page.evaluate(
    async ({ name, src }) => {
      const db = await new Promise((resolve, reject) => {
        const open = indexedDB.open(`durable-outbox/${name}`);
        open.onsuccess = () => resolve(open.result);
        open.onerror = () => reject(open.error);
      });
      try {
        return await new Function(`return (${src})`)()(db);
      } finally {
        db.close();
      }
    },
    { name, src: fn.toString() },
  );
}

export const pending = (page) => page.evaluate(() => window.ob.pending());
export const deadLetters = (page) => page.evaluate(() => window.ob.deadLetters());
export const stats = (page) => page.evaluate(() => window.ob.stats());
export const events = (page) => page.evaluate(() => window.events || []);

/** Waits until the outbox has nothing pending nor in flight. */
export function waitForDrained(page, { timeoutMs = 10_000 } = {}) {
  return waitFor(
    async () => {
      const [p, s] = await page.evaluate(async () => [await window.ob.pending(), window.ob.stats()]);
      return p.length === 0 && s.pending === 0 && s.inFlight === 0;
    },
    { timeoutMs, message: "the outbox to drain (pending() empty, stats().pending and inFlight 0)" },
  );
}
