# Shared by the benchmark scripts (sourced, not run): logging, stopping processes, a
# throwaway PostgreSQL 15 cluster, waiting for a server. Every wait is bounded.
#
# The sourcing script sets ROOT, BUILD, PGBIN and PGTMP (empty until `start_postgres`),
# defines `cleanup` (which calls `stop_postgres`) and calls `set_traps`.

# The script's usage: its header comment from line 2 to line LAST; exits 2.
header_usage() { # SCRIPT LAST
    sed -n "2,$2p" "$1" | sed 's/^# \{0,1\}//'
    exit 2
}

# Every argument must be a whole number (exits 2 naming the first that is not).
require_numbers() {
    local number
    for number; do
        [[ $number =~ ^[0-9]+$ ]] || { echo "not a number: $number" >&2; exit 2; }
    done
}

# The traps of every script: its `cleanup` on exit, and an exit status for INT and TERM.
set_traps() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# Builds the release binaries unless BUILD=0 (`--no-build`), sets KEEL, GEN, SINK and
# BASELINE to their paths, and exits unless `keel` and each NAME given exist.
release_binaries() { # [NAME…] of target/release binaries the script needs besides keel
    if ((BUILD)); then
        log "building release binaries"
        if (($# > 0)); then
            cargo build --release --locked -p keel -p keel-bench
        else
            cargo build --release --locked -p keel
        fi
    fi
    TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    KEEL=$TARGET_DIR/release/keel
    GEN=$TARGET_DIR/release/keel-bench-gen
    SINK=$TARGET_DIR/release/keel-bench-sink
    BASELINE=$TARGET_DIR/release/keel-bench-baseline
    local name
    for name in keel "$@"; do
        [[ -x $TARGET_DIR/release/$name ]] ||
            { echo "missing $TARGET_DIR/release/$name: run without --no-build" >&2; exit 1; }
    done
}

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

stop_process() { # PID: TERM, wait up to 10 s, then KILL.
    local pid=$1 waited=0
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# postgres refuses to run as root; the cluster directory is its own.
as_postgres() {
    if ((EUID == 0)); then
        (cd "$PGTMP" && runuser -u postgres -- "$@")
    else
        (cd "$PGTMP" && "$@")
    fi
}

start_postgres() { # PORT: a throwaway cluster on 127.0.0.1:PORT (sets PGTMP).
    [[ -x $PGBIN/initdb ]] || { echo "PostgreSQL 15 is missing: apt-get install postgresql-15" >&2; exit 1; }
    log "starting a throwaway PostgreSQL 15 on 127.0.0.1:$1"
    PGTMP=$(mktemp -d -t keel-bench-pg.XXXXXX)
    ((EUID == 0)) && chown postgres:postgres "$PGTMP"
    as_postgres "$PGBIN/initdb" -D "$PGTMP/data" -U postgres -A trust -E UTF8 \
        --locale=C.UTF-8 --no-sync >/dev/null
    # synchronous_commit=off gives PostgreSQL the durability of SQLite's WAL with
    # synchronous=NORMAL (a crash may lose the last commits, never corrupts): like for like.
    as_postgres "$PGBIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/log" -w -t 60 -o \
        "-c listen_addresses=127.0.0.1 -p $1 -k $PGTMP -c synchronous_commit=off" \
        start >/dev/null || { cat "$PGTMP/log" >&2; exit 1; }
}

create_database() { # PORT NAME
    as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$1" -U postgres -qAtc "CREATE DATABASE $2" postgres
}

stop_postgres() {
    if [[ -n ${PGTMP:-} && -d $PGTMP ]]; then
        as_postgres "$PGBIN/pg_ctl" -D "$PGTMP/data" stop -m fast >/dev/null 2>&1 || true
        rm -rf "$PGTMP"
    fi
}

wait_ready() { # URL PID LOG: up to 30 s.
    local attempt
    for attempt in $(seq 1 300); do
        if curl -fsS -o /dev/null --max-time 1 "$1"; then
            return 0
        fi
        kill -0 "$2" 2>/dev/null || { echo "server exited:" >&2; cat "$3" >&2; return 1; }
        sleep 0.1
    done
    echo "not ready after 30 s: $1" >&2
    cat "$3" >&2
    return 1
}

login() { # BASE_URL USER PASSWORD → prints the token
    local answer token
    answer=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
        -d "{\"username\":\"$2\",\"password\":\"$3\"}" "$1/api/v1/auth/login") ||
        { echo "login failed at $1" >&2; return 1; }
    token=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$answer")
    [[ -n $token ]] || { echo "no token in the login answer: $answer" >&2; return 1; }
    echo "$token"
}

ensure_wrk() {
    command -v wrk >/dev/null && return 0
    if ((EUID == 0)); then
        log "installing wrk (Debian package)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    else
        echo "wrk is missing: apt-get install wrk" >&2
        exit 1
    fi
}
