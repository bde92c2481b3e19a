#!/usr/bin/env bash
# The 查重 benchmark (BENCHMARKS.md): the standard app's lead with its three duplicate keys
# (phone and mobile `block`, company + name `warn`), against the same lead without them.
#
#   bench/duplicates.sh [--db sqlite|postgres] [--rows 1000000] [--import-rows 100000]
#                       [--duration 10] [--warmup 3] [--threads 2] [--connections 32]
#                       [--no-build] [--keep] [--out FILE]
#
# On one database: migrates the standard app (the repository root), adds the admin `bench`,
# generates --rows leads with keel-bench-gen (unique mobiles, random phones), then
#   1. serves a copy of the app whose lead has no duplicate keys and measures POST create;
#   2. fills the duplicate keys of the generated rows (`keel migrate --apply`, timed; on
#      PostgreSQL then VACUUM ANALYZE of the key table and a CHECKPOINT, untimed);
#   3. serves the standard app and measures POST create and GET …/duplicates?mobile=…
#      (with --connections, then with one connection);
#   4. imports --import-rows new leads with phone and mobile numbers from CSV through
#      `keel import` with the standard app (timed, rows/s).
# Prints a Markdown table (also written to --out) and stops everything it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DB_KIND=sqlite
ROWS=1000000
IMPORT_ROWS=100000
DURATION=10
WARMUP=3
THREADS=2
CONNECTIONS=32
BUILD=1
KEEP=0
OUT=
# One port per database kind, so a SQLite and a PostgreSQL run can go at once.
KEEL_PORT=
PGPORT=55434
PGBIN=/usr/lib/postgresql/15/bin
USER_NAME=bench
USER_PASSWORD=bench-password-0

usage() { header_usage "${BASH_SOURCE[0]}" 18; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
        --import-rows) IMPORT_ROWS=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --warmup) WARMUP=${2:?}; shift 2 ;;
        --threads) THREADS=${2:?}; shift 2 ;;
        --connections) CONNECTIONS=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $DB_KIND == sqlite || $DB_KIND == postgres ]] || { echo "--db is sqlite or postgres" >&2; exit 2; }
require_numbers "$ROWS" "$IMPORT_ROWS" "$DURATION" "$WARMUP" "$THREADS" "$CONNECTIONS"
((DURATION <= 120 && WARMUP <= 60)) || { echo "--duration ≤ 120 and --warmup ≤ 60" >&2; exit 2; }
if [[ $DB_KIND == sqlite ]]; then KEEL_PORT=18082; else KEEL_PORT=18083; fi
((ROWS >= 1 && ROWS <= 99999999)) || { echo "--rows is 1 to 99,999,999" >&2; exit 2; }


WORK=$(mktemp -d -t keel-dup-bench.XXXXXX)
KEEL_PID=
PGTMP=

