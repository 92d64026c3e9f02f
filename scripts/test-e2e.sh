#!/usr/bin/env bash
# End-to-end tests: the built package (pkg/) imported by a plain page in
# headless Chromium (playwright-core), against tests/support/test-server.mjs.
# Builds pkg/ first when it is missing (SKIP_BUILD=1 to never build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

P="[test:e2e]"
if [ ! -f pkg/index.js ] || [ ! -f pkg/durable_outbox_bg.wasm ]; then
  if [ "${SKIP_BUILD:-0}" = 1 ]; then
    printf '%s ERROR: pkg/ is not built (run npm run build)\n' "$P" >&2
    exit 1
  fi
  printf '%s pkg/ not built yet: building\n' "$P"
  bash scripts/build.sh
fi
if [ ! -d node_modules/playwright-core ]; then
  bash scripts/ensure-tools.sh
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
printf '%s node --test tests/e2e/\n' "$P"
set +e
node --test --test-reporter=spec tests/e2e/ "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
set -e
pass=$(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$out" | tail -1)
fail=$(sed -n 's/^ℹ fail \([0-9]*\)$/\1/p' "$out" | tail -1)
cancelled=$(sed -n 's/^ℹ cancelled \([0-9]*\)$/\1/p' "$out" | tail -1)
fail=$(( ${fail:-0} + ${cancelled:-0} ))
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi
printf 'e2e: %s passed, %s failed\n' "${pass:-0}" "$fail"
exit "$rc"
