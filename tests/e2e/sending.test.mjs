// Scenario h: the package imports in a plain page with no init call, and the
// `transport` option replaces fetch. Also: what a send looks like on the wire.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, setup, openOutbox, waitFor, waitForDrained, deadLetters, safeJson } from "../support/e2e.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test("the package imports in a plain page and opens with no init call", { timeout: 20_000 }, async (t) => {
  const { page } = await setup(t, browser);
  const info = await page.evaluate(async () => {
    const ob = await window.Outbox.open({ name: "plain", endpoint: "/messages", autoStart: false });
    const s = ob.stats();
    await ob.close();
    return { type: typeof window.Outbox, open: typeof window.Outbox.open, stats: s };
  });
  assert.equal(info.type, "function");
  assert.equal(info.open, "function");
  assert.equal(info.stats.pending, 0, safeJson(info.stats));
  assert.equal(info.stats.dead, 0, safeJson(info.stats));
});

test("a transport function is used instead of fetch, with the same key on every attempt", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  const result = await page.evaluate(async () => {
    window.calls = [];
    let first = true;
    window.ob = await window.Outbox.open({
      name: "transport-h",
      flags: { retryEnabled: true, retryIntervalMs: 20 },
      jitter: "none",
      transport: async ({ key, payload, group, attempt }) => {
        window.calls.push({ key, payload, group, attempt });
        if (payload.n === 1 && first) {
          first = false;
          return { status: 503, headers: { "Retry-After": "0" } };
        }
        return { status: 201, headers: new Headers({ "Content-Type": "application/json" }) };
      },
    });
    const a = await window.ob.enqueue({ n: 1 }, { group: "g1" });
    const b = await window.ob.enqueue({ n: 2 });
    return { keys: [a.key, b.key] };
  });
  await waitForDrained(page);
  const calls = await page.evaluate(() => window.calls);
  const [k1, k2] = result.keys;
  const c1 = calls.filter((c) => c.key === k1);
  const c2 = calls.filter((c) => c.key === k2);
  assert.equal(c1.length, 2, `message 1: a 503 then a 201 (calls: ${safeJson(calls)})`);
  assert.deepEqual(c1.map((c) => c.attempt), [1, 2], "attempt numbers");
  assert.deepEqual(c1[0].payload, { n: 1 });
  assert.equal(c1[0].group, "g1");
  assert.equal(c2.length, 1, `message 2: one call (calls: ${safeJson(calls)})`);
  assert.equal(c2[0].attempt, 1);
  assert.equal(c2[0].group ?? null, null, "an ungrouped message has no group");
  assert.equal(server.received.length, 0, "fetch was not used");
  assert.deepEqual(await deadLetters(page), []);
});

test("a send is a JSON POST with Idempotency-Key, static headers and getHeaders()", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  await page.evaluate(async () => {
    let token = 0;
    window.ob = await window.Outbox.open({
      name: "headers-h",
      endpoint: location.origin + "/messages",
      headers: { Authorization: "Bearer static" },
      getHeaders: async () => ({ "X-Token": `t${++token}` }),
      flags: { retryEnabled: true, retryIntervalMs: 20 },
      jitter: "none",
    });
  });
  server.queue({ status: 503 });
  const { key } = await page.evaluate(() => window.ob.enqueue({ text: "héllo", list: [1, 2, 3], nested: { a: null } }));
  await waitFor(() => server.appliedOnce(key), { message: "delivery" });
  await waitForDrained(page);
  const reqs = server.requestsFor(key);
  assert.equal(reqs.length, 2);
  for (const r of reqs) {
    assert.equal(r.headers["idempotency-key"], key);
    assert.match(String(r.headers["content-type"]), /^application\/json/);
    assert.equal(r.headers.authorization, "Bearer static");
    assert.deepEqual(r.body, { text: "héllo", list: [1, 2, 3], nested: { a: null } });
  }
  assert.deepEqual(reqs.map((r) => r.headers["x-token"]), ["t1", "t2"], "getHeaders() is called before each send");
});

