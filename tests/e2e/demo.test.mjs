// The notes demo (www/) against the REAL reference server (target/debug/outbox-server,
// in-memory store), driven through its UI in headless Chromium:
//   1. three notes written offline survive a reload as pending, then arrive once each;
//   2. with the server failing half the requests, a note's edits arrive in order;
//   3. a message the server refuses lands in Failed sync; Retry delivers it once the
//      cause is fixed (a revoked sign-in, 401); a poison message (422) is discarded;
//   4. a screenshot (test-results/demo.png), every panel visible, no jumps, 375px wide.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs/promises";
import path from "node:path";
import { launchBrowser, waitFor, safeJson } from "../support/e2e.mjs";
import { REPO_ROOT } from "../support/test-server.mjs";
import { startDemoServer, ensureServerBinary } from "../support/demo-server.mjs";

const PANELS = ["notes", "connection", "pending", "failed", "flags", "chaos", "server"];
const RESULTS = path.join(REPO_ROOT, "test-results");

let browser;
before(async () => {
  ensureServerBinary();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A fresh server, context and page with the demo loaded. */
async function open(t, { viewport = { width: 1280, height: 900 } } = {}) {
  const server = await startDemoServer();
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String((e && e.stack) || e)));
  page.on("console", (m) => {
    if (process.env.E2E_DEBUG) console.error(`[page console.${m.type()}] ${m.text()}`);
  });
  t.after(async () => {
    await context.close().catch(() => {});
    await server.close().catch(() => {});
    if (process.env.E2E_DEBUG) console.error(server.output());
  });
  await page.goto(server.url + "/");
  await waitForApp(page);
  return { server, context, page, pageErrors };
}

async function waitForApp(page) {
  await page.waitForFunction(() => window.demo && (window.demo.ready || window.demo.error), null, { timeout: 15_000 });
  const error = await page.evaluate(() => window.demo.error);
  if (error) throw new Error(`the demo did not start: ${error}`);
}

async function addNote(page, title, body) {
  await page.getByLabel("Title", { exact: true }).fill(title);
  await page.getByLabel("Text", { exact: true }).fill(body);
  await page.getByRole("button", { name: "Save note" }).click();
}

async function editNote(page, title, body) {
  await page.getByRole("button", { name: `Edit “${title}”` }).click();
  await page.getByLabel("Text", { exact: true }).fill(body);
  await page.getByRole("button", { name: "Save note" }).click();
}

/** What a list panel shows: [{ key, text, reason }] from its <li data-key>. */
const listed = (page, id) =>
  page.$$eval(`#${id} > li`, (items) => items.map((li) => ({ key: li.dataset.key, text: li.textContent, reason: li.dataset.reason })));

const serverLog = (server) => server.api("GET", "/v1/messages");

function assertNoPageErrors(pageErrors) {
  assert.deepEqual(pageErrors, [], `uncaught errors in the page:\n${pageErrors.join("\n")}`);
}

test("notes written offline survive a reload as pending and arrive exactly once when back online", { timeout: 30_000 }, async (t) => {
  const { server, context, page, pageErrors } = await open(t);
  // The service worker and its cache make the offline reload possible.
  await page.waitForFunction(() => document.documentElement.dataset.shell === "done", null, { timeout: 10_000 });
  assert.match(await page.textContent("#shell-state"), /ready/, "the offline copy of the app should be cached");

  await context.setOffline(true);
  await waitFor(() => page.evaluate(() => document.getElementById("conn-state").textContent === "offline"), { message: "the connection panel to say offline" });
  const titles = ["Groceries", "Call the plumber", "Book ideas"];
  for (const [i, title] of titles.entries()) await addNote(page, title, `note ${i} written offline`);
  const before = await waitFor(async () => {
    const items = await listed(page, "pending-list");
    return items.length === 3 && items;
  }, { message: "three messages in the pending panel" });
  const keys = before.map((i) => i.key);

  await page.reload();
  await waitForApp(page);
  assert.equal(await page.evaluate(() => navigator.onLine), false, "the page should still be offline after the reload");
  const afterReload = await waitFor(async () => {
    const items = await listed(page, "pending-list");
    return items.length === 3 && items;
  }, { message: "the pending panel after the offline reload" });
  assert.deepEqual(afterReload.map((i) => i.key), keys, "the same three keys, oldest first, after the reload");
  titles.forEach((title, i) => assert.match(afterReload[i].text, new RegExp(`“${title}”.*attempts\\s*0`), `pending item ${i}: ${afterReload[i].text}`));
  for (const title of titles) assert.ok(await page.getByRole("heading", { name: title }).isVisible(), `the note ${title} is listed after the reload`);
  assert.equal((await serverLog(server)).total, 0, "nothing can reach the server while offline");

  await context.setOffline(false);
  const log = await waitFor(async () => {
    const doc = await serverLog(server);
    return keys.every((k) => doc.messages.some((m) => m.key === k)) && doc;
  }, { timeoutMs: 15_000, message: "the three keys in the server's log" });
  for (const k of keys) assert.equal(log.messages.filter((m) => m.key === k).length, 1, `key ${k} applied exactly once`);
  assert.equal(log.total, 3, `exactly three applied messages: ${safeJson(log)}`);
  // Each note is its own group, so the three are sent concurrently: any order.
  assert.deepEqual(log.messages.map((m) => m.payload.title).sort(), [...titles].sort(), "the three notes applied");
  await waitFor(async () => (await listed(page, "pending-list")).length === 0 && (await page.isVisible("#pending-empty")), { message: "the pending panel to empty" });
  await waitFor(() => page.evaluate(() => document.getElementById("srv-total").textContent === "3"), { message: "the server panel to show 3 applied" });
  assertNoPageErrors(pageErrors);
});

