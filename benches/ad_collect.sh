#!/usr/bin/env bash
# Times `lastseen collect ad` against a Samba DC holding 5,000 computers: a full collection to
# LDIF, then an incremental change run after 10 changes. Run from the repository root:
#
#   benches/ad_collect.sh            (needs the ports of tests/services/samba.sh free)
#
# It brings up its own DC in target/samba-bench, seeds it with one ldbadd run straight into
# the DC's database (over LDAPS, one by one, 5,000 adds take minutes), times each run with
# /usr/bin/time -v, prints the figures and stops the DC. COMPUTERS and RUNS override the size
# and the number of timed full runs; BIN names a lastseen binary to time instead of building
# the release one (the figure then says which).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
COMPUTERS=${COMPUTERS:-5000}
RUNS=${RUNS:-3}
export LASTSEEN_SAMBA_DIR=$ROOT/target/samba-bench
W=$ROOT/target/ad-bench
BASE_DN=DC=corp,DC=example,DC=test
OU="OU=Bench,$BASE_DN"

say() { echo "ad_collect.sh: $*" >&2; }

if [ -z "${BIN:-}" ]; then
    cargo build --release --quiet --bin lastseen
    BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/lastseen
fi
trap 'tests/services/samba.sh down' EXIT
tests/services/samba.sh up >/dev/null
# shellcheck disable=SC1091
source "$LASTSEEN_SAMBA_DIR/env"
rm -rf "$W"
mkdir -p "$W"

# The bench estate: OU=Bench with Workstations and Disabled Computers, COMPUTERS computers
# spread over them like the seed's, with OS attributes and logon times.
{
    for ou in "$OU" "OU=Workstations,$OU" "OU=Disabled Computers,$OU"; do
        name=${ou%%,*}
        printf 'dn: %s\nobjectClass: organizationalUnit\nou: %s\n\n' "$ou" "${name#OU=}"
    done
    for i in $(seq -f '%05g' 1 "$COMPUTERS"); do
        if [ $((10#$i % 10)) = 0 ]; then where="OU=Disabled Computers,$OU"; else where="OU=Workstations,$OU"; fi
        printf 'dn: CN=BENCH-WS-%s,%s\nobjectClass: computer\nsAMAccountName: BENCH-WS-%s$\n' \
            "$i" "$where" "$i"
        printf 'dNSHostName: bench-ws-%s.corp.example.test\noperatingSystem: Windows 11 Enterprise\n' "$i"
        printf 'operatingSystemVersion: 10.0 (22631)\nuserAccountControl: 4096\n'
        printf 'lastLogonTimestamp: 134080416000000000\n\n'
    done
} >"$W/estate.ldif"

started=$(date +%s)
ldbadd -H "$LASTSEEN_SAMBA_DIR/private/sam.ldb" "$W/estate.ldif" >"$W/seed.log" 2>&1 ||
    { tail -n 5 "$W/seed.log" >&2; say "seeding failed"; exit 1; }
say "seeded $COMPUTERS computers in $(( $(date +%s) - started )) s"

cat >"$W/lastseen.toml" <<EOF
[inputs]
ldif = ["corp.ldif"]
[policy]
vip_groups = ["CN=VIP-Executives,OU=Groups,OU=Estate,$BASE_DN"]
[ad]
url = "$LASTSEEN_TEST_AD_URL"
base_dns = ["$OU"]
bind_dn = "$LASTSEEN_TEST_AD_BIND_DN"
password_file = "$LASTSEEN_TEST_AD_PASSWORD_FILE"
ca_file = "$LASTSEEN_TEST_AD_CA_FILE"
state_file = "ad-state.json"
EOF

# Runs lastseen under /usr/bin/time -v; prints wall seconds, peak RSS and the summary line.
timed() {
    local label=$1
    shift
    NO_COLOR=1 /usr/bin/time -v "$BIN" "$@" --config "$W/lastseen.toml" 2>"$W/$label.err"
    local wall rss summary
    wall=$(grep 'Elapsed (wall clock)' "$W/$label.err" | awk '{print $NF}')
    rss=$(grep 'Maximum resident set size' "$W/$label.err" | awk '{print $NF}')
    summary=$(grep -E 'Directory (changes )?collected' "$W/$label.err" | sed 's/.*collected\. //')
    printf '%-22s wall %s  peak RSS %s kB  %s\n' "$label" "$wall" "$rss" "$summary"
}

echo "lastseen collect ad ($BIN), $COMPUTERS computers, $(nproc) cores, $(uname -r)"
for run in $(seq "$RUNS"); do
    timed "full LDIF #$run" collect ad
done
echo "LDIF: $(grep -c '^dn' "$W/corp.ldif") entries, $(wc -c <"$W/corp.ldif") bytes"
timed "full changes" collect ad --changes "$W/full.jsonl"

# Ten changes: four OS upgrades, three moves into the Disabled OU, three deletions.
{
    for i in 00011 00012 00013 00014; do
        printf 'dn: CN=BENCH-WS-%s,OU=Workstations,%s\nchangetype: modify\n' "$i" "$OU"
        printf 'replace: operatingSystemVersion\noperatingSystemVersion: 10.0 (26100)\n\n'
    done
    for i in 00021 00022 00023; do
        printf 'dn: CN=BENCH-WS-%s,OU=Workstations,%s\nchangetype: modrdn\n' "$i" "$OU"
        printf 'newrdn: CN=BENCH-WS-%s\ndeleteoldrdn: 1\nnewsuperior: OU=Disabled Computers,%s\n\n' \
            "$i" "$OU"
    done
    for i in 00031 00032 00033; do
        printf 'dn: CN=BENCH-WS-%s,OU=Workstations,%s\nchangetype: delete\n\n' "$i" "$OU"
    done
} >"$W/changes.ldif"
LDAPTLS_CACERT=$LASTSEEN_TEST_AD_CA_FILE ldapmodify -x -H "$LASTSEEN_TEST_AD_URL" \
    -D "$LASTSEEN_TEST_AD_BIND_DN" -y "$LASTSEEN_TEST_AD_PASSWORD_FILE" -f "$W/changes.ldif" \
    >/dev/null

timed "incremental, 10 changes" collect ad --changes "$W/incremental.jsonl"
echo "incremental records: $(grep -c '"op":"upsert"' "$W/incremental.jsonl") upserts," \
    "$(grep -c '"op":"delete"' "$W/incremental.jsonl") deletes"
