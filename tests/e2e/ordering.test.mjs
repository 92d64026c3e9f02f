// Scenario e: 3 groups x 10 messages against a server that fails about 40% of
// requests with 503 (seeded): every message is applied once and, per group,
// in enqueue order; a later message of a group is never sent before the
// earlier one was acknowledged.
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

const GROUPS = ["note-a", "note-b", "note-c"];
const PER_GROUP = 10;

test("group order holds under random 503s, and every message is applied once", { timeout: 60_000 }, async (t) => {
  const { server, page } = await setup(t, browser);
  server.program({ failureRate: 0.4, failureResponse: { status: 503 }, seed: 20240601 });
  await openOutbox(page, {
    name: "order-e",
    flags: { retryEnabled: true, retryIntervalMs: 20 },
    jitter: "none",
    maxAttempts: 100,
    maxDelayMs: 200,
  });

  const messages = await page.evaluate(
    async ({ groups, perGroup }) => {
      const out = [];
      for (let i = 0; i < perGroup; i++) {
        for (const g of groups) out.push(await window.ob.enqueue({ g, i }, { group: g }));
      }
      return out;
    },
    { groups: GROUPS, perGroup: PER_GROUP },
  );
  assert.equal(messages.length, GROUPS.length * PER_GROUP);
  const keys = messages.map((m) => m.key);
  assert.equal(new Set(keys).size, keys.length, "distinct keys");

  await waitFor(() => keys.every((k) => server.appliedOnce(k)), { timeoutMs: 30_000, message: "all 30 messages applied" });
  await waitForDrained(page);
  assert.deepEqual(await deadLetters(page), [], "nothing dead-lettered");
  const failures = server.received.filter((r) => r.status === 503).length;
  assert.ok(failures > 0, "the server did fail some requests");
  t.diagnostic(`${server.received.length} requests, ${failures} answered 503`);

  for (const k of keys) assert.equal(server.applyCount(k), 1, `key ${k} applied ${server.applyCount(k)} times`);
  assert.deepEqual(server.conflicts, []);

  const byKey = new Map(messages.map((m) => [m.key, m]));
  for (const g of GROUPS) {
    const appliedOrder = server.applied.filter((a) => a.body?.g === g).map((a) => a.body.i);
    assert.deepEqual(appliedOrder, [...Array(PER_GROUP).keys()], `group ${g} applied in order ${safeJson(appliedOrder)}`);
    for (const a of server.applied.filter((a) => a.body?.g === g)) {
      assert.equal(byKey.get(a.key)?.payload?.i, a.body.i, `group ${g}: payload i=${a.body.i} applied under the key of another message`);
    }
    // No message of the group was sent before its predecessor was acknowledged.
    for (let i = 1; i < PER_GROUP; i++) {
      const prevApplied = server.applied.find((a) => a.body?.g === g && a.body?.i === i - 1);
      const firstSend = server.received.find((r) => r.body?.g === g && r.body?.i === i);
      assert.ok(
        firstSend.n > prevApplied.n,
        `group ${g}: message ${i} was sent (request #${firstSend.n}) before message ${i - 1} was acknowledged (request #${prevApplied.n})`,
      );
    }
  }
});
