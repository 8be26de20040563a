#!/usr/bin/env bash
# Pushes a generated estate through Kafka and reports the pipeline's speed:
#
#   1. records per second into Kafka      (`lastseen publish` of the whole estate)
#   2. records per second from Kafka into state, and the correlator's peak memory
#      (`lastseen correlate --stop-when-idle`, read from the beginning, under /usr/bin/time -v)
#   3. time from the last snapshot marker read to the last candidate acknowledged
#
#   benches/kafka_speed.sh [ENDPOINTS] [TENANTS]      (default 1000000 100)
#
# It builds nothing: it runs $LASTSEEN_BIN (default $CARGO_TARGET_DIR/release/lastseen, so
# run `cargo build --release` first). The estate is generated once into $LASTSEEN_BENCH_DIR
# (default target/kafka-speed) and reused. The broker is a private tansu on 127.0.0.1 with
# memory storage, started and stopped by tests/services/tansu.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ENDPOINTS=${1:-1000000}
TENANTS=${2:-100}
WORK=${LASTSEEN_BENCH_DIR:-$ROOT/target/kafka-speed}
BIN=${LASTSEEN_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/lastseen}
# v2: estates generated before users and groups got an objectGUID cannot all be published.
ESTATE=$WORK/estate-v2-$ENDPOINTS-$TENANTS

say() { echo "kafka_speed: $*" >&2; }
[ -x "$BIN" ] || { say "no binary at $BIN; run cargo build --release"; exit 1; }
[ -x /usr/bin/time ] || { say "/usr/bin/time is missing (apt-get install time)"; exit 1; }
mkdir -p "$WORK"

if [ ! -f "$ESTATE/lastseen.toml" ]; then
    say "generating $ENDPOINTS endpoints in $TENANTS tenants"
    "$BIN" -q generate --endpoints "$ENDPOINTS" --tenants "$TENANTS" --out "$ESTATE"
fi

export LASTSEEN_TANSU_DIR=$WORK/tansu
trap '"$ROOT/tests/services/tansu.sh" down' EXIT
eval "$("$ROOT/tests/services/tansu.sh" up)"
export LASTSEEN_KAFKA_BROKERS=$LASTSEEN_TEST_KAFKA

# The metric we time is wall clock, so the field to read is "Elapsed (wall clock)".
seconds() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$1"
}
peak_mb() { awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"; }

say "publishing"
/usr/bin/time -v "$BIN" publish --config "$ESTATE/lastseen.toml" 2>"$WORK/publish.log" ||
    { say "publish failed; see $WORK/publish.log"; tail -n 5 "$WORK/publish.log" >&2; exit 1; }
grep -E "^published" "$WORK/publish.log" >&2
RECORDS=$(grep -oE "Published\. endpoints=[0-9]+ snapshots=[0-9]+ ad_changes=[0-9]+ actions=[0-9]+" \
    "$WORK/publish.log" | grep -oE "[0-9]+" | paste -sd+ | bc)
PUBLISH_S=$(seconds "$WORK/publish.log")

say "correlating"
LASTSEEN_LOG=lastseen=info /usr/bin/time -v "$BIN" correlate --config "$ESTATE/lastseen.toml" \
    --stop-when-idle 2>"$WORK/correlate.log"
CAUGHT_UP=$(grep -m1 "Caught up" "$WORK/correlate.log")
READ=$(grep -oE "records=[0-9]+" <<<"$CAUGHT_UP" | cut -d= -f2)
READ_MS=$(grep -oE "elapsed_ms=[0-9]+" <<<"$CAUGHT_UP" | cut -d= -f2)
LAST=$(grep "Correlated and produced candidate events" "$WORK/correlate.log" | tail -n1)

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB; estate: $ENDPOINTS endpoints, $TENANTS tenants"
echo "into Kafka:      $RECORDS records in ${PUBLISH_S}s = $(bc <<<"$RECORDS / $PUBLISH_S") records/s (publish peak RSS $(peak_mb "$WORK/publish.log") MB)"
echo "Kafka to state:  $READ records in ${READ_MS}ms = $(bc <<<"$READ * 1000 / $READ_MS") records/s"
echo "last correlation: $(grep -oE "(candidates|correlate_ms|marker_to_last_event_ms)=[0-9]+" <<<"$LAST" | paste -sd' ')"
echo "correlator:      peak RSS $(peak_mb "$WORK/correlate.log") MB, wall $(seconds "$WORK/correlate.log")s"
