// Scenario g: bad input is refused with an OutboxError carrying a stable code,
// and writes nothing.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, setup, openOutbox, pageError, pending, deadLetters, waitFor, safeJson, inDatabase } from "../support/e2e.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

function assertOutboxError(err, code, what) {
  assert.ok(err, `${what}: expected a rejection with code ${code}, but it succeeded`);
  assert.equal(err.name, "OutboxError", `${what}: name (error: ${safeJson(err)})`);
  assert.equal(err.code, code, `${what}: code (error: ${safeJson(err)})`);
  assert.equal(err.isError, true, `${what}: an Error instance`);
  assert.ok(typeof err.message === "string" && err.message.length > 0, `${what}: a message`);
}

test("enqueue refuses bad payloads and keys and writes nothing", { timeout: 30_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  await openOutbox(page, { name: "bad-g", maxPayloadBytes: 1024, autoStart: false });
  const existing = await page.evaluate(() => window.ob.enqueue({ n: 0 }, { key: "dup-1" }));
  assert.equal(existing.key, "dup-1");
  const before = await pending(page);
  assert.equal(before.length, 1);

  const cases = [
    ["a function payload", "invalid-payload", () => window.ob.enqueue(() => 1)],
    ["a payload holding a function", "invalid-payload", () => window.ob.enqueue({ f() {} })],
    ["a cyclic payload", "invalid-payload", () => { const a = { n: 1 }; a.self = a; return window.ob.enqueue(a); }],
    ["a BigInt payload", "invalid-payload", () => window.ob.enqueue({ n: 10n })],
    ["an undefined payload", "invalid-payload", () => window.ob.enqueue(undefined)],
    ["an oversized payload", "payload-too-large", () => window.ob.enqueue({ s: "x".repeat(2000) })],
    ["an empty key", "invalid-key", () => window.ob.enqueue({ n: 1 }, { key: "" })],
    ["a 256-character key", "invalid-key", () => window.ob.enqueue({ n: 1 }, { key: "k".repeat(256) })],
    ["a key with a space", "invalid-key", () => window.ob.enqueue({ n: 1 }, { key: "a b" })],
    ["a key with a non-ASCII character", "invalid-key", () => window.ob.enqueue({ n: 1 }, { key: "clé" })],
    ["a key with a control character", "invalid-key", () => window.ob.enqueue({ n: 1 }, { key: "a\nb" })],
    ["a key already pending", "duplicate-key", () => window.ob.enqueue({ n: 1 }, { key: "dup-1" })],
  ];
  const failures = [];
  for (const [what, code, fn] of cases) {
    const err = await pageError(page, fn);
    try {
      assertOutboxError(err, code, what);
    } catch (e) {
      failures.push(e.message);
    }
  }
  const afterCases = await pending(page);
  assert.deepEqual(failures, [], `bad inputs not refused as specified:\n${failures.join("\n")}`);
  assert.deepEqual(afterCases, before, "pending() is unchanged by the refused calls");
  assert.deepEqual(await deadLetters(page), []);
  assert.equal(server.received.length, 0, "autoStart false: nothing was sent");

  // The boundaries are accepted.
  const ok = await page.evaluate(async () => [
    (await window.ob.enqueue({ n: 2 }, { key: "k".repeat(255) })).key.length,
    (await window.ob.enqueue({ n: 3 }, { key: "!~visible-ASCII_0123" })).key,
    (await window.ob.enqueue(null)).payload,
  ]);
  assert.deepEqual(ok, [255, "!~visible-ASCII_0123", null]);
});

test("enqueue refuses a key that is already dead", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ default: { status: 400 } });
  await openOutbox(page, { name: "bad-dead-key", autoStart: false });
  await page.evaluate(() => window.ob.enqueue({ n: 1 }, { key: "gone-1" }));
  await page.evaluate(() => window.ob.flush());
  await waitFor(async () => (await deadLetters(page)).length === 1, { message: "the 400 to be dead-lettered" });
  const err = await pageError(page, () => window.ob.enqueue({ n: 2 }, { key: "gone-1" }));
  assertOutboxError(err, "duplicate-key", "a key already dead");
  assert.deepEqual(await pending(page), []);

  // Discarding the dead letter frees its key, in storage too (a reopened outbox agrees).
  await page.evaluate(() => window.ob.discardDead(["gone-1"]));
  await page.evaluate(() => window.ob.close());
  await openOutbox(page, { name: "bad-dead-key", autoStart: false });
  const again = await page.evaluate(async () => (await window.ob.enqueue({ n: 3 }, { key: "gone-1" })).key);
  assert.equal(again, "gone-1");
  assert.deepEqual((await pending(page)).map((m) => m.payload), [{ n: 3 }]);
});

