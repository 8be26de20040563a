#!/usr/bin/env bash
# End-to-end speed and memory of `lastseen run` on a generated estate, measured by
# /usr/bin/time -v. Usage: benches/e2e.sh [ENDPOINTS] [TENANTS]   (default 1000000 100)
#
# The estate is written once to target/bench-estate-ENDPOINTS and reused; the run is repeated
# three times and each run's wall time and peak RSS are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

endpoints=${1:-1000000}
tenants=${2:-100}
estate="target/bench-estate-$endpoints"
target_dir=${CARGO_TARGET_DIR:-target}

cargo build --release --quiet
bin="$target_dir/release/lastseen"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package: time)" >&2; exit 1; }

if [ ! -f "$estate/lastseen.toml" ]; then
  echo "writing a $endpoints-endpoint estate to $estate" >&2
  "$bin" generate --endpoints "$endpoints" --tenants "$tenants" --seed 1 --out "$estate"
fi
du -sh "$estate/central" "$estate/ad" >&2

for attempt in 1 2 3; do
  /usr/bin/time -v "$bin" -q run --config "$estate/lastseen.toml" 2> "$estate/time-$attempt.txt"
  wall=$(grep 'Elapsed (wall clock)' "$estate/time-$attempt.txt" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$estate/time-$attempt.txt" | awk '{print $NF}')
  cpu=$(grep 'Percent of CPU' "$estate/time-$attempt.txt" | awk '{print $NF}')
  echo "run $attempt: wall $wall, peak RSS $((rss / 1024)) MiB, CPU $cpu"
done
echo "candidates: $(wc -l < "$estate/candidates.jsonl")"
# Figures on record (2 cores, 24 GiB, nothing else running): 7.1 to 7.8 s wall for 1,000,000
# endpoints, peak RSS 2.1 GB. LASTSEEN_LOG=lastseen=debug shows where the time goes.