test("stats() and events follow a delivery", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  await openOutbox(page, { name: "stats-h", autoStart: false });
  const { key } = await page.evaluate(() => window.ob.enqueue({ n: 1 }, { group: "s" }));
  const s1 = await page.evaluate(() => window.ob.stats());
  assert.equal(s1.pending, 1, safeJson(s1));
  assert.equal(s1.inFlight, 0, safeJson(s1));
  assert.equal(typeof s1.oldestPendingAgeMs, "number", safeJson(s1));
  const summary = await page.evaluate(() => window.ob.flush());
  assert.equal(summary.attempted, 1, safeJson(summary));
  assert.equal(summary.delivered, 1, safeJson(summary));
  assert.ok(server.appliedOnce(key));
  const s2 = await page.evaluate(() => window.ob.stats());
  assert.equal(s2.pending, 0, safeJson(s2));
  assert.equal(s2.delivered, 1, safeJson(s2));
  assert.equal(s2.oldestPendingAgeMs, null, safeJson(s2));
  const evts = await page.evaluate(() => window.events);
  const enq = evts.find((e) => e.type === "enqueued");
  const del = evts.find((e) => e.type === "delivered");
  assert.ok(enq && enq.key === key && enq.group === "s", `enqueued event: ${safeJson(evts)}`);
  assert.ok(del && del.key === key && del.status === 201 && del.attempts === 1, `delivered event: ${safeJson(evts)}`);
});

test("the outcome table: 408/409/425/429/5xx are retried, other 4xx are rejected", { timeout: 30_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  await openOutbox(page, { name: "outcomes", flags: { retryEnabled: true, retryIntervalMs: 20 }, jitter: "none", maxAttempts: 5 });
  const transient = [408, 409, 425, 429, 500, 502, 503, 504];
  const permanent = [400, 401, 403, 404, 410, 413, 422];
  const keys = {};
  for (const status of [...transient, ...permanent]) {
    keys[status] = `status-${status}`;
    server.queueFor(keys[status], { status });
  }
  await page.evaluate((ks) => Promise.all(ks.map((k) => window.ob.enqueue({ k }, { key: k }))), Object.values(keys));
  await waitFor(
    async () => transient.every((s) => server.appliedOnce(keys[s])) && (await deadLetters(page)).length === permanent.length,
    { timeoutMs: 10_000, message: "transient statuses delivered on retry and permanent ones dead-lettered" },
  ).catch(async (e) => {
    throw new Error(`${e.message}\npending: ${safeJson(await page.evaluate(() => window.ob.pending()))}\ndead: ${safeJson(await deadLetters(page))}`);
  });
  for (const s of transient) assert.equal(server.requestsFor(keys[s]).length, 2, `status ${s}: retried once then delivered`);
  const dead = await deadLetters(page);
  for (const s of permanent) {
    const d = dead.find((x) => x.key === keys[s]);
    assert.equal(d?.reason, "rejected", `status ${s}: ${safeJson(d)}`);
    assert.equal(d.lastError?.status, s);
    assert.equal(server.requestsFor(keys[s]).length, 1, `status ${s}: not resent`);
  }
});

test("a classify option overrides the outcome table", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  await page.evaluate(async () => {
    window.ob = await window.Outbox.open({
      name: "classify",
      endpoint: location.origin + "/messages",
      flags: { retryEnabled: true, retryIntervalMs: 20 },
      jitter: "none",
      // This app's server says 404 for "not yet" and 503 for "never".
      classify: (status) => (status === 404 ? "transient" : status === 503 ? "permanent" : status < 300 ? "delivered" : "transient"),
    });
  });
  server.queueFor("c-404", { status: 404 });
  server.queueFor("c-503", { status: 503 });
  await page.evaluate(async () => {
    await window.ob.enqueue({ n: 1 }, { key: "c-404" });
    await window.ob.enqueue({ n: 2 }, { key: "c-503" });
  });
  await waitFor(async () => server.appliedOnce("c-404") && (await deadLetters(page)).length === 1, { message: "404 retried and 503 rejected" });
  const [d] = await deadLetters(page);
  assert.equal(d.key, "c-503");
  assert.equal(d.reason, "rejected");
  assert.equal(server.requestsFor("c-404").length, 2);
});

test("at most `concurrency` requests are in flight", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ delayMs: 150 });
  await openOutbox(page, { name: "concurrency", concurrency: 2 });
  const keys = await page.evaluate(async () => {
    const ms = await Promise.all([0, 1, 2, 3, 4, 5].map((n) => window.ob.enqueue({ n })));
    return ms.map((m) => m.key);
  });
  await waitFor(() => keys.every((k) => server.appliedOnce(k)), { message: "all six delivered" });
  await waitForDrained(page);
  assert.ok(server.stats.maxInFlight <= 2, `at most 2 requests in flight, saw ${server.stats.maxInFlight}`);
  assert.equal(server.stats.maxInFlight, 2, "ungrouped messages are sent in parallel");
});
