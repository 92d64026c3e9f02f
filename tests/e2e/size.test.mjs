// The package's size (wasm + JS glue + entry, gzip -9), held to the performance issue's
// target of 60 KB (60,000 bytes) so that it cannot grow past it unnoticed. The bench
// reports the same figure.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { REPO_ROOT } from "../support/test-server.mjs";

const LIMIT = 60_000; // bytes, gzip -9

function shippedFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...shippedFiles(file));
    else if (/\.(wasm|js)$/.test(entry.name)) out.push(file);
  }
  return out;
}

test("the package (wasm + JS, gzip -9) stays within 60 KB", () => {
  const pkg = path.join(REPO_ROOT, "pkg");
  const files = shippedFiles(pkg);
  assert.ok(files.some((f) => f.endsWith("_bg.wasm")), "pkg/ holds the wasm");
  const sizes = files.map((f) => [path.relative(pkg, f), zlib.gzipSync(fs.readFileSync(f), { level: 9 }).length]);
  const total = sizes.reduce((n, [, s]) => n + s, 0);
  console.log(`package gzip -9: ${total} bytes (limit ${LIMIT})`, Object.fromEntries(sizes));
  assert.ok(total <= LIMIT, `the package grew to ${total} bytes gzip, over the ${LIMIT}-byte limit`);
});
