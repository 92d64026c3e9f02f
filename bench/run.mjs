#!/usr/bin/env node
// npm run bench: durable-outbox beside its peers, in one headless Chromium run.
// See bench/README.md for what each row measures and the caveats.
//
//   node bench/run.mjs [--runs N] [--messages N] [--open-messages N] [--memory-messages N]
//                      [--smoke] [--out FILE] [--profile disk|memory] [--check-targets]
//
// Exit status: 0 when every case ran and checked its own outcome (missed targets
// included, unless --check-targets); 1 when something broke; 2 with --check-targets
// and a missed target.

import fs from "node:fs";
import fsp from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync, execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { CHROMIUM_PATH, CHROMIUM_ARGS } from "../tests/support/e2e.mjs";
import { packageSize } from "../tests/support/package-size.mjs";
import { summarize, formatTable } from "./report.mjs";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, "..");
const PKG = path.join(ROOT, "pkg");

// ------------------------------------------------------------------ options

function parseArgs(argv) {
  const o = { runs: 5, messages: 1000, openMessages: 10_000, memoryMessages: 100_000, bytes: 1024, smoke: false, out: path.join(HERE, "results.json"), profile: "disk", checkTargets: false, warmup: true };
  const given = new Set();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const [flag, inline] = a.includes("=") ? [a.slice(0, a.indexOf("=")), a.slice(a.indexOf("=") + 1)] : [a, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${flag} needs a value`);
      return v;
    };
    const int = (min) => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < min) throw new Error(`${flag} must be an integer >= ${min}`);
      return v;
    };
    switch (flag) {
      case "--runs": o.runs = int(1); given.add("runs"); break;
      case "--messages": o.messages = int(1); given.add("messages"); break;
      case "--open-messages": o.openMessages = int(1); given.add("openMessages"); break;
      case "--memory-messages": o.memoryMessages = int(1); given.add("memoryMessages"); break;
      case "--payload-bytes": o.bytes = int(200); break;
      case "--out": o.out = path.resolve(value()); break;
      case "--profile": o.profile = value(); if (!["disk", "memory"].includes(o.profile)) throw new Error("--profile is disk or memory"); break;
      case "--smoke": o.smoke = true; break;
      case "--check-targets": o.checkTargets = true; break;
      case "--no-warmup": o.warmup = false; break;
      case "-h": case "--help":
        console.log(fs.readFileSync(fileURLToPath(import.meta.url), "utf8").split("\n").slice(1, 11).map((l) => l.replace(/^\/\/ ?/, "")).join("\n"));
        process.exit(0);
      default: throw new Error(`unknown argument ${a} (see --help)`);
    }
  }
  if (o.smoke) {
    // The same code path with tiny numbers.
    if (!given.has("runs")) o.runs = 1;
    if (!given.has("messages")) o.messages = 50;
    if (!given.has("openMessages")) o.openMessages = 500;
    if (!given.has("memoryMessages")) o.memoryMessages = 2000;
  }
  return o;
}

const log = (...a) => console.error("[bench]", ...a);

// ------------------------------------------------------------------ machine, size

function machine(chromiumVersion, loadStart) {
  let cpu = os.cpus()[0]?.model ?? "unknown";
  try {
    const m = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m);
    if (m) cpu = m[1].trim();
  } catch {}
  return {
    cpu,
    cores: os.cpus().length,
    memoryBytes: os.totalmem(),
    memoryGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    chromium: chromiumVersion,
    node: process.version,
    date: new Date().toISOString(),
    // The 1-minute load average at the start and at the end: above the core count,
    // something else was competing for the CPU and the numbers are noisy.
    loadAverage1m: { start: loadStart, end: +os.loadavg()[0].toFixed(2) },
  };
}

function chromiumVersion() {
  try {
    return execFileSync(CHROMIUM_PATH, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch (e) {
    return `unknown (${e.message})`;
  }
}

const PKG_FILES = ["index.js", "durable_outbox.js", "durable_outbox_bg.wasm"];

/** Waits (up to 3 minutes) for pkg/ to be complete: another build may be under way. */
async function waitForPkg() {
  for (let waited = 0; ; waited += 3) {
    const missing = PKG_FILES.filter((f) => !fs.existsSync(path.join(PKG, f)));
    if (!missing.length) return;
    if (waited >= 180) throw new Error(`pkg/ is incomplete (${missing.join(", ")} missing): build the package first (npm run build)`);
    if (waited === 0) log(`pkg/ is incomplete (${missing.join(", ")} missing); waiting for a build to finish`);
    await new Promise((r) => setTimeout(r, 3000));
  }
}

/** Sizes and mtimes of the package files, to notice a rebuild during the run. */
function pkgFingerprint() {
  return PKG_FILES.map((f) => {
    try {
      const st = fs.statSync(path.join(PKG, f));
      return `${f}:${st.size}:${st.mtimeMs}`;
    } catch {
      return `${f}:missing`;
    }
  }).join("|");
}

// ------------------------------------------------------------------ reference server

function serverBinary(smoke) {
  if (process.env.OUTBOX_SERVER_BIN) return { bin: process.env.OUTBOX_SERVER_BIN, profile: "OUTBOX_SERVER_BIN" };
  const release = path.join(ROOT, "target", "release", "outbox-server");
  const debug = path.join(ROOT, "target", "debug", "outbox-server");
  // The smoke run only checks that every case works: the debug build that
  // `cargo test --workspace` (part of npm test) has just made will do.
  if (smoke && fs.existsSync(debug)) return { bin: debug, profile: "debug" };
  // Always ask cargo: it is a no-op when the binary is current, and a stale binary
  // (one without an endpoint the cases use) would measure the wrong thing.
  log("cargo build -p outbox-server --release");
  const r = spawnSync("cargo", ["build", "-p", "outbox-server", "--release"], { cwd: ROOT, stdio: ["ignore", 2, 2] });
  if (r.status !== 0) throw new Error("cargo build -p outbox-server --release failed");
  return { bin: release, profile: "release" };
}

async function startServer(bin, www) {
  const child = spawn(bin, ["--listen", "127.0.0.1:0", "--db", ":memory:", "--pkg", PKG, "--www", www], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const url = await new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`the reference server did not start in 20 s; stderr: ${stderr}`)), 20_000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`the reference server exited (${code}); stderr: ${stderr}`));
    });
  });
  child.stdout.resume();
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", resolve);
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      }),
  };
}

async function appliedEffects(serverUrl) {
  const text = await (await fetch(serverUrl + "/metrics")).text();
  const m = text.match(/^outbox_effects_applied_total (\d+)/m);
  if (!m) throw new Error("no outbox_effects_applied_total in /metrics");
  return Number(m[1]);
}

// ------------------------------------------------------------------ the bench page

async function buildWww() {
  const www = await fsp.mkdtemp(path.join(os.tmpdir(), "outbox-bench-www-"));
  await fsp.copyFile(path.join(HERE, "page", "index.html"), path.join(www, "index.html"));
  await fsp.copyFile(path.join(HERE, "page", "bench.mjs"), path.join(www, "bench.mjs"));
  let esbuild;
  try {
    esbuild = await import("esbuild");
  } catch {
    throw new Error("esbuild is not installed: npm install --no-save workbox-background-sync esbuild (see bench/README-integration.md)");
  }
  try {
    await import("workbox-background-sync/package.json", { with: { type: "json" } });
  } catch {
    throw new Error("workbox-background-sync is not installed: npm install --no-save workbox-background-sync esbuild (see bench/README-integration.md)");
  }
  await esbuild.build({
    entryPoints: [path.join(HERE, "page", "workbox-entry.mjs")],
    bundle: true,
    format: "esm",
    target: "es2022",
    minify: true,
    define: { "process.env.NODE_ENV": '"production"' },
    outfile: path.join(www, "workbox.js"),
    logLevel: "warning",
  });
  return www;
}

function packageVersion(name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"), "utf8")).version;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ browser

async function launch(profile) {
  // --enable-precise-memory-info: performance.memory unrounded; --expose-gc: window.gc()
  // so the memory case measures live objects, not garbage.
  const args = [...CHROMIUM_ARGS, "--enable-precise-memory-info", "--js-flags=--expose-gc"];
  if (profile === "disk") {
    // A persistent (on-disk) profile: IndexedDB is written to disk as for a real user.
    // An off-the-record context (browser.newContext()) keeps IndexedDB in memory.
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "outbox-bench-profile-"));
    const context = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM_PATH, args, headless: true });
    return { context, args, close: async () => { await context.close(); await fsp.rm(dir, { recursive: true, force: true }); }, profileDir: dir };
  }
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args });
  const context = await browser.newContext();
  return { context, args, close: async () => { await context.close(); await browser.close(); }, profileDir: null };
}

/** A fresh page on the bench page, retrying while pkg/ is mid-rebuild. */
async function benchPage(context, url) {
  let lastError;
  for (let attempt = 1; attempt <= 10; attempt++) {
    const page = await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(String((e && e.stack) || e)));
    page.on("console", (m) => {
      if (m.type() === "error" || process.env.BENCH_DEBUG) errors.push(`[console.${m.type()}] ${m.text()}`);
    });
    try {
      await page.goto(url + "/index.html");
      await page.waitForFunction(() => window.benchReady || window.benchError, null, { timeout: 30_000 });
      const err = await page.evaluate(() => window.benchError);
      if (!err) return { page, errors };
      lastError = new Error(`the bench page could not load its modules: ${err}`);
    } catch (e) {
      lastError = e;
    }
    await page.close().catch(() => {});
    log(`bench page failed to load (attempt ${attempt}; pkg/ mid-rebuild?): ${String(lastError.message).split("\n")[0]}`);
    await new Promise((r) => setTimeout(r, 3000));
  }
  throw lastError;
}

/**
 * Runs one case on a fresh page. `fresh`: delete every database of the origin first
 * (the open and memory cases reopen a database filled on an earlier page).
 */
async function runCase(ctx, name, args, opts = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      // A case that hangs fails the run instead: 60 s plus 5 ms per message involved.
      const ms = 60_000 + 5 * (args.n ?? 0);
      return await withTimeout(runCaseOnce(ctx, name, args, opts), ms, `${name}(${JSON.stringify(args)})`);
    } catch (e) {
      // pkg/ rebuilt under our feet: the glue, the snippets and the wasm disagree for a
      // moment. Only failures to load the package are retried, nothing else.
      const loadFailure = /WebAssembly\.instantiate|snippets\/|Failed to fetch dynamically imported module|failed to fetch Wasm|does not provide an export named/.test(String(e && e.message));
      if (!loadFailure || attempt >= 10) throw e;
      log(`${name}: the package failed to load (attempt ${attempt}; pkg/ mid-rebuild?), retrying in 3 s: ${String(e.message).split("\n")[0]}`);
      await new Promise((r) => setTimeout(r, 3000));
    }
  }
}

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish in ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function runCaseOnce(ctx, name, args, { fresh = true } = {}) {
  const { page, errors } = await benchPage(ctx.context, ctx.url);
  try {
    if (fresh) await page.evaluate(() => window.bench.deleteAllDatabases());
    const result = await page.evaluate(({ name, args }) => window.bench[name](args), { name, args });
    const pageErrors = errors.filter((e) => !/favicon/.test(e));
    if (pageErrors.length) throw new Error(`page errors during ${name}: ${pageErrors.join("\n")}`);
    return result;
  } finally {
    await page.close().catch(() => {});
  }
}

// ------------------------------------------------------------------ main

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const t0 = Date.now();
  const loadStart = +os.loadavg()[0].toFixed(2);
  await waitForPkg();
  const pkgAtStart = pkgFingerprint();
  const www = await buildWww();
  const server = serverBinary(opts.smoke);
  const srv = await startServer(server.bin, www);
  log(`reference server (${server.profile}) at ${srv.url}; www ${www}`);
  const browser = await launch(opts.profile);
  const ctx = { context: browser.context, url: srv.url };
  const n = opts.messages;
  const b = opts.bytes;
  const samples = {};
  const details = {};
  const add = (id, value, detail) => {
    (samples[id] ??= []).push(value);
    (details[id] ??= []).push(detail);
  };

  // The throughput cases, interleaved run by run so drift hits every row alike.
  // [row id, case function, args, how the sample is checked against the server]
  const throughput = [
    ["raw.perItem", "rawPerItem", {}],
    ["raw.perItemStrict", "rawPerItem", { durability: "strict" }],
    ["raw.perItemCommit", "rawPerItem", { commit: true }],
    ["raw.oneTx", "rawOneTx", {}],
    ["workbox.pushSeq", "workboxPush", { mode: "sequential" }],
    ["workbox.pushConc", "workboxPush", { mode: "concurrent" }],
    ["workbox.shift", "workboxShift", {}],
    ["workbox.replay", "workboxReplay", {}, "server"],
    ["outbox.enqueueConc", "outboxEnqueue", { mode: "concurrent" }],
    ["outbox.enqueueSeq", "outboxEnqueue", { mode: "sequential" }],
    ["outbox.enqueueConcStrict", "outboxEnqueue", { mode: "concurrent", durability: "strict" }],
    ["outbox.enqueueSeqStrict", "outboxEnqueue", { mode: "sequential", durability: "strict" }],
    ["outbox.deliveryFlush", "outboxDelivery", { method: "flush" }, "server"],
    ["outbox.deliveryBatch", "outboxDelivery", { method: "flush", batch: 50 }, "server"],
    ["outbox.deliveryResume", "outboxDelivery", { method: "resume" }, "server"],
    ["outbox.deliveryFlushStrict", "outboxDelivery", { method: "flush", durability: "strict" }, "server"],
    ["fetch.seq", "fetchOnly", { concurrency: 1 }, "server"],
    ["fetch.conc4", "fetchOnly", { concurrency: 4 }, "server"],
  ];

  let broken = null;
  try {
    if (opts.warmup) {
      log("warm-up pass (discarded)");
      for (const [, fn, args] of throughput) await runCase(ctx, fn, { n: Math.min(n, 50), bytes: b, ...args });
    }
    for (let run = 1; run <= opts.runs; run++) {
      for (const [id, fn, args, check] of throughput) {
        const before = check === "server" ? await appliedEffects(srv.url) : 0;
        const r = await runCase(ctx, fn, { n, bytes: b, ...args });
        if (check === "server") {
          const applied = (await appliedEffects(srv.url)) - before;
          if (applied !== n) throw new Error(`${id}: the server applied ${applied} effects, expected ${n}`);
          r.serverApplied = applied;
        }
        add(id, (n * 1000) / r.ms, r);
        log(`run ${run}/${opts.runs} ${id}: ${r.ms.toFixed(1)} ms, ${((n * 1000) / r.ms).toFixed(0)} items/s`);
      }
    }

    // Open: fill once (untimed, its own page), then open it on a fresh page per run.
    const openName = `bench-open-${Date.now()}`;
    await runCase(ctx, "deleteAllDatabases", {});
    const fill = await runCase(ctx, "outboxFill", { name: openName, n: opts.openMessages, bytes: b }, { fresh: false });
    log(`filled ${opts.openMessages} pending messages for the open case in ${fill.ms.toFixed(0)} ms`);
    for (let run = 1; run <= opts.runs; run++) {
      const r = await runCase(ctx, "outboxOpen", { name: openName, n: opts.openMessages }, { fresh: false });
      add("outbox.open", r.ms, r);
      log(`run ${run}/${opts.runs} outbox.open (${opts.openMessages} pending): ${r.ms.toFixed(1)} ms (wasm init ${r.wasmInitMs.toFixed(1)} ms)`);
    }
    details.openFill = fill;

    // Memory: fill (untimed), then one measurement on a fresh page.
    const memName = `bench-memory-${Date.now()}`;
    await runCase(ctx, "deleteAllDatabases", {});
    const mfill = await runCase(ctx, "outboxFill", { name: memName, n: opts.memoryMessages, bytes: b }, { fresh: false });
    log(`filled ${opts.memoryMessages} pending messages for the memory case in ${(mfill.ms / 1000).toFixed(1)} s`);
    const mem = await runCase(ctx, "outboxMemory", { name: memName, n: opts.memoryMessages }, { fresh: false });
    mem.payloadBytesStored = opts.memoryMessages * b;
    mem.wasmGrowthOpen = mem.wasmMemoryOpened - mem.wasmMemoryBeforeOpen;
    mem.fill = mfill;
    add("memory.heap", mem.heapOpened, mem);
    add("memory.wasm", mem.wasmMemoryOpened, mem);
    log(`memory (${opts.memoryMessages} pending): JS heap ${(mem.heapOpened / 2 ** 20).toFixed(1)} MiB, wasm memory ${(mem.wasmMemoryOpened / 2 ** 20).toFixed(1)} MiB, open ${mem.openMs.toFixed(0)} ms`);
    await runCase(ctx, "deleteAllDatabases", {});
  } catch (e) {
    broken = e;
  } finally {
    await withTimeout(browser.close(), 30_000, "closing the browser").catch((e) => log(String(e.message)));
    await srv.stop();
    await fsp.rm(www, { recursive: true, force: true });
  }
  if (broken) throw broken;

  await waitForPkg();
  const size = packageSize(PKG);
  const pkgChanged = pkgFingerprint() !== pkgAtStart;
  if (pkgChanged) log("WARNING: pkg/ changed during the run (rebuilt by someone): rows may mix two builds");
  add("size.gzip", size.gzipBytes, size);
  const { rows, ratios, targets } = summarize(samples, { n, payloadBytes: b, openMessages: opts.openMessages, memoryMessages: opts.memoryMessages, memory: details["memory.heap"]?.[0] });
  const result = {
    tool: "durable-outbox bench/run.mjs",
    settings: {
      runs: opts.runs,
      messages: n,
      payloadBytes: b,
      openMessages: opts.openMessages,
      memoryMessages: opts.memoryMessages,
      smoke: opts.smoke,
      warmup: opts.warmup,
      profile: opts.profile === "disk" ? "persistent on-disk Chromium profile (IndexedDB on disk)" : "off-the-record context (IndexedDB in memory)",
      chromiumArgs: browser.args,
      server: { binary: path.relative(ROOT, server.bin), build: server.profile, db: ":memory:", chaos: "off" },
      outboxConcurrency: "library default (option not given)",
      peers: { "workbox-background-sync": packageVersion("workbox-background-sync"), esbuild: packageVersion("esbuild"), "playwright-core": packageVersion("playwright-core") },
    },
    machine: machine(chromiumVersion(), loadStart),
    size,
    pkgChangedDuringRun: pkgChanged,
    rows,
    ratios,
    targets,
    samples,
    details,
    durationSeconds: Math.round((Date.now() - t0) / 1000),
  };
  await fsp.mkdir(path.dirname(opts.out), { recursive: true });
  await fsp.writeFile(opts.out, JSON.stringify(result, null, 2) + "\n");
  console.log(formatTable(result));
  console.log(`\nwrote ${path.relative(process.cwd(), opts.out) || opts.out} (${result.durationSeconds} s)`);
  const missed = targets.filter((t) => !t.pass);
  if (opts.checkTargets && missed.length) {
    console.log(`${missed.length} target(s) missed`);
    return 2;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`[bench] FAILED: ${(e && e.stack) || e}`);
    process.exit(1);
  },
);
