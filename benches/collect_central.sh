#!/usr/bin/env bash
# Speed of `lastseen collect central`: 100 tenants x 5,000 endpoints served by the simulator
# with 20 ms added to every request, collected at concurrency 8 and at concurrency 1.
#
# Usage: benches/collect_central.sh [TENANTS] [ENDPOINTS_PER_TENANT] [LATENCY_MS]
#
# Prints, per concurrency, the endpoints per second the command reports, its wall time and
# its peak resident memory (from /usr/bin/time -v). Everything runs on 127.0.0.1; the
# simulator is stopped at the end, and each collection is bounded by a timeout.
set -euo pipefail

TENANTS=${1:-100}
PER_TENANT=${2:-5000}
LATENCY_MS=${3:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET/release/lastseen

(cd "$ROOT" && cargo build --release --bin lastseen)

WORK=$(mktemp -d)
SIM_PID=
cleanup() {
    if [[ -n $SIM_PID ]]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" -q simulate central --listen 127.0.0.1:0 \
    --synthetic-tenants "$TENANTS" --synthetic-endpoints "$PER_TENANT" \
    --latency-ms "$LATENCY_MS" >"$WORK/url" &
SIM_PID=$!

# The simulator prints its URL once the estate is built and it listens.
for _ in $(seq 1 600); do
    [[ -s $WORK/url ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { echo "simulator exited early" >&2; exit 1; }
    sleep 0.1
done
URL=$(head -n1 "$WORK/url")
[[ $URL == http://127.0.0.1:* ]] || { echo "simulator did not start" >&2; exit 1; }

echo "simulator-secret" >"$WORK/secret"
cat >"$WORK/lastseen.toml" <<EOF
[central]
client_id = "lastseen-simulator"
client_secret_file = "secret"
auth_url = "$URL/api/v2/oauth2/token"
global_url = "$URL"
out = "central"
EOF

echo "estate: $TENANTS tenants x $PER_TENANT endpoints, ${LATENCY_MS} ms per request; $(nproc) cores"
for CONCURRENCY in 8 1; do
    rm -rf "$WORK/central"
    timeout 600 /usr/bin/time -v "$BIN" collect central --config "$WORK/lastseen.toml" \
        --concurrency "$CONCURRENCY" >/dev/null 2>"$WORK/log"
    SUMMARY=$(grep '^collected ' "$WORK/log")
    RATE=$(sed -E 's/.* ([0-9]+) endpoints\/s\)$/\1/' <<<"$SUMMARY")
    WALL=$(grep 'Elapsed (wall clock)' "$WORK/log" | awk '{print $NF}')
    RSS_KB=$(grep 'Maximum resident set size' "$WORK/log" | awk '{print $NF}')
    CPU=$(grep 'Percent of CPU' "$WORK/log" | awk '{print $NF}')
    echo "concurrency $CONCURRENCY: $RATE endpoints/s, wall $WALL, CPU $CPU, peak RSS $((RSS_KB / 1024)) MiB"
    echo "  $SUMMARY"
done