cleanup() {
    local status=$?
    stop_process "$KEEL_PID"
    stop_postgres
    if ((KEEP)); then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
set_traps

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

cd "$ROOT"
release_binaries keel-bench-gen

# The standard app, and a copy whose lead declares no duplicate keys.
APP=$ROOT
NODUP=$WORK/nodup
mkdir -p "$NODUP"
for part in metadata scripts workflows; do
    [[ -d $ROOT/$part ]] && cp -r "$ROOT/$part" "$NODUP/"
done
awk '/^duplicates:/ { skip = 1; next } skip && /^  / { next } { skip = 0; print }' \
    "$ROOT/metadata/objects/lead.yaml" >"$NODUP/metadata/objects/lead.yaml"
grep -q '^duplicates:' "$NODUP/metadata/objects/lead.yaml" && { echo "could not remove the keys" >&2; exit 1; }

if [[ $DB_KIND == sqlite ]]; then
    DB_URL="sqlite://$WORK/bench.db"
else
    start_postgres "$PGPORT"
    create_database "$PGPORT" keel_bench
    DB_URL="postgres://postgres@127.0.0.1:$PGPORT/keel_bench"
fi

seconds_since() { awk -v start="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.1f", now - start }'; }

log "migrating the standard app on $DB_KIND"
"$KEEL" migrate --app "$APP" --db "$DB_URL" --apply >"$WORK/migrate.log" 2>&1 ||
    { cat "$WORK/migrate.log" >&2; exit 1; }
"$KEEL" user add "$USER_NAME" --password "$USER_PASSWORD" --role admin --app "$APP" --db "$DB_URL" \
    >"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }

log "generating $ROWS leads"
GEN_OUTPUT=$("$GEN" --db "$DB_URL" --rows "$ROWS" --seed 42 --owner "$USER_NAME" \
    --mobile-prefix 139 --ids 10 --ids-out "$WORK/ids.txt")
echo "$GEN_OUTPUT" >&2

serve() { # APP_DIR: starts keel serve, waits until it answers, signs in (TOKEN).
    KEEL_ADMIN_PASSWORD=unused-admin-password "$KEEL" serve --app "$1" --db "$DB_URL" \
        --listen "127.0.0.1:$KEEL_PORT" >"$WORK/keel.log" 2>&1 &
    KEEL_PID=$!
    local attempt ready=0
    # Up to 30 minutes: starting applies the metadata, which may (re)build duplicate keys.
    for attempt in $(seq 1 18000); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$KEEL_PORT/api/v1/healthz"; then
            ready=1
            break
        fi
        kill -0 "$KEEL_PID" 2>/dev/null || { echo "keel serve exited:" >&2; cat "$WORK/keel.log" >&2; return 1; }
        sleep 0.1
    done
    ((ready)) || { echo "keel serve not ready" >&2; return 1; }
    local login
    login=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
        -d "{\"username\":\"$USER_NAME\",\"password\":\"$USER_PASSWORD\"}" \
        "http://127.0.0.1:$KEEL_PORT/api/v1/auth/login") || { echo "login failed" >&2; return 1; }
    TOKEN=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$login")
    [[ -n $TOKEN ]] || { echo "no token in the login answer: $login" >&2; return 1; }
    export KEEL_BENCH_TOKEN=$TOKEN
}

export KEEL_BENCH_LUA_DIR=$ROOT/bench/wrk
export KEEL_BENCH_ROWS=$ROWS
: >"$WORK/results.txt"

# run_wrk LABEL SCRIPT PATH [CONNECTIONS THREADS]: warm-up, then the measured run; appends
# "label rps p50_us p99_us non2xx socket_errors requests" to results.
run_wrk() {
    local label=$1 script=$2 output line
    local connections=${4:-$CONNECTIONS} threads=${5:-$THREADS}
    export KEEL_BENCH_PATH=$3
    log "$label: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 30)) wrk -t"$threads" -c"$connections" -d"${WARMUP}s" -s "$script" \
        "http://127.0.0.1:$KEEL_PORT" >/dev/null
    output=$(timeout $((DURATION + 30)) wrk -t"$threads" -c"$connections" -d"${DURATION}s" \
        --timeout 5s -s "$script" "http://127.0.0.1:$KEEL_PORT")
    echo "$output" >>"$WORK/wrk.log"
    line=$(grep '^KEEL_BENCH_RESULT' <<<"$output") || { echo "$output" >&2; return 1; }
    field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    echo "$label $(field rps) $(field p50_us) $(field p99_us) $(field non2xx)" \
        "$(field socket_errors) $(field requests)" >>"$WORK/results.txt"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# PostgreSQL: write out what generating (or filling) just wrote, so that a checkpoint of
# gigabytes of WAL does not run in the middle of a measured run.
checkpoint() {
    if [[ $DB_KIND == postgres ]]; then
        as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qAtc 'CHECKPOINT' keel_bench
    fi
}
checkpoint

log "1. the lead without duplicate keys"
started=$(date +%s.%N)
serve "$NODUP"
NODUP_START=$(seconds_since "$started")
run_wrk post_nodup "$KEEL_BENCH_LUA_DIR/post_standard.lua" /api/v1/records/lead
stop_process "$KEEL_PID"
KEEL_PID=

log "2. filling the duplicate keys of $ROWS leads"
started=$(date +%s.%N)
"$KEEL" migrate --app "$APP" --db "$DB_URL" --apply >>"$WORK/migrate.log" 2>&1 ||
    { cat "$WORK/migrate.log" >&2; exit 1; }
FILL_SECONDS=$(seconds_since "$started")
if [[ $DB_KIND == postgres ]]; then
    # Settle the 3 keys per lead just written, so autovacuum does not start on them in the
    # middle of the measured run (as it did once: 0.62× instead of 0.78×).
    as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qAtc \
        'VACUUM (ANALYZE) keel_duplicate_keys' keel_bench
    checkpoint
fi

log "3. the standard lead (three duplicate keys)"
serve "$APP"
PROBE=$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" \
    "http://127.0.0.1:$KEEL_PORT/api/v1/records/lead/duplicates?mobile=13900000007")
grep -q '"id"' <<<"$PROBE" || { echo "the duplicate lookup found nothing: $PROBE" >&2; exit 1; }
run_wrk post_keys "$KEEL_BENCH_LUA_DIR/post_standard.lua" /api/v1/records/lead
run_wrk duplicates "$KEEL_BENCH_LUA_DIR/duplicates.lua" /api/v1/records/lead/duplicates
# One client at a time: the lookup's own latency, without the queueing of 32 connections
# on two cores.
run_wrk duplicates_one "$KEEL_BENCH_LUA_DIR/duplicates.lua" /api/v1/records/lead/duplicates 1 1
stop_process "$KEEL_PID"
KEEL_PID=

log "4. keel import of $IMPORT_ROWS leads with phone and mobile numbers"
# Numbers no generated lead has (138 and 137 prefixes, row number as 8 digits); every
# 50th row repeats the company and name of the one before (a `warn` match).
awk -v rows="$IMPORT_ROWS" 'BEGIN {
    print "name,company,phone,mobile,source,status,score"
    for (i = 0; i < rows; i++) {
        n = (i % 50 == 1) ? i - 1 : i
        printf "导入线索 %d,导入公司 %d,0138-%08d,137%08d,web,new,%d\n", n, n, i, i, i % 101
    }
}' >"$WORK/import.csv"
started=$(date +%s.%N)
"$KEEL" import lead "$WORK/import.csv" --app "$APP" --db "$DB_URL" >"$WORK/import.log" 2>&1 ||
    { cat "$WORK/import.log" >&2; exit 1; }
