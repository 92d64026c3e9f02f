// Scenario c: Retry-After is honoured as the minimum wait.
// Scenario d: the retry flag: off stops resends (the message stays pending,
// not dead), on resumes them; flags are persisted.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { launchBrowser, setup, openOutbox, waitFor, waitForDrained, waitForOutboxModule, pending, deadLetters, sleep, safeJson } from "../support/e2e.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

test("Retry-After: 2 on a 503 delays the resend by at least 2 s", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.queue({ status: 503, headers: { "Retry-After": "2" } });
  await openOutbox(page, { name: "retry-c", flags: { retryEnabled: true, retryIntervalMs: 50 }, jitter: "none" });
  const { key } = await page.evaluate(() => window.ob.enqueue({ n: 1 }));

  await waitFor(() => server.appliedOnce(key), { timeoutMs: 8_000, message: "delivery after the Retry-After wait" });
  await waitForDrained(page);
  const reqs = server.requestsFor(key);
  assert.equal(reqs.length, 2, `two requests (503, then 201), got ${safeJson(reqs.map((r) => r.status))}`);
  assert.equal(reqs[0].status, 503);
  const gap = reqs[1].at - reqs[0].at;
  assert.ok(gap >= 1900, `the resend came ${gap} ms after the 503 with Retry-After: 2 (expected >= 2000 ms)`);
  assert.ok(gap < 4000, `the resend came ${gap} ms after the 503 (expected about 2000 ms)`);
  assert.deepEqual(await deadLetters(page), []);
});

test("Retry-After as an HTTP date is honoured too", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  const key = "retry-date-1";
  // HTTP dates have whole seconds: 3 s ahead, truncated, is 2 to 3 s away.
  server.queueFor(key, { status: 503, headers: { "Retry-After": new Date(Date.now() + 3000).toUTCString() } });
  await openOutbox(page, { name: "retry-date", flags: { retryEnabled: true, retryIntervalMs: 50 }, jitter: "none" });
  await page.evaluate((key) => window.ob.enqueue({ n: 1 }, { key }), key);
  await waitFor(() => server.appliedOnce(key), { timeoutMs: 8_000, message: "delivery after the Retry-After date" });
  const reqs = server.requestsFor(key);
  assert.equal(reqs.length, 2, `requests: ${safeJson(reqs.map((r) => r.status))}`);
  const gap = reqs[1].at - reqs[0].at;
  assert.ok(gap >= 1500, `the resend came ${gap} ms after a 503 whose Retry-After date was 2-3 s ahead`);
  assert.ok(gap < 4500, `the resend came ${gap} ms after the 503 (expected 2-3 s)`);
});

test("retryEnabled false: no resend after a 503, stays pending; setFlags on resumes it", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.queue({ status: 503 });
  await openOutbox(page, { name: "retry-d", flags: { retryEnabled: false, retryIntervalMs: 100 }, jitter: "none" });
  const { key } = await page.evaluate(() => window.ob.enqueue({ n: 1 }));

  // The first send still happens.
  await server.waitForRequests(1, { timeoutMs: 5_000 });
  // Then nothing for many intervals.
  await sleep(1500);
  assert.equal(server.requestsFor(key).length, 1, `resends with retryEnabled false: ${server.requestsFor(key).length - 1}`);
  const waiting = await pending(page);
  assert.equal(waiting.length, 1, `the message stays pending: ${safeJson(waiting)}`);
  assert.equal(waiting[0].key, key);
  assert.equal(waiting[0].attempts, 1, `a 503 counts as an attempt: ${safeJson(waiting[0])}`);
  assert.deepEqual(await deadLetters(page), [], "not dead-lettered");
  assert.equal((await page.evaluate(() => window.ob.flags())).retryEnabled, false);

  const flags = await page.evaluate(() => window.ob.setFlags({ retryEnabled: true }));
  assert.equal(flags.retryEnabled, true, `setFlags returns the flags: ${safeJson(flags)}`);
  assert.equal(flags.retryIntervalMs, 100, "setFlags keeps the interval it was not given");
  await waitFor(() => server.appliedOnce(key), { timeoutMs: 3_000, message: "delivery after turning retries on" });
  await waitForDrained(page);
  assert.equal(server.requestsFor(key).length, 2);
  assert.ok((await page.evaluate(() => window.events.map((e) => e.type))).includes("flags-changed"), "a flags-changed event");
});

test("flags set with setFlags are persisted and win over options.flags on the next open", { timeout: 20_000 }, async (t) => {
  const { page } = await setup(t, browser);
  const options = { name: "retry-persist", flags: { retryEnabled: true, retryIntervalMs: 1000 }, autoStart: false };
  await openOutbox(page, options);
  assert.deepEqual(
    await page.evaluate(() => window.ob.flags()),
    { retryEnabled: true, retryIntervalMs: 1000 },
    "options.flags are used when nothing is persisted",
  );
  await page.evaluate(() => window.ob.setFlags({ retryEnabled: false, retryIntervalMs: 250 }));
  await page.evaluate(() => window.ob.close());
  await page.reload();
  await waitForOutboxModule(page);
  await openOutbox(page, options);
  const flags = await page.evaluate(() => window.ob.flags());
  assert.equal(flags.retryEnabled, false, `persisted flags after reopen: ${safeJson(flags)}`);
  assert.equal(flags.retryIntervalMs, 250, `persisted flags after reopen: ${safeJson(flags)}`);
});

test("a shorter retryIntervalMs reschedules a message that is already waiting", { timeout: 20_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.queue({ status: 503 });
  await openOutbox(page, { name: "retry-resched", flags: { retryEnabled: true, retryIntervalMs: 60_000 }, jitter: "none" });
  const { key } = await page.evaluate(() => window.ob.enqueue({ n: 1 }));
  await server.waitForRequests(1, { timeoutMs: 5_000 });
  await waitFor(async () => (await pending(page))[0]?.attempts === 1, { message: "the 503 recorded" });
  await page.evaluate(() => window.ob.setFlags({ retryIntervalMs: 50 }));
  await waitFor(() => server.appliedOnce(key), { timeoutMs: 3_000, message: "the resend to be rescheduled by the shorter interval" });
  await waitForDrained(page);
});