test("with the server failing half the requests, a note's edits arrive in order, once each", { timeout: 60_000 }, async (t) => {
  const { server, page, pageErrors } = await open(t);
  // A short backoff, through the server's flags document (polled and applied by the app).
  await server.api("PUT", "/v1/flags", { retryEnabled: true, retryIntervalMs: 100 });
  await waitFor(() => page.evaluate(() => window.demo.outbox.flags().retryIntervalMs === 100), { timeoutMs: 8_000, message: "the app to apply the server's flags" });
  await waitFor(async () => (await page.textContent("#flags-applied")).includes("100 ms"), { message: "the flags panel to show 100 ms" });

  // Chaos through the panel (it PUTs /admin/chaos).
  await page.getByLabel("Fail share (0 to 1)").fill("0.5");
  await page.getByRole("button", { name: "Apply chaos" }).click();
  await waitFor(async () => (await server.api("GET", "/admin/chaos")).fail === 0.5, { message: "chaos fail=0.5 on the server" });
  await waitFor(async () => /fail=0\.5/.test(await page.textContent("#chaos-now")), { message: "the chaos panel to show fail=0.5" });

  const EDITS = 5;
  await addNote(page, "Diary", "edit 1");
  for (let n = 2; n <= EDITS; n++) await editNote(page, "Diary", `edit ${n}`);
  const id = await page.evaluate(() => JSON.parse(localStorage.getItem("notes-demo/notes"))[0].id);

  const log = await waitFor(async () => {
    const doc = await serverLog(server);
    return doc.messages.filter((m) => m.payload.id === id).length >= EDITS && doc;
  }, { timeoutMs: 45_000, intervalMs: 100, message: `${EDITS} edits of the note on the server` });
  const mine = log.messages.filter((m) => m.payload.id === id);
  assert.deepEqual(mine.map((m) => m.payload.rev), [1, 2, 3, 4, 5], `revs in the server's order: ${safeJson(mine.map((m) => m.payload))}`);
  assert.deepEqual(mine.map((m) => m.payload.body), ["edit 1", "edit 2", "edit 3", "edit 4", "edit 5"]);
  assert.equal(new Set(mine.map((m) => m.key)).size, EDITS, "one key per edit, each applied once");
  await waitFor(async () => (await listed(page, "pending-list")).length === 0, { message: "the pending panel to empty" });
  assert.deepEqual(await listed(page, "failed-list"), [], "nothing dead-lettered");
  const stats = await page.evaluate(() => window.demo.outbox.stats());
  t.diagnostic(`${EDITS} edits took ${stats.attempts} requests under fail=0.5`);
  await server.api("PUT", "/admin/chaos", {});
  assertNoPageErrors(pageErrors);
});

