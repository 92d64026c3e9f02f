#!/usr/bin/env bash
# Installs what the build and the tests need, and only what is missing:
#   - the wasm32-unknown-unknown Rust target (rustup)
#   - the wasm-bindgen CLI (wasm-bindgen, wasm-bindgen-test-runner) at exactly
#     the version of the `wasm-bindgen` crate in Cargo.lock (cargo install)
#   - Debian's chromium, chromium-driver and binaryen (wasm-opt) (apt-get)
#   - the npm devDependencies (npm ci / npm install)
# Idempotent and fast (about a second) when everything is already there.
#
# Usage: scripts/ensure-tools.sh [--dry-run]
#   --dry-run (or DRY_RUN=1): print what would be installed, install nothing.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT="$(pwd)"

P="[ensure-tools]"
log() { printf '%s %s\n' "$P" "$*"; }
warn() { printf '%s WARNING: %s\n' "$P" "$*" >&2; }
die() { printf '%s ERROR: %s\n' "$P" "$*" >&2; exit 1; }
# Prefix every line of a command's output so a CI log reads well.
prefixed() { "$@" 2>&1 | sed -u "s/^/$P   /"; }

DRY_RUN="${DRY_RUN:-0}"
for arg in "$@"; do
  case "$arg" in
    --dry-run|-n) DRY_RUN=1 ;;
    -h|--help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done
run() {
  if [ "$DRY_RUN" = 1 ]; then
    log "(dry run) would run: $*"
  else
    log "running: $*"
    prefixed "$@"
  fi
}

# Cargo's bin dir is not always on PATH in a non-login shell (CI).
if [ -d "${CARGO_HOME:-$HOME/.cargo}/bin" ]; then
  case ":$PATH:" in
    *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;;
    *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;;
  esac
fi

command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs) first"
command -v rustup >/dev/null || die "rustup not found: the wasm32 target is installed through rustup"
command -v node >/dev/null || die "node not found: Node.js 20 or newer is required"
command -v npm >/dev/null || die "npm not found: it comes with Node.js"

# --- 1. the wasm32 target --------------------------------------------------
if rustup target list --installed 2>/dev/null | grep -qx 'wasm32-unknown-unknown'; then
  log "ok: rust target wasm32-unknown-unknown"
else
  run rustup target add wasm32-unknown-unknown
fi

# --- 2. the wasm-bindgen CLI, pinned to Cargo.lock -------------------------
[ -f Cargo.lock ] || die "Cargo.lock not found in $ROOT (it pins wasm-bindgen)"
WB_VERSION="$(awk '
  /^\[\[package\]\]/ { in_wb = 0 }
  /^name = "wasm-bindgen"$/ { in_wb = 1; next }
  in_wb && /^version = / { gsub(/"/, "", $3); print $3; exit }
' Cargo.lock)"
[ -n "$WB_VERSION" ] || die "could not find the wasm-bindgen version in Cargo.lock"

wb_ok() {
  command -v wasm-bindgen >/dev/null 2>&1 \
    && command -v wasm-bindgen-test-runner >/dev/null 2>&1 \
    && [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" = "$WB_VERSION" ]
}

# Another `cargo install wasm-bindgen-cli` already running on this machine
# (for example started by hand): wait for it instead of building twice.
other_install_running() {
  local pid cmd
  for pid in /proc/[0-9]*; do
    [ "${pid#/proc/}" = "$$" ] && continue
    cmd="$(tr '\0' ' ' <"$pid/cmdline" 2>/dev/null || true)"
    case "$cmd" in
      *"cargo install"*wasm-bindgen-cli*|*"cargo-install"*wasm-bindgen-cli*) return 0 ;;
    esac
  done
  return 1
}

if wb_ok; then
  log "ok: wasm-bindgen $WB_VERSION"
else
  if other_install_running; then
    log "a 'cargo install wasm-bindgen-cli' is already running; waiting for it (up to 20 min)"
    waited=0
    while other_install_running; do
      if [ "$waited" -ge 1200 ]; then die "gave up waiting for the other wasm-bindgen-cli install"; fi
      sleep 10; waited=$((waited + 10))
      if [ $((waited % 60)) -eq 0 ]; then log "still waiting (${waited}s)"; fi
    done
  fi
  if wb_ok; then
    log "ok: wasm-bindgen $WB_VERSION (installed by the other process)"
  else
    have="$(wasm-bindgen --version 2>/dev/null || echo none)"
    log "wasm-bindgen CLI: have '$have', need $WB_VERSION (takes 4-5 minutes)"
    # No --locked: one of its pinned transitive versions is not on this registry.
    run cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
    if [ "$DRY_RUN" != 1 ]; then
      hash -r
      wb_ok || die "wasm-bindgen $WB_VERSION still not on PATH after cargo install"
      log "ok: $(wasm-bindgen --version)"
    fi
  fi
fi

# --- 3. Debian packages: chromium, chromium-driver, binaryen ----------------
missing_pkgs=()
[ -x /usr/bin/chromium ] || missing_pkgs+=(chromium)
[ -x /usr/bin/chromedriver ] || missing_pkgs+=(chromium-driver)
command -v wasm-opt >/dev/null 2>&1 || missing_pkgs+=(binaryen)
if [ "${#missing_pkgs[@]}" -eq 0 ]; then
  log "ok: chromium, chromedriver, wasm-opt"
else
  log "missing Debian packages: ${missing_pkgs[*]}"
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing_pkgs[*]} by hand"
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
  elif command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    die "not root and no sudo: install ${missing_pkgs[*]} as root (apt-get install -y ${missing_pkgs[*]})"
  fi
  run "${SUDO[@]}" apt-get update
  run "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing_pkgs[@]}"
  if [ "$DRY_RUN" != 1 ]; then
    [ -x /usr/bin/chromium ] || die "/usr/bin/chromium still missing after apt-get install"
    [ -x /usr/bin/chromedriver ] || die "/usr/bin/chromedriver still missing after apt-get install"
    command -v wasm-opt >/dev/null || die "wasm-opt still missing after apt-get install"
    log "ok: chromium, chromedriver, wasm-opt installed"
  fi
fi

# --- 4. npm devDependencies ------------------------------------------------
# npm writes node_modules/.package-lock.json on every install; it is older than
# package.json / package-lock.json when those changed since.
npm_stale() {
  local marker=node_modules/.package-lock.json
  [ -d node_modules ] || return 0
  [ -f "$marker" ] || return 0
  [ package.json -nt "$marker" ] && return 0
  [ -f package-lock.json ] && [ package-lock.json -nt "$marker" ] && return 0
  [ -d node_modules/playwright-core ] || return 0
  return 1
}
if npm_stale; then
  if [ -f package-lock.json ]; then
    run npm ci --no-audit --no-fund
  else
    run npm install --no-audit --no-fund
  fi
else
  log "ok: node_modules up to date"
fi

log "all tools present"
