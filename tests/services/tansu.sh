#!/usr/bin/env bash
# A throwaway Kafka broker (tansu) on 127.0.0.1 for lastseen's Kafka tests.
#
#   tests/services/tansu.sh up [--sqlite]   install tansu if missing, start it on a free port
#                                           with memory storage (or sqlite in its folder, so
#                                           data survives a restart), create lastseen's
#                                           topics, print the env line
#   tests/services/tansu.sh env             print the env line of the running broker
#   tests/services/tansu.sh restart         stop the broker and start it again, same port and
#                                           storage (tests of broker restarts use --sqlite)
#   tests/services/tansu.sh down            stop the broker and remove its folder
#
# It prints `export LASTSEEN_TEST_KAFKA=127.0.0.1:PORT`; `eval "$(tests/services/tansu.sh up)"`
# sets it. LASTSEEN_TANSU_DIR moves the folder (default target/tansu), so tests can run a broker
# of their own beside the shared one. LASTSEEN_TANSU_PREFIX names the topics (default lastseen).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=${LASTSEEN_TANSU_DIR:-$ROOT/target/tansu}
PREFIX=${LASTSEEN_TANSU_PREFIX:-lastseen}
PARTITIONS=3
TOPICS=(central.endpoints ad.changes actions candidates dlq)

say() { echo "tansu.sh: $*" >&2; }
die() { say "$*"; exit 1; }

install_tansu() {
    command -v tansu >/dev/null && return
    [ -x "$HOME/.cargo/bin/tansu" ] && return
    say "installing tansu (about 10 minutes)"
    cargo install tansu --locked --features dynostore,libsql >&2
}

tansu_bin() { command -v tansu || echo "$HOME/.cargo/bin/tansu"; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() { [ -f "$D/pid" ] && kill -0 "$(cat "$D/pid")" 2>/dev/null; }

wait_ready() {
    local port=$1 tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        tries=$((tries + 1))
        [ $tries -gt 100 ] && die "tansu did not listen on 127.0.0.1:$port; see $D/tansu.log"
        running || die "tansu exited; see $D/tansu.log"
        sleep 0.1
    done
}

start() {
    local port storage
    port=$(cat "$D/port")
    storage=$(cat "$D/storage")
    # Started from its folder, so a relative sqlite file stays inside it.
    (cd "$D" && exec "$(tansu_bin)" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "$storage" >>"$D/tansu.log" 2>&1) &
    echo $! >"$D/pid"
    wait_ready "$port"
}

stop() {
    running || return 0
    local pid
    pid=$(cat "$D/pid")
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$D/pid"
}

env_line() { echo "export LASTSEEN_TEST_KAFKA=127.0.0.1:$(cat "$D/port")"; }

case ${1:-} in
up)
    running && { env_line; exit 0; }
    install_tansu
    mkdir -p "$D"
    free_port >"$D/port"
    if [ "${2:-}" = --sqlite ]; then
        echo "sqlite://tansu.db" >"$D/storage"
    else
        echo "memory://tansu/" >"$D/storage"
    fi
    start
    for topic in "${TOPICS[@]}"; do
        "$(tansu_bin)" topic create "$PREFIX.$topic" --partitions $PARTITIONS \
            --broker "tcp://127.0.0.1:$(cat "$D/port")" >>"$D/tansu.log" 2>&1 ||
            die "cannot create topic $PREFIX.$topic; see $D/tansu.log"
    done
    say "tansu listens on 127.0.0.1:$(cat "$D/port") ($(cat "$D/storage")), topics $PREFIX.*"
    env_line
    ;;
env)
    running || die "no broker is running (from $D)"
    env_line
    ;;
restart)
    [ -f "$D/port" ] || die "no broker was started (from $D)"
    stop
    start
    say "tansu restarted on 127.0.0.1:$(cat "$D/port")"
    ;;
stop)
    stop
    ;;
down)
    stop
    rm -rf "$D"
    ;;
*)
    die "usage: $0 up [--sqlite] | env | restart | stop | down"
    ;;
esac
