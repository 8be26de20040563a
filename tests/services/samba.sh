#!/usr/bin/env bash
# A throwaway Samba AD domain controller on 127.0.0.1 for lastseen's directory tests.
#
#   tests/services/samba.sh up     install Samba if missing, provision a domain in a temporary
#                                  folder, start it, seed it over LDAPS, print the env lines
#   tests/services/samba.sh env    print the env lines of the running DC
#   tests/services/samba.sh down   stop the DC and remove its folder
#
# The domain is corp.example.test (NetBIOS CORP). Its LDAP server listens on 127.0.0.1 only
# (389 with StartTLS, 636 LDAPS, 3268/3269 global catalog) with a certificate from a CA made
# here, whose SAN names 127.0.0.1, so clients verify it without /etc/hosts. The seed is
# tests/services/samba-seed.ldif. LASTSEEN_SAMBA_DIR moves the folder (default target/samba-dc).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=${LASTSEEN_SAMBA_DIR:-$ROOT/target/samba-dc}
REALM=CORP.EXAMPLE.TEST
DOMAIN=CORP
BASE_DN=DC=corp,DC=example,DC=test
BIND_DN="CN=Administrator,CN=Users,$BASE_DN"
# A throwaway domain's admin password; Samba refuses weak ones.
ADMIN_PASSWORD='Passw0rd!Lab2024'
PORTS=(389 636 3268 3269)
SEED=$ROOT/tests/services/samba-seed.ldif

say() { echo "samba.sh: $*" >&2; }
die() { say "$*"; exit 1; }

install_samba() {
    command -v samba-tool >/dev/null && command -v ldapadd >/dev/null && return
    [ "$(id -u)" = 0 ] || die "Samba is not installed and installing needs root"
    say "installing Samba from Debian's packages"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        samba-ad-dc samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind \
        ldb-tools ldap-utils openssl >/dev/null
}

check_ports() {
    local port
    for port in "${PORTS[@]}"; do
        if ss -Hltn "sport = :$port" | grep -q .; then
            die "port $port is already taken on this machine ($(ss -Hltnp "sport = :$port" |
                head -n1)); stop what listens there or run '$0 down' first"
        fi
    done
}

# A CA and a server certificate for 127.0.0.1 and the DC's name, plus an unrelated CA that
# tests use to check that a wrong CA is refused.
make_certificates() {
    local tls=$D/tls
    mkdir -p "$tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=lastseen test CA" \
        -keyout "$tls/ca.key" -out "$tls/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=some other CA" \
        -keyout "$tls/wrong-ca.key" -out "$tls/wrong-ca.pem" \
        -addext basicConstraints=critical,CA:TRUE 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=dc1.corp.example.test" \
        -keyout "$tls/dc.key" -out "$tls/dc.csr" 2>/dev/null
    printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:dc1.corp.example.test" \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" >"$tls/dc.ext"
    openssl x509 -req -days 30 -in "$tls/dc.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" \
        -CAcreateserial -extfile "$tls/dc.ext" -out "$tls/dc.pem" 2>/dev/null
    # Samba refuses a key file that others can read.
    chmod 600 "$tls"/*.key
}

provision() {
    rm -rf "$D"
    mkdir -p "$D/run" "$D/log"
    make_certificates
    samba-tool domain provision --targetdir="$D" --realm=$REALM --domain=$DOMAIN \
        --server-role=dc --dns-backend=NONE --adminpass="$ADMIN_PASSWORD" \
        --host-name=dc1 --host-ip=127.0.0.1 \
        --option='interfaces = 127.0.0.1' --option='bind interfaces only = yes' \
        >"$D/log/provision.log" 2>&1 || { tail -n 20 "$D/log/provision.log" >&2;
            die "provisioning failed; the log is $D/log/provision.log"; }

    # Only the LDAP server: fewer ports to clash, faster start. Provision writes its own
    # service list and log file, and not every --option, so [global] is amended here.
    sed -i -E '/^\s*(server services|log file) =/d' "$D/etc/smb.conf"
    sed -i "/^\[global\]/a\\
\tserver services = ldap\\
\tpid directory = $D/run\\
\tlog file = $D/log/log.%m\\
\ttls enabled = yes\\
\ttls keyfile = $D/tls/dc.key\\
\ttls certfile = $D/tls/dc.pem\\
\ttls cafile = $D/tls/ca.pem" "$D/etc/smb.conf"
    printf '%s' "$ADMIN_PASSWORD" >"$D/bind-password"
    chmod 600 "$D/bind-password"
}

start() {
    # setsid gives the DC its own process group, so 'down' stops exactly it and its children.
    # --maximum-runtime is a safety net for a DC that nobody stops.
    setsid samba -F --debug-stdout -d1 --maximum-runtime=14400 -s "$D/etc/smb.conf" \
        >"$D/log/samba.out" 2>&1 </dev/null &
    echo $! >"$D/run/dc.pid"

    local waited=0
    until LDAPTLS_CACERT=$D/tls/ca.pem ldapsearch -LLL -x -H ldaps://127.0.0.1 -b '' -s base \
        defaultNamingContext >/dev/null 2>&1; do
        kill -0 "$(cat "$D/run/dc.pid")" 2>/dev/null ||
            { tail -n 20 "$D/log/samba.out" >&2; die "samba exited; its log is $D/log/samba.out"; }
        [ $waited -lt 120 ] || die "LDAPS did not answer within 60 s; see $D/log/samba.out"
        sleep 0.5
        waited=$((waited + 1))
    done
}

seed() {
    LDAPTLS_CACERT=$D/tls/ca.pem ldapadd -x -H ldaps://127.0.0.1 -D "$BIND_DN" \
        -y "$D/bind-password" -f "$SEED" >"$D/log/seed.log" 2>&1 ||
        { tail -n 20 "$D/log/seed.log" >&2; die "seeding failed; the log is $D/log/seed.log"; }
}

write_env() {
    cat >"$D/env" <<ENV
export LASTSEEN_TEST_AD_URL=ldaps://127.0.0.1:636
export LASTSEEN_TEST_AD_STARTTLS_URL=ldap://127.0.0.1:389
export LASTSEEN_TEST_AD_BIND_DN='$BIND_DN'
export LASTSEEN_TEST_AD_PASSWORD_FILE=$D/bind-password
export LASTSEEN_TEST_AD_CA_FILE=$D/tls/ca.pem
export LASTSEEN_TEST_AD_WRONG_CA_FILE=$D/tls/wrong-ca.pem
export LASTSEEN_TEST_AD_BASE_DN=$BASE_DN
export LASTSEEN_TEST_AD_SEED=$SEED
ENV
}

stop() {
    local pid
    pid=$(cat "$D/run/dc.pid" 2>/dev/null) || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$D/run/dc.pid"
}

case ${1:-} in
up)
    install_samba
    if [ -f "$D/run/dc.pid" ] && kill -0 "$(cat "$D/run/dc.pid")" 2>/dev/null; then
        die "a DC from $D is already running; run '$0 down' first"
    fi
    check_ports
    started=$(date +%s)
    provision
    start
    seed
    write_env
    say "DC up in $(( $(date +%s) - started )) s; env in $D/env"
    cat "$D/env"
    ;;
env)
    [ -f "$D/env" ] || die "no DC in $D; run '$0 up'"
    cat "$D/env"
    ;;
down)
    stop
    rm -rf "$D"
    ;;
*)
    die "usage: $0 up|env|down"
    ;;
esac
