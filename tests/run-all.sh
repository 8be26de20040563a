#!/usr/bin/env bash
# Runs every test of lastseen, with the real services the integration tests need.
#
# Each script in tests/services/ starts one service on 127.0.0.1 (installing it first when it
# is missing) and prints `export NAME=value` lines that tell the tests where it is; every
# service is stopped again when this script ends, whether the tests passed or not.
#
#   tests/run-all.sh            format and lint checks, then all tests
#   LASTSEEN_SKIP_LINT=1 ...    tests only
set -euo pipefail
cd "$(dirname "$0")/.."

started=()
stop_services() {
  local status=$?
  for service in "${started[@]}"; do
    "$service" down || echo "warning: $service down failed" >&2
  done
  exit "$status"
}
trap stop_services EXIT INT TERM

if [ -z "${LASTSEEN_SKIP_LINT:-}" ]; then
  echo "== cargo fmt --check"
  cargo fmt --all -- --check
  echo "== cargo clippy --all-targets -- -D warnings"
  cargo clippy --all-targets --quiet -- -D warnings
fi

echo "== building tests"
cargo test --no-run --quiet

for service in tests/services/*.sh; do
  [ -x "$service" ] || continue
  echo "== starting $(basename "$service" .sh)"
  started+=("$service")
  eval "$("$service" up)"
done

echo "== cargo test (including the tests that need services)"
cargo test -- --include-ignored
