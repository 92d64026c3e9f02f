#!/usr/bin/env bash
# `npm run demo`: builds the package and the reference server, then serves the notes
# demo (www/) and the package (pkg/) from the server, on a loopback port, until Ctrl-C.
#
#   PORT=9000 npm run demo                  # http://127.0.0.1:9000/
#   OUTBOX_LISTEN=127.0.0.1:0 npm run demo  # any free port (the URL is printed)
#   DEMO_DB=:memory: npm run demo           # a throwaway store (default: target/demo/outbox.sqlite)
#   SKIP_BUILD=1 npm run demo               # reuse pkg/ and the server binary as they are
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

P="[demo]"
log() { printf '%s %s\n' "$P" "$*"; }
die() { printf '%s ERROR: %s\n' "$P" "$*" >&2; exit 1; }

case ":$PATH:" in
  *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;;
  *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;;
esac

LISTEN="${OUTBOX_LISTEN:-127.0.0.1:${PORT:-8080}}"
case "$LISTEN" in
  127.*|localhost:*|\[::1\]:*) ;;
  *) die "OUTBOX_LISTEN=$LISTEN is not a loopback address; the demo's admin routes must not be exposed" ;;
esac
DB="${DEMO_DB:-target/demo/outbox.sqlite}"
BIN=target/debug/outbox-server

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  log "installing what is missing (scripts/ensure-tools.sh)"
  bash scripts/ensure-tools.sh
  log "building the package into pkg/ (scripts/build.sh)"
  SKIP_ENSURE_TOOLS=1 bash scripts/build.sh
  log "building the server (cargo build -p outbox-server)"
  cargo build -p outbox-server
fi
[ -f pkg/index.js ] || die "pkg/ is not built (run without SKIP_BUILD=1)"
[ -x "$BIN" ] || die "$BIN is not built (run without SKIP_BUILD=1)"
if [ "$DB" != ":memory:" ]; then mkdir -p "$(dirname "$DB")"; fi

banner() {
  local url="$1"
  printf '\n%s ==================================================\n' "$P"
  printf '%s  The notes demo is running: open %s/\n' "$P" "$url"
  printf '%s  Store: %s. Bearer token: demo-token.\n' "$P" "$DB"
  printf '%s  Press Ctrl-C to stop.\n' "$P"
  printf '%s ==================================================\n\n' "$P"
}

log "starting $BIN --listen $LISTEN --db $DB --www www --pkg pkg"
# The server prints "listening on http://ADDR" once bound (the real port, for :0).
"$BIN" --listen "$LISTEN" --db "$DB" --www www --pkg pkg > >(
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in "listening on "*) banner "${line#listening on }" ;; esac
  done
) &
SERVER_PID=$!
# Ctrl-C reaches the server too (same process group); it finishes its requests and exits.
trap 'kill -TERM "$SERVER_PID" 2>/dev/null || true' INT TERM
set +e
wait "$SERVER_PID"
rc=$?
# A signal interrupts the first wait: wait again for the graceful shutdown.
if kill -0 "$SERVER_PID" 2>/dev/null; then wait "$SERVER_PID"; rc=$?; fi
set -e
log "server stopped (exit $rc)"
case "$rc" in 0|130|143) exit 0 ;; *) exit "$rc" ;; esac
