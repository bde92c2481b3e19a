#!/usr/bin/env bash
# The load benchmark (BENCHMARKS.md): Keel against a bare axum + sqlx server running the same
# SQL on the same database, measured in one run with wrk on loopback.
#
#   bench/run.sh [--db sqlite|postgres] [--rows 100000] [--duration 10] [--warmup 3]
#                [--threads 2] [--connections 32] [--no-build] [--keep] [--out FILE]
#
# It builds the release binaries, makes a temporary directory (and, for --db postgres, a
# throwaway PostgreSQL 15 cluster on 127.0.0.1:55433), migrates bench/app, generates
# --rows leads with keel-bench-gen, starts `keel serve` and keel-bench-baseline on loopback
# ports, signs in, and for each call (GET by id, the filtered list of 50, POST create) runs a
# warm-up and then `wrk -t2 -c32 -d10s` against each server in turn, sampling each server's
# RSS from /proc. GET and list run once more on Keel as a sales manager whose `subordinates`
# scope (a team of 10 of the 20 owners) covers half of the leads, against the admin's figures. It prints a Markdown table (also written to --out) and stops everything it
# started, whatever happens. Every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DB_KIND=sqlite
ROWS=100000
DURATION=10
WARMUP=3
THREADS=2
CONNECTIONS=32
BUILD=1
KEEP=0
OUT=
KEEL_PORT=18080
BASELINE_PORT=18091
PGPORT=55433
PGBIN=/usr/lib/postgresql/15/bin
USER_NAME=bench
USER_PASSWORD=bench-password-0

usage() { header_usage "${BASH_SOURCE[0]}" 15; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
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
require_numbers "$ROWS" "$DURATION" "$WARMUP" "$THREADS" "$CONNECTIONS"
# Bounded by construction: wrk stops after its duration; cap it anyway.
((DURATION <= 120 && WARMUP <= 60)) || { echo "--duration ≤ 120 and --warmup ≤ 60" >&2; exit 2; }


# ---------------------------------------------------------------------------------------
# Everything started here is stopped by `cleanup`, on success, failure or a signal.
WORK=$(mktemp -d -t keel-bench.XXXXXX)
KEEL_PID=
BASELINE_PID=
SAMPLER_PID=
PGTMP=

cleanup() {
    local status=$?
    stop_process "$SAMPLER_PID"
    stop_process "$KEEL_PID"
    stop_process "$BASELINE_PID"
    stop_postgres
    if ((KEEP)); then
        echo "kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
set_traps

# ---------------------------------------------------------------------------------------
ensure_wrk

cd "$ROOT"
release_binaries keel-bench-gen keel-bench-baseline

APP=$ROOT/bench/app
if [[ $DB_KIND == sqlite ]]; then
    DB_URL="sqlite://$WORK/bench.db"
else
    start_postgres "$PGPORT"
    create_database "$PGPORT" keel_bench
    DB_URL="postgres://postgres@127.0.0.1:$PGPORT/keel_bench"
fi

log "migrating bench/app on $DB_KIND"
"$KEEL" migrate --app "$APP" --db "$DB_URL" --apply >"$WORK/migrate.log" 2>&1 ||
    { cat "$WORK/migrate.log" >&2; exit 1; }
"$KEEL" user add "$USER_NAME" --password "$USER_PASSWORD" --role admin --app "$APP" --db "$DB_URL" \
    >"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }

# The org: a manager with 9 reps (the team), and 10 reps outside it; the leads are spread
# over all 20 round-robin, so the manager sees half of them.
MANAGER=manager
TEAM=("$MANAGER")
OUTSIDERS=()
add_user() { # NAME ROLE [MANAGER]
    "$KEEL" user add "$1" --password "$USER_PASSWORD" --role "$2" ${3:+--manager "$3"} \
        --app "$APP" --db "$DB_URL" >>"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }
}
log "adding the org (1 manager, 19 reps)"
add_user "$MANAGER" sales_manager
for number in $(seq 1 9); do add_user "team_$number" sales_rep "$MANAGER"; TEAM+=("team_$number"); done
for number in $(seq 1 10); do add_user "other_$number" sales_rep; OUTSIDERS+=("other_$number"); done
OWNERS=$(IFS=,; echo "${TEAM[*]},${OUTSIDERS[*]}")

log "generating $ROWS leads"
GEN_OUTPUT=$("$GEN" --db "$DB_URL" --rows "$ROWS" --seed 42 --owner "$OWNERS" \
    --ids-owners "${#TEAM[@]}" --ids-out "$WORK/ids.txt")
echo "$GEN_OUTPUT" >&2

log "starting keel serve (:$KEEL_PORT) and the baseline (:$BASELINE_PORT)"
KEEL_ADMIN_PASSWORD=unused-admin-password "$KEEL" serve --app "$APP" --db "$DB_URL" \
    --listen "127.0.0.1:$KEEL_PORT" >"$WORK/keel.log" 2>&1 &
KEEL_PID=$!
"$BASELINE" --db "$DB_URL" --listen "127.0.0.1:$BASELINE_PORT" --owner "$USER_NAME" \
    >"$WORK/baseline.log" 2>&1 &
BASELINE_PID=$!

wait_ready "http://127.0.0.1:$KEEL_PORT/api/v1/healthz" "$KEEL_PID" "$WORK/keel.log"
wait_ready "http://127.0.0.1:$BASELINE_PORT/healthz" "$BASELINE_PID" "$WORK/baseline.log"

LOGIN=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"username\":\"$USER_NAME\",\"password\":\"$USER_PASSWORD\"}" \
    "http://127.0.0.1:$KEEL_PORT/api/v1/auth/login") || { echo "login failed" >&2; exit 1; }
TOKEN=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$LOGIN")
[[ -n $TOKEN ]] || { echo "no token in the login answer: $LOGIN" >&2; exit 1; }
LOGIN=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
    -d "{\"username\":\"$MANAGER\",\"password\":\"$USER_PASSWORD\"}" \
    "http://127.0.0.1:$KEEL_PORT/api/v1/auth/login") || { echo "manager login failed" >&2; exit 1; }
