// Databases written by earlier storage layouts are upgraded in place when an outbox
// opens them: every pending message keeps its key, order, attempt count, last error and
// payload, every dead letter keeps its payload, the flags survive, and the messages are
// then delivered. Version 1 kept metadata in "pending" and payloads in "bodies";
// version 2 had today's stores but gave "messages" a key path.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, setup, openOutbox, waitFor, waitForDrained, pending, deadLetters, stats, safeJson, inDatabase } from "../support/e2e.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** Writes a version-1 database `durable-outbox/<name>` by hand, as the old layout did. */
function writeVersion1(name) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(`durable-outbox/${name}`, 1);
    open.onupgradeneeded = () => {
      const db = open.result;
      for (const s of ["pending", "dead"]) db.createObjectStore(s, { keyPath: "key" }).createIndex("seq", "seq");
      db.createObjectStore("bodies");
      db.createObjectStore("meta");
    };
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction(["pending", "dead", "bodies", "meta"], "readwrite");
      const t0 = Date.now() - 60_000; // recent enough not to have expired
      const base = { createdAt: t0, activeSince: t0, nextAttemptAt: null, lastError: null };
      const meta = (key, seq, more = {}) => ({ ...base, key, seq, group: "note-1", attempts: 0, bytes: 12, ...more });
      tx.objectStore("pending").put(meta("old-b", 20));
      tx.objectStore("pending").put(meta("old-a", 10, { attempts: 2, lastError: { status: 503, message: "HTTP 503" }, nextAttemptAt: t0 + 1000 }));
      tx.objectStore("pending").put(meta("no-body", 30)); // its payload is missing: it can never be sent
      tx.objectStore("dead").put({ ...meta("old-dead", 5, { attempts: 1, lastError: { status: 422, message: "HTTP 422" } }), reason: "rejected", deadAt: t0 + 2000 });
      // Version 1 wrote a failure without an answer as `status: null`.
      tx.objectStore("dead").put({ ...meta("old-dead-net", 6, { attempts: 8, lastError: { status: null, message: "network down" } }), reason: "max-attempts", deadAt: t0 + 3000 });
      tx.objectStore("bodies").put('{"n":"a"}', "old-a");
      tx.objectStore("bodies").put('{"n":"b"}', "old-b");
      tx.objectStore("bodies").put('{"n":"dead"}', "old-dead");
      tx.objectStore("bodies").put('{"n":"net"}', "old-dead-net");
      tx.objectStore("meta").put({ retryEnabled: true, retryIntervalMs: 4321 }, "flags");
      tx.oncomplete = () => {
        db.close();
        resolve();
      };
      tx.onabort = () => reject(tx.error);
    };
  });
}

test("a version-1 database is upgraded in place and nothing in it is lost", { timeout: 30_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  await page.evaluate(writeVersion1, "upgrade");
  await openOutbox(page, { name: "upgrade", autoStart: false, jitter: "none" });

  const listed = await pending(page);
  assert.deepEqual(listed.map((m) => m.key), ["old-a", "old-b"], `pending after the upgrade, oldest first: ${safeJson(listed)}`);
  assert.deepEqual(listed.map((m) => m.payload), [{ n: "a" }, { n: "b" }], "payloads moved with their messages");
  assert.equal(listed[0].attempts, 2, "the attempt count survives");
  assert.equal(listed[0].lastError?.status, 503, `the last error survives: ${safeJson(listed[0])}`);
  assert.equal(listed[1].attempts, 0);
  assert.equal(listed[0].group, "note-1");

  const dead = await deadLetters(page);
  assert.deepEqual(dead.map((d) => d.key), ["old-dead", "old-dead-net"], `dead letters, oldest first: ${safeJson(dead)}`);
  assert.deepEqual(dead[0].payload, { n: "dead" }, "a dead letter keeps its payload");
  assert.equal(dead[0].reason, "rejected");
  assert.deepEqual(dead[0].lastError, { status: 422, message: "HTTP 422" });
  assert.deepEqual(dead[1].lastError, { message: "network down" }, "no answer: status is left out, as the types say");

  const s = await page.evaluate(() => window.ob.stats());
  assert.equal(s.pending, 2, `stats after the upgrade: ${safeJson(s)}`);
  assert.equal(s.dead, 2);
  const flags = await page.evaluate(() => window.ob.flags());
  assert.equal(flags.retryIntervalMs, 4321, `persisted flags survive: ${safeJson(flags)}`);

  // The upgraded messages are delivered, in order, under their old keys.
  await page.evaluate(() => window.ob.resume());
  await waitFor(() => server.appliedOnce("old-a") && server.appliedOnce("old-b"), { message: "both old messages applied once" });
  assert.deepEqual(server.applied.map((a) => a.key), ["old-a", "old-b"], "a group's order is kept");
  await waitForDrained(page);

  // And the dead letter can be redriven with its payload.
  await page.evaluate(() => window.ob.retryDead());
  await waitFor(() => server.appliedOnce("old-dead"), { message: "the redriven dead letter applied once" });
  assert.deepEqual(server.applied.find((a) => a.key === "old-dead").body, { n: "dead" });
});

/**
 * Writes a version-2 database `durable-outbox/<name>` by hand, as that layout did:
 * `count` messages in group "g" (every third) or none, the first with an attempt record,
 * one dead letter, and flags. Version 2 had two layouts: the first (`early`) kept a
 * unique index on "key"; the later one a "claims" store instead, here with the first
 * message's and the dead letter's keys.
 */
