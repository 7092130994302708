#!/usr/bin/env bash
# Private PostgreSQL cluster for tests / local development.
#
#   scripts/postgres.sh start DIR PORT   # install PG if needed, init DIR/data, start, print URL
#   scripts/postgres.sh stop  DIR        # fast shutdown; no-op if not running
#   scripts/postgres.sh url   DIR PORT   # just print the URL
#
# The server listens on 127.0.0.1:PORT only, with its unix socket in DIR/sock,
# trust auth, superuser `postgres`.  URL printed on stdout:
#   postgres://postgres@127.0.0.1:PORT/postgres
# All diagnostics go to stderr.  Idempotent: `start` on a running cluster just
# prints the URL.  When run as root the server runs as the `postgres` OS user;
# DIR is made owned by postgres and its parent directories are made traversable
# (o+x) so that e.g. DIR under /root/... or the repo's target/ works.
set -euo pipefail

usage() {
    echo "usage: $0 start DIR PORT | stop DIR | url DIR PORT" >&2
    exit 2
}

log() { echo "postgres.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

find_bindir() {
    local best="" v d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] || continue
        v=$(basename "$(dirname "$d")")
        if [ -z "$best" ] || [ "$(printf '%s\n%s\n' "$best" "$v" | sort -V | tail -n1)" = "$v" ]; then
            best="$v"
        fi
    done
    [ -n "$best" ] && echo "/usr/lib/postgresql/$best/bin"
}

ensure_installed() {
    if [ -z "$(find_bindir)" ]; then
        log "PostgreSQL not found; installing with apt-get"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    fi
    BIN=$(find_bindir) || true
    if [ -z "${BIN:-}" ]; then
        log "no initdb under /usr/lib/postgresql/*/bin after install"
        exit 1
    fi
}

# Run a command as the postgres OS user (when we are root), or as ourselves.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# As root: let postgres traverse every parent of DIR (e.g. /root is 0700).
open_parents() {
    [ "$(id -u)" -eq 0 ] || return 0
    local p
    p=$(dirname "$DIR")
    while [ "$p" != "/" ]; do
        if ! runuser -u postgres -- test -x "$p"; then
            log "chmod o+x $p (so the postgres user can reach $DIR)"
            chmod o+x "$p"
        fi
        p=$(dirname "$p")
    done
}

is_running() {
    [ -f "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1
}

cmd_start() {
    ensure_installed
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd -P)
    DATA="$DIR/data"; SOCK="$DIR/sock"; LOG="$DIR/postgres.log"
    open_parents
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$DIR"
    fi

    if is_running; then
        echo "$URL"
        return 0
    fi

    if [ ! -d "$DATA" ]; then
        log "initdb $DATA"
        as_pg mkdir -p "$DATA"
        as_pg "$BIN/initdb" -D "$DATA" --auth=trust -U postgres -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 \
            || as_pg "$BIN/initdb" -D "$DATA" --auth=trust -U postgres -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 \
            || { cat "$DIR/initdb.log" >&2; exit 1; }
    fi
    as_pg mkdir -p "$SOCK"
    # The log file must exist and be writable by the server user before pg_ctl -l.
    as_pg touch "$LOG"
    log "starting on 127.0.0.1:$PORT (log: $LOG)"
    if ! as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK" start >&2; then
        log "pg_ctl start failed; last log lines:"
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
    # Wait until it actually accepts TCP connections.
    local i
    for i in $(seq 1 60); do
        if "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U postgres; then
            echo "$URL"
            return 0
        fi
        sleep 0.5
    done
    log "server did not become ready on 127.0.0.1:$PORT"
    tail -n 30 "$LOG" >&2 || true
    exit 1
}

cmd_stop() {
    BIN=$(find_bindir) || true
    if [ -z "${BIN:-}" ] || [ ! -d "$DIR/data" ]; then
        return 0
    fi
    DATA="$DIR/data"
    if is_running; then
        log "stopping $DATA"
        as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2
    fi
}

[ $# -ge 1 ] || usage
CMD=$1
case "$CMD" in
    start|url)
        [ $# -eq 3 ] || usage
        DIR=$2; PORT=$3
        ;;
    stop)
        [ $# -eq 2 ] || usage
        DIR=$2; PORT=
        ;;
    *) usage ;;
esac
URL="postgres://postgres@127.0.0.1:${PORT}/postgres"

case "$CMD" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) echo "$URL" ;;
esac