TEAM_TOKEN=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$LOGIN")
[[ -n $TEAM_TOKEN ]] || { echo "no token in the login answer: $LOGIN" >&2; exit 1; }

# Both servers must answer the same call with a 2xx before anything is measured.
FIRST_ID=$(head -n 1 "$WORK/ids.txt")
LIST_QUERY='status=eq.qualified&order=-score&limit=50'
for url in "http://127.0.0.1:$KEEL_PORT/api/v1/records/lead/$FIRST_ID" \
    "http://127.0.0.1:$BASELINE_PORT/lead/$FIRST_ID" \
    "http://127.0.0.1:$KEEL_PORT/api/v1/records/lead?$LIST_QUERY" \
    "http://127.0.0.1:$BASELINE_PORT/lead?$LIST_QUERY"; do
    curl -fsS --max-time 10 -o /dev/null -H "Authorization: Bearer $TOKEN" "$url" ||
        { echo "smoke check failed: $url" >&2; exit 1; }
done
for url in "http://127.0.0.1:$KEEL_PORT/api/v1/records/lead/$FIRST_ID" \
    "http://127.0.0.1:$KEEL_PORT/api/v1/records/lead?$LIST_QUERY"; do
    curl -fsS --max-time 10 -o /dev/null -H "Authorization: Bearer $TEAM_TOKEN" "$url" ||
        { echo "smoke check as the manager failed: $url" >&2; exit 1; }
done

# ---------------------------------------------------------------------------------------
export KEEL_BENCH_LUA_DIR=$ROOT/bench/wrk
export KEEL_BENCH_IDS=$WORK/ids.txt

sample_rss() { # PID FILE: the largest VmRSS (kB) seen, every 0.2 s, until killed.
    local pid=$1 file=$2 peak=0 rss
    while kill -0 "$pid" 2>/dev/null; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        if ((${rss:-0} > peak)); then
            peak=$rss
            echo "$peak" >"$file"
        fi
        sleep 0.2
    done
}

# CPU time (user + system, in clock ticks) the process has used so far. Unlike req/s, CPU
# per request hardly moves when other work competes for the cores.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLOCK_TICKS=$(getconf CLK_TCK)

hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# run_wrk SERVER CALL SCRIPT URL PATH PID: warm-up, then the measured run; appends one line
# "server call rps p50_us p99_us non2xx socket_errors requests rss_peak_kb cpu_us" to
# results (cpu_us: the server's CPU time during the measured run).
run_wrk() {
    local server=$1 call=$2 script=$3 url=$4 path=$5 pid=$6 output line
    export KEEL_BENCH_PATH=$path
    case $server in
        keel) export KEEL_BENCH_TOKEN=$TOKEN ;;
        team) export KEEL_BENCH_TOKEN=$TEAM_TOKEN ;;
        *) export KEEL_BENCH_TOKEN= ;;
    esac
    log "$call on $server: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -s "$script" "$url" >/dev/null
    echo 0 >"$WORK/rss.peak"
    sample_rss "$pid" "$WORK/rss.peak" &
    SAMPLER_PID=$!
    local ticks_before ticks_after
    ticks_before=$(cpu_ticks "$pid")
    output=$(timeout $((DURATION + 30)) wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" \
        --timeout 5s -s "$script" "$url")
    ticks_after=$(cpu_ticks "$pid")
    stop_process "$SAMPLER_PID"
    SAMPLER_PID=
    echo "$output" >>"$WORK/wrk.log"
    line=$(grep '^KEEL_BENCH_RESULT' <<<"$output") || { echo "$output" >&2; return 1; }
    field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    echo "$server $call $(field rps) $(field p50_us) $(field p99_us) $(field non2xx)" \
        "$(field socket_errors) $(field requests) $(cat "$WORK/rss.peak")" \
        "$(((ticks_after - ticks_before) * 1000000 / CLOCK_TICKS))" >>"$WORK/results.txt"
}

