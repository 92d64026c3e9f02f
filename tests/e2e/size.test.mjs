// The package's size (wasm + JS glue + entry, gzip -9), held to a ceiling so it cannot
// grow unnoticed. The ceiling is the size as of this writing plus a little room; the
// issue's target (60 KB) is not met yet, and the bench reports the distance to it.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { REPO_ROOT } from "../support/test-server.mjs";

const CEILING = 69_800; // bytes, gzip -9
const TARGET = 60_000;

function shippedFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...shippedFiles(file));
    else if (/\.(wasm|js)$/.test(entry.name)) out.push(file);
  }
  return out;
}

test("the package (wasm + JS, gzip -9) stays under its size ceiling", () => {
  const pkg = path.join(REPO_ROOT, "pkg");
  const files = shippedFiles(pkg);
  assert.ok(files.some((f) => f.endsWith("_bg.wasm")), "pkg/ holds the wasm");
  const sizes = files.map((f) => [path.relative(pkg, f), zlib.gzipSync(fs.readFileSync(f), { level: 9 }).length]);
  const total = sizes.reduce((n, [, s]) => n + s, 0);
  console.log(`package gzip -9: ${total} bytes (ceiling ${CEILING}, target ${TARGET})`, Object.fromEntries(sizes));
  assert.ok(total <= CEILING, `the package grew to ${total} bytes gzip, over the ${CEILING}-byte ceiling`);
});
