#!/usr/bin/env bash
# Builds the npm package into pkg/:
#   cargo (wasm32, release) -> wasm-bindgen --target web -> wasm-opt (-Oz)
#   -> js/index.js + js/index.d.ts (the entry that loads the wasm itself)
#   -> esbuild --minify of every JS file
# Runs scripts/ensure-tools.sh first unless SKIP_ENSURE_TOOLS=1.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

P="[build]"
log() { printf '%s %s\n' "$P" "$*"; }
warn() { printf '%s WARNING: %s\n' "$P" "$*" >&2; }
die() { printf '%s ERROR: %s\n' "$P" "$*" >&2; exit 1; }

if [ "${SKIP_ENSURE_TOOLS:-0}" != 1 ]; then
  bash scripts/ensure-tools.sh
fi
case ":$PATH:" in
  *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;;
  *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;;
esac

CRATE=durable_outbox
OUT=pkg
WASM_IN="target/wasm32-unknown-unknown/release/$CRATE.wasm"

# Without the default `std` feature: the published module is `no_std` (see Cargo.toml).
log "cargo build --release --target wasm32-unknown-unknown -p durable-outbox --lib --no-default-features"
cargo build --release --target wasm32-unknown-unknown -p durable-outbox --lib --no-default-features

[ -f "$WASM_IN" ] || die "$WASM_IN was not produced"

log "wasm-bindgen $(wasm-bindgen --version | awk '{print $2}') --target web -> $OUT/"
rm -rf "$OUT"
wasm-bindgen --target web --out-dir "$OUT" --out-name "$CRATE" "$WASM_IN"

BG="$OUT/${CRATE}_bg.wasm"

# wasm-opt: $WASM_OPT if set, else the newest of Debian's (binaryen package)
# and an npm one (node_modules/.bin/wasm-opt, from the `binaryen` package, if
# it is ever added). Binaryen 108 (Debian 12) cannot parse table.fill and mis-writes the export of
# wasm-bindgen's externref table (binaryen issue #4711); scripts/wasm-check.mjs
# catches that, and then the unoptimised module is kept, with a warning.
wasm_opt_version() { "$1" --version 2>/dev/null | grep -oE '[0-9]+' | head -1; }
WASM_OPT_BIN="${WASM_OPT:-}"
if [ -z "$WASM_OPT_BIN" ]; then
  best=0
  for cand in "$(command -v wasm-opt 2>/dev/null || true)" "node_modules/.bin/wasm-opt"; do
    [ -n "$cand" ] && [ -x "$cand" ] || continue
    v="$(wasm_opt_version "$cand")"; v="${v:-0}"
    if [ "$v" -gt "$best" ]; then best="$v"; WASM_OPT_BIN="$cand"; fi
  done
fi
if [ -n "$WASM_OPT_BIN" ]; then
  # Rust >= 1.87 emits these proposals by default for wasm32-unknown-unknown
  # (and wasm-bindgen uses reference types for its externref table); binaryen
  # must be told, or it refuses the module.
  FEATURES=(
    --enable-bulk-memory
    --enable-nontrapping-float-to-int
    --enable-sign-ext
    --enable-mutable-globals
    --enable-reference-types
    --enable-multivalue
  )
  # Flattening and re-looping first, then -Oz twice: a little less gzip than one
  # -Oz, for a few seconds more. The producers and target-features sections are
  # metadata no engine reads.
  PASSES=(--flatten --rereloop -Oz -Oz --strip-producers --strip-target-features)
  before=$(wc -c <"$BG")
  log "$WASM_OPT_BIN ${PASSES[*]} ($("$WASM_OPT_BIN" --version))"
  if ! "$WASM_OPT_BIN" "${PASSES[@]}" "${FEATURES[@]}" "$BG" -o "$BG.opt" 2>"$BG.check"; then
    # Binaryen 108 (Debian 12) cannot even parse table.fill, which Rust 1.95 emits.
    warn "$WASM_OPT_BIN failed: $(tail -n 3 "$BG.check" | tr '\n' ' ')"
    warn "keeping the unoptimised $BG ($before bytes); a newer binaryen is needed (the npm package binaryen 132 works: WASM_OPT=... or node_modules/.bin/wasm-opt)"
    rm -f "$BG.opt"
  elif node scripts/wasm-check.mjs "$BG" "$BG.opt" 2>"$BG.check"; then
    mv "$BG.opt" "$BG"
    log "wasm-opt: $before -> $(wc -c <"$BG") bytes"
  else
    warn "the output of $WASM_OPT_BIN is broken for this module: $(cat "$BG.check")"
    warn "keeping the unoptimised $BG ($before bytes); a newer binaryen is needed (the npm package binaryen 132 works: WASM_OPT=... or node_modules/.bin/wasm-opt)"
    rm -f "$BG.opt"
  fi
  rm -f "$BG.check"
else
  warn "wasm-opt not found (Debian package binaryen): skipping the size optimisation"
fi

# Short names for the imports from the glue, in the module and the glue (see the script).
node scripts/short-imports.mjs "$BG" "$OUT/$CRATE.js" | sed "s/^/$P /"

# The engine that will run it must accept it.
node -e '
  const fs = require("fs");
  const bytes = fs.readFileSync(process.argv[1]);
  if (!WebAssembly.validate(bytes)) { console.error("[build] ERROR: " + process.argv[1] + " does not validate"); process.exit(1); }
' "$BG"

for f in index.js index.d.ts; do
  [ -f "js/$f" ] || die "js/$f is missing (the package entry, hand-written in js/)"
  cp "js/$f" "$OUT/$f"
done
# Any other hand-written module the entry imports.
for f in js/*.js js/*.d.ts; do
  [ -f "$f" ] || continue
  cp -n "$f" "$OUT/" 2>/dev/null || true
done

# The JS, minified with esbuild (a devDependency): comments and long local names are most
# of its size. Exports and imports stay as they are.
ESBUILD=node_modules/.bin/esbuild
if [ -x "$ESBUILD" ]; then
  # The glue and its snippets (store.js, transport.js, the inline ones) ship as one
  # module: one file to fetch, and gzip compresses them together. The sources stay
  # separate; only pkg/ has them joined. (wasm-bindgen lists a snippet module once per
  # import in its imports object, hence the duplicate-key override.)
  "$ESBUILD" "$OUT/$CRATE.js" --bundle --minify --format=esm --log-level=warning \
    --log-override:duplicate-object-key=silent --allow-overwrite --outfile="$OUT/$CRATE.js"
  rm -rf "$OUT/snippets"
  # The entry (and any other hand-written module next to it).
  while IFS= read -r f; do
    "$ESBUILD" "$f" --minify --format=esm --log-level=warning --allow-overwrite --outfile="$f"
  done < <(find "$OUT" -name '*.js' ! -name "$CRATE.js")
  log "bundled the glue with its snippets and minified the JS with esbuild $("$ESBUILD" --version)"
else
  warn "esbuild not found (run npm install): the JS is not minified"
fi

gz() { gzip -9 -c "$1" | wc -c; }
total=0
log "gzip -9 sizes:"
while IFS= read -r f; do
  s=$(gz "$f"); total=$((total + s))
  printf '%s   %-40s %8d bytes raw %8d bytes gzip\n' "$P" "${f#"$OUT"/}" "$(wc -c <"$f")" "$s"
done < <(echo "$BG"; find "$OUT" -name '*.js' | sort)
printf '%s   %-40s %8s          %8d bytes gzip\n' "$P" "total (wasm + JS)" "" "$total"
log "done: $OUT/"
