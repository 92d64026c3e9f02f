// Renames the wasm module's imports from wasm-bindgen's JS glue to short names, in the
// module and in the glue alike: `__wbg_get_2080c49015e35254` becomes `a`. Likewise the
// snippet modules' names (`./snippets/durable-outbox-<hash>/src/browser/store.js`
// becomes `./s0`) and the closure exports whose names end in a hash
// (`wasm_bindgen__convert__closures_____invoke__h070e…` becomes `k0`).
//   node scripts/short-imports.mjs pkg/durable_outbox_bg.wasm pkg/durable_outbox.js
// The names are long and end in a random-looking hash, so gzip cannot shrink them, and
// each is written twice: in the module's import section and as a key of the glue's
// imports object. Only imports of the glue's own
// module are renamed (each name there is unique and appears in the glue as a whole
// word); the snippets' imports keep their names, which are their exports' names.
import fs from "node:fs";

const [wasmPath, gluePath] = process.argv.slice(2);
const GLUE_MODULE = "./durable_outbox_bg.js";

function readLeb(bytes, at) {
  let value = 0;
  let shift = 0;
  for (;;) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    shift += 7;
    if (byte < 0x80) return [value, at];
  }
}

function leb(value) {
  const out = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return Buffer.from(out);
}

// A name as the binary format writes it: its length, then its UTF-8 bytes.
function readName(bytes, at) {
  const [length, start] = readLeb(bytes, at);
  return [bytes.subarray(start, start + length).toString("utf8"), start + length];
}

function name(text) {
  const bytes = Buffer.from(text, "utf8");
  return Buffer.concat([leb(bytes.length), bytes]);
}

// a, b, ..., Z, aa, ab, ...: never `__proto__` or another key the glue's object holds.
function shortName(index) {
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  let text = "";
  do {
    text = letters[index % 52] + text;
    index = Math.floor(index / 52) - 1;
  } while (index >= 0);
  return text;
}

// Skips an import's description (wasm binary format, "import section").
function skipDescription(bytes, at) {
  const kind = bytes[at++];
  const limits = (p) => {
    const flags = bytes[p++];
    [, p] = readLeb(bytes, p);
    if (flags & 1) [, p] = readLeb(bytes, p);
    return p;
  };
  switch (kind) {
    case 0: // function: type index
      return readLeb(bytes, at)[1];
    case 1: // table: reference type, limits
      return limits(at + 1);
    case 2: // memory: limits
      return limits(at);
    case 3: // global: value type, mutability
      return at + 2;
    case 4: // tag: attribute, type index
      return readLeb(bytes, at + 1)[1];
    default:
      throw new Error(`unknown import kind ${kind}`);
  }
}

const wasm = fs.readFileSync(wasmPath);
const renames = new Map();
const moduleRenames = new Map();
const exportRenames = new Map();
const HASHED_EXPORT = /^wasm_bindgen__convert__closures_____invoke__h[0-9a-f]{16}$/;
const sections = [wasm.subarray(0, 8)];
let at = 8;
while (at < wasm.length) {
  const id = wasm[at];
  const [size, bodyAt] = readLeb(wasm, at + 1);
  const end = bodyAt + size;
  if (id === 7) {
    sections.push(renameExports(wasm.subarray(bodyAt, end)));
    at = end;
    continue;
  }
  if (id !== 2) {
    sections.push(wasm.subarray(at, end));
    at = end;
    continue;
  }
  let [count, p] = readLeb(wasm, bodyAt);
  const body = [leb(count)];
  for (; count > 0; count--) {
    let module, field;
    [module, p] = readName(wasm, p);
    [field, p] = readName(wasm, p);
    const descriptionAt = p;
    p = skipDescription(wasm, p);
    if (module === GLUE_MODULE) {
      if (!renames.has(field)) renames.set(field, shortName(renames.size));
      field = renames.get(field);
    } else if (module.startsWith("./snippets/")) {
      if (!moduleRenames.has(module)) moduleRenames.set(module, `./s${moduleRenames.size}`);
      module = moduleRenames.get(module);
    }
    body.push(name(module), name(field), wasm.subarray(descriptionAt, p));
  }
  const content = Buffer.concat(body);
  sections.push(Buffer.from([2]), leb(content.length), content);
  at = end;
}

// The export section: (name, kind, index) entries.
function renameExports(section) {
  let [count, p] = readLeb(section, 0);
  const body = [leb(count)];
  for (; count > 0; count--) {
    let field;
    [field, p] = readName(section, p);
    const kindAt = p;
    p = readLeb(section, p + 1)[1];
    if (HASHED_EXPORT.test(field)) {
      exportRenames.set(field, `k${exportRenames.size}`);
      field = exportRenames.get(field);
    }
    body.push(name(field), section.subarray(kindAt, p));
  }
  const content = Buffer.concat(body);
  return Buffer.concat([Buffer.from([7]), leb(content.length), content]);
}

let glue = fs.readFileSync(gluePath, "utf8");
const escape = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
// A snippet module's name is a key of the glue's imports object (`"./snippets/…": x`);
// its `import … from "./snippets/…"` stays, for the bundler.
for (const [from, to] of moduleRenames) {
  const key = new RegExp(`"${escape(from)}"(?=\\s*:)`, "g");
  if (!key.test(glue)) throw new Error(`the imports key ${from} is not in ${gluePath}`);
  glue = glue.replace(key, JSON.stringify(to));
}
// A closure export is called as `wasm.<name>(...)`.
for (const [from, to] of exportRenames) {
  const use = new RegExp(`\\bwasm\\.${from}\\b`, "g");
  if (!use.test(glue)) throw new Error(`wasm.${from} is not in ${gluePath}`);
  glue = glue.replace(use, `wasm.${to}`);
}
for (const [from, to] of renames) {
  const word = new RegExp(`\\b${from}\\b`, "g");
  const uses = glue.match(word)?.length ?? 0;
  if (uses !== 1) throw new Error(`${from} appears ${uses} times in ${gluePath}, not once`);
  glue = glue.replace(word, to);
}

const renamed = Buffer.concat(sections);
if (!WebAssembly.validate(renamed)) throw new Error("the renamed module does not validate");
fs.writeFileSync(wasmPath, renamed);
fs.writeFileSync(gluePath, glue);
console.log(`[short-imports] ${renames.size} imports, ${moduleRenames.size} snippet modules and ${exportRenames.size} closure exports renamed`);
