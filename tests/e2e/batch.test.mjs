// Batch mode against the real reference server: several due messages of different
// groups per request to /v1/messages/batch, each item deduplicated and classified as if
// sent alone, per-group order kept, and a rejected item dead-lettered on its own.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { launchBrowser, waitFor, safeJson } from "../support/e2e.mjs";
import { startDemoServer, TOKEN } from "../support/demo-server.mjs";

let browser;
let blankWww;
before(async () => {
  browser = await launchBrowser();
  // A blank page on the server's origin, so the outbox runs with no demo app beside it.
  blankWww = fs.mkdtempSync(path.join(os.tmpdir(), "outbox-batch-www-"));
  fs.writeFileSync(path.join(blankWww, "index.html"), "<!doctype html><title>batch</title>");
});
after(async () => {
  await browser?.close();
  fs.rmSync(blankWww, { recursive: true, force: true });
});

async function setup(t, chaos) {
  const server = await startDemoServer({ args: ["--www", blankWww] });
  t.after(() => server.close());
  if (chaos) await server.api("PUT", "/admin/chaos", chaos);
  const context = await browser.newContext();
  t.after(() => context.close());
  const page = await context.newPage();
  await page.goto(server.url + "/");
  await page.evaluate(async () => {
    window.Outbox = (await import("/pkg/index.js")).Outbox;
  });
  return { server, page };
}

function openBatching(page, server, extra = {}) {
  return page.evaluate(
    async ({ url, token, extra }) => {
      window.ob = await Outbox.open({
        name: "batch-" + Math.random(),
        endpoint: url + "/v1/messages",
        batchEndpoint: url + "/v1/messages/batch",
        headers: { Authorization: `Bearer ${token}` },
        flags: { retryEnabled: true, retryIntervalMs: 20 },
        jitter: "none",
        maxAttempts: 50,
        maxDelayMs: 200,
        autoStart: false,
        ...extra,
      });
    },
    { url: server.url, token: TOKEN, extra },
  );
}

async function batchRequests(server) {
  const text = await (await fetch(server.url + "/metrics")).text();
  return [...text.matchAll(/^outbox_batch_requests_total\{[^}]*\} (\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
}

test("batches deliver every message once, keep each group's order, and use far fewer requests", { timeout: 60_000 }, async (t) => {
  const { server, page } = await setup(t, { fail: 0.3, status: 503, lostAck: 0.1, latencyMs: 0 });
  await openBatching(page, server, { batchMaxItems: 20 });
  const sent = await page.evaluate(async () => {
    const all = [];
    for (let rev = 1; rev <= 10; rev++) {
      for (const note of ["a", "b", "c", "d", "e", "f"]) all.push(window.ob.enqueue({ note, rev }, { group: note }));
    }
    return (await Promise.all(all)).map((m) => m.key);
  });
  await page.evaluate(() => window.ob.resume());
  await waitFor(() => page.evaluate(() => window.ob.stats().pending === 0), { timeoutMs: 45_000, message: "all 60 delivered" });

  const log = await server.api("GET", "/v1/messages");
  const keys = log.messages.map((m) => m.key);
  assert.equal(new Set(keys).size, keys.length, "no key applied twice");
  assert.deepEqual([...keys].sort(), [...sent].sort(), "every message applied once");
  for (const note of ["a", "b", "c", "d", "e", "f"]) {
    const revs = log.messages.filter((m) => m.payload.note === note).map((m) => m.payload.rev);
    assert.deepEqual(revs, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], `group ${note} in order`);
  }
  const batches = await batchRequests(server);
  assert.ok(batches > 0 && batches < 60, `60 messages went in ${batches} batch requests`);
  assert.deepEqual(await page.evaluate(() => window.ob.deadLetters()), []);
});

test("a rejected item is dead-lettered alone while the rest of its batch is delivered", { timeout: 30_000 }, async (t) => {
  const { server, page } = await setup(t);
  // The key "poison" is applied with one payload; resending it with another is a 422.
  const res = await fetch(server.url + "/v1/messages", {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}`, "Idempotency-Key": "poison", "Content-Type": "application/json" },
    body: JSON.stringify({ first: true }),
  });
  assert.equal(res.status, 201);
  await openBatching(page, server);
  await page.evaluate(async () => {
    await window.ob.enqueue({ n: 1 }, { group: "g1" });
    await window.ob.enqueue({ other: true }, { key: "poison", group: "g2" });
    await window.ob.enqueue({ n: 3 }, { group: "g3" });
  });
  const summary = await page.evaluate(() => window.ob.flush());
  assert.deepEqual(summary, { attempted: 3, delivered: 2, failed: 0, dead: 1 }, safeJson(summary));
  assert.equal(await batchRequests(server), 1, "one batch request carried all three");
  const dead = await page.evaluate(() => window.ob.deadLetters());
  assert.equal(dead.length, 1);
  assert.equal(dead[0].key, "poison");
  assert.equal(dead[0].reason, "rejected");
  assert.equal(dead[0].lastError.status, 422);
  const log = await server.api("GET", "/v1/messages");
  assert.deepEqual(log.messages.map((m) => m.payload), [{ first: true }, { n: 1 }, { n: 3 }]);
});

test("batchMaxBytes bounds a batch by the payloads' UTF-8 bytes", { timeout: 30_000 }, async (t) => {
  const { server, page } = await setup(t);
  // Each payload is 53 characters of JSON but 97 bytes of UTF-8 ("é" is two bytes): two
  // fit in 250 bytes, three do not (counted in characters, four would).
  await openBatching(page, server, { batchMaxItems: 50, batchMaxBytes: 250 });
  const bytes = await page.evaluate(async () => {
    for (let i = 0; i < 6; i++) await window.ob.enqueue({ t: "é".repeat(44) + i }, { group: `g${i}` });
    return new TextEncoder().encode(JSON.stringify({ t: "é".repeat(44) + 0 })).length;
  });
  assert.equal(bytes, 97, "the payload size this test is built on");
  const summary = await page.evaluate(() => window.ob.flush());
  assert.deepEqual(summary, { attempted: 6, delivered: 6, failed: 0, dead: 0 }, safeJson(summary));
  assert.equal(await batchRequests(server), 3, "six messages of 97 bytes in batches of at most 250 bytes");
  const log = await server.api("GET", "/v1/messages");
  assert.equal(log.messages.length, 6, "each applied once");
});
