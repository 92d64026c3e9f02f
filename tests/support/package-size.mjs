// The package's size as the size test and the bench count it: gzip -9 (Node's zlib,
// level 9) of everything it ships to a browser, the wasm and every JS file under pkg/
// (the glue, the entry and any snippet modules), each compressed on its own.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";

function shippedFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...shippedFiles(file));
    else if (/\.(wasm|js)$/.test(entry.name)) out.push(file);
  }
  return out.sort();
}

/** `{ files: { relative path: { rawBytes, gzipBytes } }, rawBytes, gzipBytes }` of `pkgDir`. */
export function packageSize(pkgDir) {
  const out = { files: {}, rawBytes: 0, gzipBytes: 0 };
  for (const file of shippedFiles(pkgDir)) {
    const buf = fs.readFileSync(file);
    const gz = zlib.gzipSync(buf, { level: 9 }).length;
    out.files[path.relative(pkgDir, file)] = { rawBytes: buf.length, gzipBytes: gz };
    out.rawBytes += buf.length;
    out.gzipBytes += gz;
  }
  return out;
}
