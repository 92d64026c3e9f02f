// The benchmark's smoke run: `node bench/run.mjs --smoke` (the same code path as
// `npm run bench`, with tiny numbers) must finish and write every row. It does not
// judge the targets: that is the full bench's job (bench/README.md).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const require = createRequire(path.join(ROOT, "package.json"));

// Every row the smoke run must produce, with a positive median.
const ROWS = [
  "raw.perItem",
  "raw.perItemStrict",
  "raw.oneTx",
  "workbox.pushSeq",
  "workbox.pushConc",
  "workbox.shift",
  "workbox.replay",
  "outbox.enqueueConc",
  "outbox.enqueueSeq",
  "outbox.enqueueConcStrict",
  "outbox.enqueueSeqStrict",
  "outbox.deliveryFlush",
  "outbox.deliveryResume",
  "outbox.deliveryFlushStrict",
  "fetch.seq",
  "fetch.conc4",
  "outbox.open",
  "memory.heap",
  "memory.wasm",
  "size.gzip",
];

function missingPeer() {
  for (const name of ["workbox-background-sync", "esbuild"]) {
    try {
      require.resolve(`${name}/package.json`);
    } catch {
      return name;
    }
  }
  return null;
}

function run(args, timeoutMs) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "bench", "run.mjs"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

test("bench smoke: node bench/run.mjs --smoke writes every row", { timeout: 180_000 }, async (t) => {
  const missing = missingPeer();
  if (missing) {
    t.skip(`${missing} is not installed (a devDependency of the bench; see bench/README.md): the bench smoke run is skipped`);
    return;
  }
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "outbox-bench-smoke-"));
  t.after(() => fs.rm(dir, { recursive: true, force: true }));
  const out = path.join(dir, "results.json");

  const r = await run(["--smoke", "--out", out], 170_000);
  const tail = (s) => s.split("\n").slice(-40).join("\n");
  assert.equal(r.code, 0, `bench --smoke exited ${r.code ?? r.signal}\n--- stderr ---\n${tail(r.stderr)}\n--- stdout ---\n${tail(r.stdout)}`);

  const result = JSON.parse(await fs.readFile(out, "utf8"));
  assert.equal(result.settings.smoke, true);
  const byId = new Map(result.rows.map((row) => [row.id, row]));
  for (const id of ROWS) {
    const row = byId.get(id);
    assert.ok(row, `row ${id} is missing from ${out}`);
    assert.ok(Number.isFinite(row.median) && row.median > 0, `row ${id}: median ${row.median}`);
    assert.ok(result.samples[id].every((x) => Number.isFinite(x) && x > 0), `row ${id}: samples ${JSON.stringify(result.samples[id])}`);
  }
  assert.ok(Number.isInteger(result.size.gzipBytes) && result.size.gzipBytes > 0, `size.gzipBytes ${result.size.gzipBytes}`);
  for (const f of ["durable_outbox_bg.wasm", "durable_outbox.js", "index.js"]) {
    assert.ok(result.size.files[f]?.gzipBytes > 0, `size of ${f}`);
  }
  assert.ok(result.targets.length >= 6, "the targets are evaluated");
  for (const target of result.targets) assert.equal(typeof target.pass, "boolean", target.target);
  assert.ok(result.machine.cpu && result.machine.cores > 0 && result.machine.chromium && result.machine.node, JSON.stringify(result.machine));
  assert.match(r.stdout, /median/, "the table is printed");
});