test("Outbox.open refuses invalid options with code invalid-options", { timeout: 20_000 }, async (t) => {
  const { page } = await setup(t, browser);
  const cases = [
    ["no options at all", () => window.Outbox.open()],
    ["a missing name", () => window.Outbox.open({ endpoint: "/messages" })],
    ["an empty name", () => window.Outbox.open({ name: "", endpoint: "/messages" })],
    ["a negative maxAttempts", () => window.Outbox.open({ name: "x1", endpoint: "/messages", maxAttempts: -1 })],
    ["a NaN maxDelayMs", () => window.Outbox.open({ name: "x2", endpoint: "/messages", maxDelayMs: NaN })],
    ["a negative retryIntervalMs", () => window.Outbox.open({ name: "x3", endpoint: "/messages", flags: { retryIntervalMs: -5 } })],
    ['jitter "bogus"', () => window.Outbox.open({ name: "x4", endpoint: "/messages", jitter: "bogus" })],
    ["neither endpoint nor transport", () => window.Outbox.open({ name: "x5" })],
  ];
  const failures = [];
  for (const [what, fn] of cases) {
    const err = await pageError(page, fn);
    try {
      assertOutboxError(err, "invalid-options", what);
    } catch (e) {
      failures.push(e.message);
    }
  }
  assert.deepEqual(failures, [], `invalid options not refused as specified:\n${failures.join("\n")}`);
  // And a valid one opens.
  const ok = await pageError(page, async () => {
    const ob = await window.Outbox.open({ name: "x-ok", endpoint: "/messages", autoStart: false });
    await ob.close();
  });
  assert.equal(ok, null, `a valid open failed: ${safeJson(ok)}`);
});

test("a closed outbox refuses calls with code closed", { timeout: 20_000 }, async (t) => {
  const { page } = await setup(t, browser);
  await openOutbox(page, { name: "bad-closed", autoStart: false });
  await page.evaluate(() => window.ob.close());
  const err = await pageError(page, () => window.ob.enqueue({ n: 1 }));
  assertOutboxError(err, "closed", "enqueue after close()");
});

test("a key another tab claimed first is refused with duplicate-key while the rest of its write commits", { timeout: 20_000 }, async (t) => {
  const { page } = await setup(t, browser);
  await openOutbox(page, { name: "bad-claimed", autoStart: false });
  // Another tab's claim, written straight into the claims store: this tab's engine has
  // never heard of the key, so only storage can refuse it.
  await inDatabase(
    page,
    "bad-claimed",
    (db) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction("claims", "readwrite");
        tx.objectStore("claims").put(true, "taken");
        tx.oncomplete = () => resolve();
        tx.onabort = () => reject(tx.error);
      }),
  );
  // All three in one task: one write.
  const results = await page.evaluate(() =>
    Promise.allSettled([
      window.ob.enqueue({ n: 1 }, { key: "taken" }),
      window.ob.enqueue({ n: 2 }, { key: "free" }),
      window.ob.enqueue({ n: 3 }),
    ]).then((rs) => rs.map((r) => (r.status === "fulfilled" ? { key: r.value.key } : { code: r.reason.code }))),
  );
  assert.deepEqual(results[0], { code: "duplicate-key" }, safeJson(results));
  assert.equal(results[1].key, "free");
  assert.ok(results[2].key, safeJson(results));
  const listed = await pending(page);
  assert.deepEqual(listed.map((m) => m.key), ["free", results[2].key], `only the refused message is left out: ${safeJson(listed)}`);
  assert.equal(await page.evaluate(() => window.ob.stats().pending), 2);
});
