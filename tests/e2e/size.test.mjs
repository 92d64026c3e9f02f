// The package's size (wasm + JS glue + entry, gzip -9), held to the performance issue's
// target of 60 KB (60,000 bytes) so that it cannot grow past it unnoticed. The bench
// reports the same figure (both count it with tests/support/package-size.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { REPO_ROOT } from "../support/test-server.mjs";
import { packageSize } from "../support/package-size.mjs";

const LIMIT = 60_000; // bytes, gzip -9

test("the package (wasm + JS, gzip -9) stays within 60 KB", () => {
  const size = packageSize(path.join(REPO_ROOT, "pkg"));
  assert.ok(Object.keys(size.files).some((f) => f.endsWith("_bg.wasm")), "pkg/ holds the wasm");
  const total = size.gzipBytes;
  console.log(`package gzip -9: ${total} bytes (limit ${LIMIT})`, Object.fromEntries(Object.entries(size.files).map(([f, s]) => [f, s.gzipBytes])));
  assert.ok(total <= LIMIT, `the package grew to ${total} bytes gzip, over the ${LIMIT}-byte limit`);
});