# Other processes on a 2-core machine move every figure: say so in the report. (The one-
# minute average still holds the build and the data generation, so it reads high.)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v load="${LOAD_BEFORE%% *}" 'BEGIN { exit !(load > 1.5) }'; then
    log "warning: load average is $LOAD_BEFORE; other work will skew absolute figures (ratios less so)"
fi
: >"$WORK/results.txt"
KEEL_URL="http://127.0.0.1:$KEEL_PORT"
BASE_URL="http://127.0.0.1:$BASELINE_PORT"
# Reads first, all on the same data (the manager's runs right after the admin's, before the
# POST runs grow the table and the WAL); then the writes.
run_wrk keel get "$KEEL_BENCH_LUA_DIR/get.lua" "$KEEL_URL" /api/v1/records/lead/ "$KEEL_PID"
run_wrk baseline get "$KEEL_BENCH_LUA_DIR/get.lua" "$BASE_URL" /lead/ "$BASELINE_PID"
run_wrk team get "$KEEL_BENCH_LUA_DIR/get.lua" "$KEEL_URL" /api/v1/records/lead/ "$KEEL_PID"
run_wrk keel list "$KEEL_BENCH_LUA_DIR/list.lua" "$KEEL_URL/api/v1/records/lead?$LIST_QUERY" - "$KEEL_PID"
run_wrk baseline list "$KEEL_BENCH_LUA_DIR/list.lua" "$BASE_URL/lead?$LIST_QUERY" - "$BASELINE_PID"
run_wrk team list "$KEEL_BENCH_LUA_DIR/list.lua" "$KEEL_URL/api/v1/records/lead?$LIST_QUERY" - "$KEEL_PID"
run_wrk keel post "$KEEL_BENCH_LUA_DIR/post.lua" "$KEEL_URL" /api/v1/records/lead "$KEEL_PID"
run_wrk baseline post "$KEEL_BENCH_LUA_DIR/post.lua" "$BASE_URL" /lead "$BASELINE_PID"
KEEL_HWM=$(hwm_kb "$KEEL_PID")
BASELINE_HWM=$(hwm_kb "$BASELINE_PID")

# ---------------------------------------------------------------------------------------
report() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    echo "### $(date -u +%Y-%m-%d) · $DB_KIND · $ROWS leads"
    echo
    echo "Machine: $(nproc) cores ($cpu), $(free -h | awk '/^Mem:/ {print $2}') RAM;" \
        "$(uname -sr); $(rustc --version 2>/dev/null || echo rustc unknown);" \
        "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
    echo "Load average before the run: $LOAD_BEFORE; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Load: wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s after a ${WARMUP}s warm-up, loopback, one server at a time."
    echo "Data: $(head -n 1 <<<"$GEN_OUTPUT")."
    echo
    echo "Rows \`keel (manager)\` sign in as a sales manager whose \`subordinates\` scope covers half the leads; their ratio is against Keel's admin figure (no predicate)."
    echo
    echo "| call | server | req/s | p50 | p99 | server CPU / req | peak RSS | non-2xx | Keel / baseline (req/s) |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    awk '
        function ms(us) { return sprintf("%.2f ms", us / 1000) }
        function mb(kb) { return sprintf("%.1f MB", kb / 1024) }
        {
            server[NR] = $1; call[NR] = $2; rps[NR] = $3; p50[NR] = $4; p99[NR] = $5
            bad[NR] = $6 + $7; rss[NR] = $9; key = $1 " " $2; seen[key] = $3
            cpu[NR] = ($8 > 0) ? sprintf("%.0f µs", $10 / $8) : "-"
        }
        END {
            names["get"] = "GET by id"; names["list"] = "list 50 (status, -score)"; names["post"] = "POST create"
            for (i = 1; i <= NR; i++) {
                ratio = ""
                if (server[i] == "keel" && seen["baseline " call[i]] > 0)
                    ratio = sprintf("**%.2f×**", rps[i] / seen["baseline " call[i]])
                if (server[i] == "team" && seen["keel " call[i]] > 0)
                    ratio = sprintf("**%.2f×** of admin", rps[i] / seen["keel " call[i]])
                label = (server[i] == "team") ? "keel (manager)" : server[i]
                printf "| %s | %s | %.0f | %s | %s | %s | %s | %d | %s |\n", names[call[i]], label, rps[i], ms(p50[i]), ms(p99[i]), cpu[i], mb(rss[i]), bad[i], ratio
            }
        }' "$WORK/results.txt"
    echo
    echo "Peak RSS over the whole run (VmHWM): keel $((KEEL_HWM / 1024)) MB, baseline $((BASELINE_HWM / 1024)) MB."
}

REPORT=$(report)
echo "$REPORT"
if [[ -n $OUT ]]; then
    echo "$REPORT" >"$OUT"
    log "written to $OUT"
fi
