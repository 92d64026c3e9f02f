// Checks that an optimised wasm file still matches what the wasm-bindgen glue
// expects of it: it validates, and every export has the same kind (and, for
// tables, the same element type) as in the file before optimisation.
//
// Why: binaryen 108 (Debian 12's wasm-opt) writes an exported table's index
// wrongly when a module has two tables (binaryen issue #4711, fixed in 109+):
// wasm-bindgen's externref table `__wbindgen_externrefs` then points to the
// funcref table, the module still validates, and the page fails at load with
// "WebAssembly.Table.set(): ... function-typed object must be null".
//
// usage: node scripts/wasm-check.mjs BEFORE.wasm AFTER.wasm   (exit 1 on mismatch)
import fs from "node:fs";

const KINDS = ["func", "table", "memory", "global", "tag"];

function exportsOf(file) {
  const b = fs.readFileSync(file);
  if (!WebAssembly.validate(b)) throw new Error(`${file} does not validate`);
  let i = 8;
  const leb = () => {
    let r = 0, s = 0, x;
    do { x = b[i++]; r += (x & 0x7f) * 2 ** s; s += 7; } while (x & 0x80);
    return r;
  };
  const name = () => { const l = leb(); const s = b.subarray(i, i + l).toString("utf8"); i += l; return s; };
  // A reference type: one byte (0x70 funcref, 0x6f externref, ...) or 0x63/0x64 + heap type.
  const refType = () => {
    const t = b[i++];
    if (t === 0x63 || t === 0x64) { const h = b[i]; leb(); return `ref${t === 0x63 ? " null" : ""} ${h.toString(16)}`; }
    return `0x${t.toString(16)}`;
  };
  const limits = () => { const f = leb(); leb(); if (f & 1) leb(); };
  const tables = [];
  const exps = {};
  while (i < b.length) {
    const id = b[i++];
    const len = leb();
    const end = i + len;
    if (id === 2) { // imports
      const n = leb();
      for (let k = 0; k < n; k++) {
        name(); name();
        const kind = b[i++];
        if (kind === 0) leb();
        else if (kind === 1) { tables.push(refType()); limits(); }
        else if (kind === 2) limits();
        else if (kind === 3) { refTypeOrVal(); i++; }
        else if (kind === 4) { i++; leb(); }
      }
    } else if (id === 4) { // tables
      const n = leb();
      for (let k = 0; k < n; k++) {
        if (b[i] === 0x40 && b[i + 1] === 0x00) { i += 2; tables.push(refType()); limits(); skipConstExpr(); }
        else { tables.push(refType()); limits(); }
      }
    } else if (id === 7) { // exports
      const n = leb();
      for (let k = 0; k < n; k++) {
        const nm = name();
        const kind = b[i++];
        const idx = leb();
        exps[nm] = kind === 1 ? `table of ${tables[idx]}` : KINDS[kind] ?? `kind ${kind}`;
      }
    }
    i = end;
  }
  return exps;

  function refTypeOrVal() { const t = b[i]; if (t === 0x63 || t === 0x64) refType(); else i++; }
  function skipConstExpr() { while (b[i] !== 0x0b) i++; i++; }
}

const [before, after] = process.argv.slice(2);
const a = exportsOf(before);
const z = exportsOf(after);
const problems = [];
for (const [k, v] of Object.entries(a)) {
  if (z[k] === undefined) problems.push(`export ${k} (${v}) is gone`);
  else if (z[k] !== v) problems.push(`export ${k} was ${v}, is now ${z[k]}`);
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