function writeVersion2({ name, count, early }) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(`durable-outbox/${name}`, 2);
    open.onupgradeneeded = () => {
      const db = open.result;
      const messages = db.createObjectStore("messages", { keyPath: ["seq", "key", "createdAt", "activeSince", "bytes", "group"] });
      if (early) messages.createIndex("key", "key", { unique: true });
      else db.createObjectStore("claims");
      db.createObjectStore("attempts", { keyPath: "key" });
      db.createObjectStore("inflight", { keyPath: "id" });
      db.createObjectStore("dead", { keyPath: "key" }).createIndex("seq", "seq");
      db.createObjectStore("meta");
    };
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      const tx = db.transaction([...db.objectStoreNames].filter((s) => s !== "inflight"), "readwrite");
      const t0 = Date.now() - 60_000; // recent enough not to have expired
      for (let i = 0; i < count; i++) {
        const key = `v2-${String(i).padStart(5, "0")}`;
        const body = JSON.stringify({ i });
        tx.objectStore("messages").add({ seq: 100 + i, key, createdAt: t0 + i, activeSince: t0 + i, bytes: body.length, group: i % 3 === 0 ? "g" : "", body });
      }
      if (!early) tx.objectStore("claims").put(true, "v2-00000");
      tx.objectStore("attempts").put({ key: "v2-00000", attempts: 3, nextAttemptAt: t0 + 500, lastError: { status: 503, message: "HTTP 503" } });
      if (!early) tx.objectStore("claims").put(true, "v2-dead");
      tx.objectStore("dead").put({ key: "v2-dead", seq: 50, createdAt: t0, activeSince: t0, bytes: 8, group: null, attempts: 1, nextAttemptAt: null, lastError: { status: 422, message: "HTTP 422" }, reason: "rejected", deadAt: t0 + 10, body: '{"d":1}' });
      tx.objectStore("meta").put({ retryEnabled: true, retryIntervalMs: 2345 }, "flags");
      tx.oncomplete = () => {
        db.close();
        resolve();
      };
      tx.onabort = () => reject(tx.error);
    };
  });
}

for (const early of [false, true]) {
test(`a version-2 database (${early ? "first layout, a unique key index" : "later layout, claims"}) is upgraded in place, in chunks, and nothing in it is lost`, { timeout: 60_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  // More than two of the upgrade's chunks (500), and not a multiple of one.
  const count = 1203;
  await page.evaluate(writeVersion2, { name: "upgrade-2", count, early });
  await openOutbox(page, { name: "upgrade-2", autoStart: false, jitter: "none" });

  const s = await stats(page);
  assert.equal(s.pending, count, `stats after the upgrade: ${safeJson(s)}`);
  assert.equal(s.dead, 1);
  const listed = await pending(page);
  assert.equal(listed.length, count);
  assert.deepEqual(listed.map((m) => m.key), Array.from({ length: count }, (_, i) => `v2-${String(i).padStart(5, "0")}`), "every message, oldest first");
  assert.ok(listed.every((m, i) => m.payload.i === i), "every payload moved with its message");
  assert.equal(listed[0].attempts, 3, `the attempt count survives: ${safeJson(listed[0])}`);
  assert.deepEqual(listed[0].lastError, { status: 503, message: "HTTP 503" });
  assert.equal(listed[0].group, "g");
  assert.equal(listed[1].group, null);
  const dead = await deadLetters(page);
  assert.deepEqual(dead.map((d) => [d.key, d.payload]), [["v2-dead", { d: 1 }]], `the dead letter survives: ${safeJson(dead)}`);
  assert.equal((await page.evaluate(() => window.ob.flags())).retryIntervalMs, 2345, "persisted flags survive");

  // The old store is gone, and the new one takes keys with each write.
  const layout = await inDatabase(
    page,
    "upgrade-2",
    (db) =>
      new Promise((resolve) => {
        const out = { version: db.version, stores: [...db.objectStoreNames], keyPath: db.transaction("messages").objectStore("messages").keyPath };
        const claims = db.transaction("claims").objectStore("claims").getAllKeys();
        claims.onsuccess = () => resolve({ ...out, claims: claims.result });
      }),
  );
  const { claims, ...rest } = layout;
  assert.deepEqual(rest, { version: 3, stores: ["attempts", "claims", "dead", "inflight", "messages", "meta"], keyPath: null }, safeJson(rest));
  // The later layout's claims survive; the first layout's keys are all claimed (which
  // of them the app chose is not known), so another tab can never store them again.
  const claimed = early ? [...listed.map((m) => m.key), "v2-dead"].sort() : ["v2-00000", "v2-dead"];
  assert.deepEqual(claims, claimed, `claims after the upgrade (${claims.length})`);

  // An upgraded key is still known: enqueueing it again is refused.
  const again = await page.evaluate(() => window.ob.enqueue({ again: true }, { key: "v2-00000" }).then(() => null, (e) => e.code));
  assert.equal(again, "duplicate-key");

  // Every upgraded message is delivered once, each group in order.
  await page.evaluate(() => window.ob.resume());
  await waitForDrained(page, { timeoutMs: 45_000 });
  assert.equal(server.applied.length, count, "every message applied");
  assert.ok(listed.every((m) => server.appliedOnce(m.key)), "each exactly once");
  const inGroup = server.applied.filter((a) => Number(a.key.slice(3)) % 3 === 0).map((a) => a.key);
  assert.deepEqual(inGroup, [...inGroup].sort(), "group g in its order");
});
}
