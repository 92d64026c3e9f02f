#!/usr/bin/env bash
# wasm-bindgen-test suite (tests/browser.rs) in headless Chromium, against the
# real IndexedDB. wasm-bindgen-test-runner starts chromedriver itself and
# always passes headless, no-sandbox and disable-dev-shm-usage to Chrome
# (needed as root), so no webdriver.json is required; one placed in the crate
# root (or named by WASM_BINDGEN_TEST_WEBDRIVER_JSON) would add capabilities.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

P="[test:browser]"
case ":$PATH:" in
  *":${CARGO_HOME:-$HOME/.cargo}/bin:"*) ;;
  *) export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" ;;
esac

if [ ! -f tests/browser.rs ]; then
  printf '%s ERROR: tests/browser.rs is missing (the wasm-bindgen-test suite)\n' "$P" >&2
  exit 1
fi

export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
# The runner's limit for the whole suite (its default is 20 s).
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-180}"

printf '%s CHROMEDRIVER=%s cargo test -p durable-outbox --target wasm32-unknown-unknown --test browser\n' "$P" "$CHROMEDRIVER"
exec cargo test -p durable-outbox --target wasm32-unknown-unknown --test browser "$@"
