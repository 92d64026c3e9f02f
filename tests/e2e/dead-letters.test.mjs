// Scenario b: a 400 goes to the dead-letter store at once and does not block
// its group; retryDead() after the server is fixed delivers it once, same key.
// Scenario f: a server that always answers 500 dead-letters the message with
// reason "max-attempts" after exactly maxAttempts requests.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, setup, openOutbox, waitFor, waitForDrained, pending, deadLetters, sleep, safeJson } from "../support/e2e.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test("a 400 is dead-lettered as rejected, and retryDead delivers it once with the same key", { timeout: 30_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ reject: { match: (body) => body?.poison === true, status: 400 } });
  await openOutbox(page, { name: "dead-b", flags: { retryEnabled: true, retryIntervalMs: 50 }, jitter: "none" });

  const [poison, next] = await page.evaluate(async () => [
    await window.ob.enqueue({ poison: true, n: 1 }, { group: "note-1" }),
    await window.ob.enqueue({ n: 2 }, { group: "note-1" }),
  ]);

  // The poison message is parked; the one behind it in its group still goes out.
  await waitFor(async () => (await deadLetters(page)).length === 1 && server.appliedOnce(next.key), {
    timeoutMs: 10_000,
    message: "the 400 to be dead-lettered and the next message of the group delivered",
  });
  await waitForDrained(page);
  const [dead] = await deadLetters(page);
  assert.equal(dead.key, poison.key, "the dead letter keeps its key");
  assert.equal(dead.state, "dead");
  assert.equal(dead.reason, "rejected", `reason: ${safeJson(dead)}`);
  assert.equal(dead.lastError?.status, 400, `lastError: ${safeJson(dead.lastError)}`);
  assert.equal(typeof dead.lastError?.message, "string");
  assert.equal(typeof dead.deadAt, "number");
  assert.deepEqual(dead.payload, { poison: true, n: 1 });
  assert.equal(dead.group, "note-1");
  assert.equal(server.requestsFor(poison.key).length, 1, "a permanent failure is not resent");
  assert.equal(server.applyCount(poison.key), 0);

  // Fix the server, then redrive.
  server.program({ reject: null });
  const moved = await page.evaluate(() => window.ob.retryDead());
  assert.equal(moved, 1, "retryDead() returns the number moved back to pending");
  await waitFor(() => server.appliedOnce(poison.key), { timeoutMs: 10_000, message: "the redriven message to be applied" });
  await waitForDrained(page);
  assert.deepEqual(await deadLetters(page), [], "the dead-letter store is empty after the redrive");
  assert.deepEqual(await pending(page), []);
  const poisonRequests = server.received.filter((r) => r.body?.poison === true);
  assert.equal(poisonRequests.length, 2, `one rejected send and one redriven send, got ${poisonRequests.length}`);
  assert.ok(poisonRequests.every((r) => r.key === poison.key), `the redrive used the SAME key: ${safeJson(poisonRequests.map((r) => r.key))}`);
  assert.equal(server.applyCount(poison.key), 1);
  assert.equal(server.applyCount(next.key), 1);
  const evts = await page.evaluate(() => window.events.map((e) => e.type));
  for (const type of ["enqueued", "delivered", "dead-lettered", "redriven"]) {
    assert.ok(evts.includes(type), `an event of type ${type} was emitted (got ${safeJson([...new Set(evts)])})`);
  }
});

test("discardDead deletes dead letters", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ default: { status: 422 } });
  await openOutbox(page, { name: "dead-discard", flags: { retryEnabled: true, retryIntervalMs: 50 }, jitter: "none" });
  const keys = await page.evaluate(async () => [
    (await window.ob.enqueue({ n: 1 })).key,
    (await window.ob.enqueue({ n: 2 })).key,
  ]);
  await waitFor(async () => (await deadLetters(page)).length === 2, { message: "two dead letters" });
  assert.equal(await page.evaluate((k) => window.ob.discardDead([k]), keys[0]), 1);
  assert.deepEqual((await deadLetters(page)).map((d) => d.key), [keys[1]]);
  assert.equal(await page.evaluate(() => window.ob.discardDead()), 1);
  assert.deepEqual(await deadLetters(page), []);
  assert.equal(await page.evaluate(() => window.ob.stats().dead), 0);
});

test("max-attempts: always 500 with maxAttempts 3 dead-letters after exactly 3 requests", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ default: { status: 500 } });
  await openOutbox(page, { name: "dead-f", maxAttempts: 3, flags: { retryEnabled: true, retryIntervalMs: 10 }, jitter: "none" });
  const { key } = await page.evaluate(() => window.ob.enqueue({ n: 1 }));

  await waitFor(async () => (await deadLetters(page)).length === 1, { timeoutMs: 10_000, message: "the message to be dead-lettered" });
  const [dead] = await deadLetters(page);
  assert.equal(dead.key, key);
  assert.equal(dead.reason, "max-attempts", `reason: ${safeJson(dead)}`);
  assert.equal(dead.attempts, 3, `attempts: ${safeJson(dead)}`);
  assert.equal(dead.lastError?.status, 500, `lastError: ${safeJson(dead.lastError)}`);
  assert.deepEqual(await pending(page), []);
  // Several intervals later: still exactly 3 requests, nothing more was sent.
  await sleep(300);
  assert.equal(server.requestsFor(key).length, 3, `requests: ${server.requestsFor(key).length}`);
  assert.equal(server.received.length, 3);
});

test("a message older than maxAgeMs is dead-lettered as expired instead of resent", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ default: { status: 503 } });
  await openOutbox(page, { name: "dead-expired", maxAgeMs: 600, maxAttempts: 1000, flags: { retryEnabled: true, retryIntervalMs: 100 }, jitter: "none", maxDelayMs: 100 });
  const { key, createdAt } = await page.evaluate(() => window.ob.enqueue({ n: 1 }));
  await waitFor(async () => (await deadLetters(page)).length === 1, { timeoutMs: 10_000, message: "the message to expire" });
  const [dead] = await deadLetters(page);
  assert.equal(dead.key, key);
  assert.equal(dead.reason, "expired", `reason: ${safeJson(dead)}`);
  const lastSend = Math.max(...server.requestsFor(key).map((r) => r.at));
  assert.ok(lastSend - createdAt <= 600 + 250, `a request went out ${lastSend - createdAt} ms after enqueue, past maxAgeMs 600`);
  const n = server.requestsFor(key).length;
  await sleep(300);
  assert.equal(server.requestsFor(key).length, n, "no send after expiry");
});
