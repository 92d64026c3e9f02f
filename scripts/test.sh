#!/usr/bin/env bash
# Everything `npm test` runs, in order, stopping at the first failure:
#   1. scripts/ensure-tools.sh     (installs what is missing)
#   2. cargo test --workspace      (native: the core and the server)
#   3. scripts/build.sh            (pkg/)
#   4. scripts/test-browser.sh     (wasm-bindgen-test in headless Chromium)
#   5. scripts/test-e2e.sh         (node --test tests/e2e/, playwright-core)
# Ends with one line "N passed, N failed" summing the tests run (a step that
# fails without a test count, such as a build, counts as one failure).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

P="[test]"
case ":$PATH:" in
  *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;;
  *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;;
esac

PASSED=0
FAILED=0
STEP_LOG="$(mktemp)"
trap 'rm -f "$STEP_LOG"' EXIT
START=$SECONDS

summary() {
  printf '%s total time %ss\n' "$P" "$((SECONDS - START))"
  echo
  echo "$PASSED passed, $FAILED failed"
}

# Adds the counts a step printed: cargo/libtest and wasm-bindgen-test print
# "test result: ok. N passed; M failed; ...", node's spec reporter
# "ℹ pass N" / "ℹ fail N" / "ℹ cancelled N".
count() {
  local p=0 f=0 n
  while read -r n; do p=$((p + n)); done < <(grep -aoE 'test result: [A-Za-z]+\. [0-9]+ passed' "$1" | grep -oE '[0-9]+' || true)
  while read -r n; do f=$((f + n)); done < <(grep -aoE 'test result: [A-Za-z]+\. [0-9]+ passed; [0-9]+ failed' "$1" | sed -E 's/.*; ([0-9]+) failed/\1/' || true)
  while read -r n; do p=$((p + n)); done < <(sed -n 's/^ℹ pass \([0-9]*\)$/\1/p' "$1")
  while read -r n; do f=$((f + n)); done < <(sed -n 's/^ℹ \(fail\|cancelled\) \([0-9]*\)$/\2/p' "$1")
  STEP_PASSED=$p
  STEP_FAILED=$f
}

step() {
  local name="$1"; shift
  local t0=$SECONDS rc
  printf '\n%s ==> %s\n' "$P" "$name"
  set +e
  "$@" 2>&1 | tee "$STEP_LOG"
  rc=${PIPESTATUS[0]}
  set -e
  count "$STEP_LOG"
  PASSED=$((PASSED + STEP_PASSED))
  if [ "$rc" -ne 0 ] && [ "$STEP_FAILED" -eq 0 ]; then STEP_FAILED=1; fi
  FAILED=$((FAILED + STEP_FAILED))
  if [ "$rc" -ne 0 ]; then
    printf '%s FAILED: %s (exit %s, %ss)\n' "$P" "$name" "$rc" "$((SECONDS - t0))"
    summary
    exit "$rc"
  fi
  printf '%s ok: %s (%s passed, %ss)\n' "$P" "$name" "$STEP_PASSED" "$((SECONDS - t0))"
}

step "ensure tools" bash scripts/ensure-tools.sh
step "native tests (cargo test --workspace)" cargo test --workspace
step "build (pkg/)" env SKIP_ENSURE_TOOLS=1 bash scripts/build.sh
step "browser tests (wasm-bindgen-test, headless Chromium)" bash scripts/test-browser.sh
step "end-to-end tests (node --test tests/e2e/)" env SKIP_BUILD=1 bash scripts/test-e2e.sh

summary