IMPORT_SECONDS=$(seconds_since "$started")
IMPORT_SUMMARY=$(grep -m 1 " rows; " "$WORK/import.log" || true)

report() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    echo "### $(date -u +%Y-%m-%d) · $DB_KIND · $ROWS standard leads (查重)"
    echo
    echo "Machine: $(nproc) cores ($cpu), $(free -h | awk '/^Mem:/ {print $2}') RAM;" \
        "$(uname -sr); $(rustc --version 2>/dev/null || echo rustc unknown);" \
        "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
    echo "Load average before the run: $LOAD_BEFORE; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up, loopback, as an admin."
    echo "Data: $(head -n 1 <<<"$GEN_OUTPUT"). Start-up without keys (clears them): ${NODUP_START} s;" \
        "filling the keys of the generated rows (\`keel migrate --apply\`): ${FILL_SECONDS} s."
    echo
    echo "| call | req/s | p50 | p99 | non-2xx | ratio |"
    echo "|---|---:|---:|---:|---:|---:|"
    awk '
        function ms(us) { return sprintf("%.2f ms", us / 1000) }
        { label[NR] = $1; rps[NR] = $2; p50[NR] = $3; p99[NR] = $4; bad[NR] = $5 + $6; seen[$1] = $2 }
        END {
            names["post_nodup"] = "POST create, lead without duplicate keys"
            names["post_keys"] = "POST create, standard lead (3 keys)"
            names["duplicates"] = "GET …/duplicates?mobile=…"
            names["duplicates_one"] = "GET …/duplicates?mobile=…, one connection"
            for (i = 1; i <= NR; i++) {
                ratio = ""
                if (label[i] == "post_keys" && seen["post_nodup"] > 0)
                    ratio = sprintf("**%.2f×** of no keys", rps[i] / seen["post_nodup"])
                printf "| %s | %.0f | %s | %s | %d | %s |\n", names[label[i]], rps[i], ms(p50[i]), ms(p99[i]), bad[i], ratio
            }
        }' "$WORK/results.txt"
    echo
    awk -v rows="$IMPORT_ROWS" -v seconds="$IMPORT_SECONDS" -v summary="$IMPORT_SUMMARY" 'BEGIN {
        printf "`keel import` of %d standard leads with phone and mobile numbers into the same table: %.1f s, **%.0f rows/s** (%s).\n", rows, seconds, rows / seconds, summary
    }'
}

REPORT=$(report)
echo "$REPORT"
if [[ -n $OUT ]]; then
    echo "$REPORT" >"$OUT"
    log "written to $OUT"
fi