test("a refused message lands in Failed sync and Retry delivers it once fixed; a poison message is discarded", { timeout: 30_000 }, async (t) => {
  const { server, page, pageErrors } = await open(t);
  await addNote(page, "Accepted", "sent while signed in");
  await waitFor(async () => (await serverLog(server)).total === 1, { message: "the first note on the server" });

  // The server refuses the outbox's revoked sign-in: 401, permanent, dead-lettered at once.
  await page.getByRole("button", { name: "Revoke the outbox's sign-in" }).click();
  assert.ok(await page.getByRole("button", { name: "Restore the outbox's sign-in" }).isVisible(), "the toggle now offers to restore");
  await addNote(page, "Signed out", "sent with a revoked token");
  const [dead] = await waitFor(async () => {
    const items = await listed(page, "failed-list");
    return items.length === 1 && items;
  }, { message: "one item in the failed-sync panel" });
  assert.equal(dead.reason, "rejected");
  assert.match(dead.text, /refused by the server \(rejected\): .*401.*unauthorized/, `the failed item shows its reason and last error: ${dead.text}`);
  assert.match(dead.text, /“Signed out”/);
  assert.equal((await serverLog(server)).total, 1, "the refused message was not applied");
  assert.match(await page.locator(`#notes-list > li`, { hasText: "Signed out" }).locator(".badge").textContent(), /sync failed/);

  // Fix the cause, then Retry that item: the same key is delivered.
  await page.getByRole("button", { name: "Restore the outbox's sign-in" }).click();
  await page.getByRole("button", { name: "Retry save “Signed out”, rev 1" }).click();
  const log = await waitFor(async () => {
    const doc = await serverLog(server);
    return doc.messages.some((m) => m.key === dead.key) && doc;
  }, { timeoutMs: 10_000, message: "the retried message on the server" });
  assert.equal(log.messages.filter((m) => m.key === dead.key).length, 1, "applied once, under its original key");
  await waitFor(async () => (await listed(page, "failed-list")).length === 0, { message: "the failed-sync panel to empty" });

  // A poison message: different content under an applied key. 422, and Retry cannot help.
  await page.getByRole("button", { name: "Send a poison message" }).click();
  const [poison] = await waitFor(async () => {
    const items = await listed(page, "failed-list");
    return items.length === 1 && items;
  }, { message: "the poison message in the failed-sync panel" });
  assert.match(poison.text, /poison message.*rejected\): .*422.*key-mismatch/s, poison.text);
  assert.ok(log.messages.some((m) => m.key === poison.key), "the poison message reuses an applied key");
  assert.ok((await serverLog(server)).mismatches >= 1, "the server counted a key mismatch");
  await page.locator("#failed-list > li").getByRole("button", { name: /^Discard/ }).click();
  await waitFor(async () => (await listed(page, "failed-list")).length === 0, { message: "the poison message discarded" });
  const final = await serverLog(server);
  assert.equal(final.total, 2, `two notes applied, the poison none: ${safeJson(final)}`);
  assert.notEqual(final.messages.find((m) => m.key === poison.key).payload.op, "poison", "the applied content is unchanged");
  assertNoPageErrors(pageErrors);
});

test("the page: every panel visible with content, no jumps, readable at 375px; screenshot", { timeout: 30_000 }, async (t) => {
  const { page, pageErrors } = await open(t);
  // Measured once the page has settled (the offline-copy line is final).
  await page.waitForFunction(() => document.documentElement.dataset.shell === "done", null, { timeout: 10_000 });
  const headings = () => page.$$eval("main h2", (hs) => hs.map((h) => Math.round(h.getBoundingClientRect().top + window.scrollY)));
  const emptyLayout = await headings();

  await addNote(page, "Welcome", "Write notes offline; they sync when you are back.");
  await addNote(page, "Groceries", "Eggs, flour, milk");
  await waitFor(() => page.evaluate(() => document.getElementById("srv-total").textContent === "2"), { message: "two notes applied" });
  // One failed item (revoked sign-in), then one stuck pending behind the server's chaos.
  await page.getByRole("button", { name: "Revoke the outbox's sign-in" }).click();
  await addNote(page, "Draft", "refused: signed out");
  await waitFor(async () => (await listed(page, "failed-list")).length === 1, { message: "a failed item" });
  await page.getByRole("button", { name: "Restore the outbox's sign-in" }).click();
  await page.getByLabel("Fail share (0 to 1)").fill("1");
  await page.getByRole("button", { name: "Apply chaos" }).click();
  await waitFor(async () => /fail=1/.test(await page.textContent("#chaos-now")), { message: "chaos fail=1" });
  await addNote(page, "Meeting notes", "waits for the server to recover");
  await waitFor(async () => {
    const [item] = await listed(page, "pending-list");
    return item && /attempts\s*[1-9]/.test(item.text) && /next try in/.test(item.text);
  }, { timeoutMs: 10_000, message: "a pending item with an attempt and a next retry time" });

  assert.deepEqual(await headings(), emptyLayout, "the panels did not move as the lists and counters filled");
  for (const id of PANELS) assert.ok(await page.isVisible(`#${id}`), `panel #${id} is visible`);
  await fs.mkdir(RESULTS, { recursive: true });
  await page.screenshot({ path: path.join(RESULTS, "demo.png"), fullPage: true });

  await page.setViewportSize({ width: 375, height: 812 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at 375px (overflow ${overflow}px)`);
  for (const id of PANELS) assert.ok(await page.isVisible(`#${id}`), `panel #${id} is visible at 375px`);
  await page.screenshot({ path: path.join(RESULTS, "demo-375.png"), fullPage: true });
  assertNoPageErrors(pageErrors);
});
