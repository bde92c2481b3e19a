#!/usr/bin/env bash
# The workflow benchmark (BENCHMARKS.md): what scripts and rules cost a save, and how fast
# the outbox drains.
#
#   bench/workflow.sh [--db sqlite|postgres] [--duration 10] [--warmup 3] [--rounds 2]
#                     [--deliveries 10000] [--no-build] [--keep] [--out FILE]
#
# 1. POST create of a lead on two `keel serve` processes, each on its own fresh database:
#    bench/app as it is, and bench/app with the 20-line before-save script
#    bench/workflow/lead_tidy.rhai and the event rule bench/workflow/rules/big_lead.yaml
#    (each high-scoring lead notifies its owner, through the outbox, in the same process).
#    wrk runs against each in turn, --rounds times, alternating; the ratio is of the summed
#    requests.
# 2. The outbox drain: a process without an outbox worker (KEEL_OUTBOX_WORKER=off) takes
#    --deliveries creates (bulk calls of 1,000) of a lead whose event rule POSTs a webhook to
#    keel-bench-sink; then a process with a worker starts, and the time from its start until
#    the sink has every delivery gives deliveries per second (each delivery is two outbox
#    rows: the rule, then its webhook).
# Everything started here is stopped whatever happens; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DB_KIND=sqlite
DURATION=10
WARMUP=3
ROUNDS=2
DELIVERIES=10000
BUILD=1
KEEP=0
OUT=
PLAIN_PORT=18181
FLOW_PORT=18182
DRAIN_PORT=18183
SINK_PORT=18184
# Outside Linux's default ephemeral range (32768–60999), so a client socket left in
# TIME-WAIT by the POST runs cannot hold the port.
PGPORT=61434
PGBIN=/usr/lib/postgresql/15/bin
PGTMP=
USER_NAME=bench
USER_PASSWORD=bench-password-0

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

usage() { header_usage "${BASH_SOURCE[0]}" 19; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --warmup) WARMUP=${2:?}; shift 2 ;;
        --rounds) ROUNDS=${2:?}; shift 2 ;;
        --deliveries) DELIVERIES=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --keep) KEEP=1; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $DB_KIND == sqlite || $DB_KIND == postgres ]] || { echo "--db is sqlite or postgres" >&2; exit 2; }
require_numbers "$DURATION" "$WARMUP" "$ROUNDS" "$DELIVERIES"
((DURATION <= 120 && WARMUP <= 60 && ROUNDS <= 5 && DELIVERIES <= 100000)) ||
    { echo "--duration ≤ 120, --warmup ≤ 60, --rounds ≤ 5, --deliveries ≤ 100000" >&2; exit 2; }

WORK=$(mktemp -d -t keel-workflow.XXXXXX)
PIDS=()
cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do stop_process "$pid"; done
    stop_postgres
    if ((KEEP)); then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$status"
}
set_traps

ensure_wrk
cd "$ROOT"
release_binaries keel-bench-sink

# The three apps: bench/app as it is, with the script and the rule, and with a webhook rule.
PLAIN=$ROOT/bench/app
FLOW=$WORK/app-workflow
DRAIN=$WORK/app-drain
for app in "$FLOW" "$DRAIN"; do
    cp -r "$PLAIN" "$app"
    mkdir -p "$app/scripts" "$app/workflows/rules"
done
cp "$ROOT/bench/workflow/lead_tidy.rhai" "$FLOW/scripts/"
cp "$ROOT/bench/workflow/rules/big_lead.yaml" "$FLOW/workflows/rules/"
printf 'triggers:\n  before_save: [lead_tidy]\n' >>"$FLOW/metadata/objects/lead.yaml"
cat >"$DRAIN/workflows/rules/to_sink.yaml" <<RULE
name: to_sink
object: lead
on: [create]
action: { webhook: { url: "http://127.0.0.1:$SINK_PORT/hook" } }
RULE

database_url() { # NAME
    if [[ $DB_KIND == sqlite ]]; then
        echo "sqlite://$WORK/$1.db"
    else
        create_database "$PGPORT" "$1"
        echo "postgres://postgres@127.0.0.1:$PGPORT/$1"
    fi
}
[[ $DB_KIND == postgres ]] && start_postgres "$PGPORT"

prepare() { # APP NAME → prints the database URL
    local url
    url=$(database_url "$2")
    "$KEEL" migrate --app "$1" --db "$url" --apply >"$WORK/$2.migrate.log" 2>&1 ||
        { cat "$WORK/$2.migrate.log" >&2; exit 1; }
    "$KEEL" user add "$USER_NAME" --password "$USER_PASSWORD" --role admin --app "$1" \
        --db "$url" >"$WORK/$2.user.log" 2>&1 || { cat "$WORK/$2.user.log" >&2; exit 1; }
    echo "$url"
}

serve() { # APP URL PORT NAME [ENV…] → starts keel serve in the background (sets LAST_PID)
    local app=$1 url=$2 port=$3 name=$4
    shift 4
    env KEEL_ADMIN_PASSWORD=unused-admin-password "$@" "$KEEL" serve --app "$app" --db "$url" \
        --listen "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    wait_ready "http://127.0.0.1:$port/api/v1/healthz" "$LAST_PID" "$WORK/$name.log"
}

log "preparing the databases ($DB_KIND)"
PLAIN_URL=$(prepare "$PLAIN" plain)
FLOW_URL=$(prepare "$FLOW" flow)
DRAIN_URL=$(prepare "$DRAIN" drain)

# ---------------------------------------------------------------------------------------
# 1. POST create, with and without the script and the rule.
serve "$PLAIN" "$PLAIN_URL" "$PLAIN_PORT" plain
serve "$FLOW" "$FLOW_URL" "$FLOW_PORT" flow
export KEEL_BENCH_LUA_DIR=$ROOT/bench/wrk
export KEEL_BENCH_PATH=/api/v1/records/lead
: >"$WORK/results.txt"
run_post() { # NAME PORT
    local output line
    export KEEL_BENCH_TOKEN
    KEEL_BENCH_TOKEN=$(login "http://127.0.0.1:$2" "$USER_NAME" "$USER_PASSWORD")
    log "POST on $1: warm-up ${WARMUP}s, then ${DURATION}s"
    timeout $((WARMUP + 30)) wrk -t2 -c32 -d"${WARMUP}s" -s "$KEEL_BENCH_LUA_DIR/post.lua" \
        "http://127.0.0.1:$2" >/dev/null
    output=$(timeout $((DURATION + 30)) wrk -t2 -c32 -d"${DURATION}s" --timeout 5s \
        -s "$KEEL_BENCH_LUA_DIR/post.lua" "http://127.0.0.1:$2")
    echo "$output" >>"$WORK/wrk.log"
    line=$(grep '^KEEL_BENCH_RESULT' <<<"$output") || { echo "$output" >&2; return 1; }
    echo "$1 $line" >>"$WORK/results.txt"
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq 1 "$ROUNDS"); do
    run_post plain "$PLAIN_PORT"
    run_post workflow "$FLOW_PORT"
done
NOTIFIED=$(curl -fsS --max-time 10 -H "Authorization: Bearer $(login "http://127.0.0.1:$FLOW_PORT" "$USER_NAME" "$USER_PASSWORD")" \
    "http://127.0.0.1:$FLOW_PORT/api/v1/notifications?limit=1" | grep -c '"message"' || true)

# ---------------------------------------------------------------------------------------
# 2. The outbox drain.
"$SINK" --listen "127.0.0.1:$SINK_PORT" >"$WORK/sink.log" 2>&1 &
PIDS+=("$!")
for attempt in $(seq 1 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$SINK_PORT/count" && break
    sleep 0.1
done
serve "$DRAIN" "$DRAIN_URL" "$DRAIN_PORT" drain-fill KEEL_OUTBOX_WORKER=off
FILL_PID=$LAST_PID
TOKEN=$(login "http://127.0.0.1:$DRAIN_PORT" "$USER_NAME" "$USER_PASSWORD")
log "queueing $DELIVERIES webhook deliveries (bulk creates, no worker)"
made=0
while ((made < DELIVERIES)); do
    batch=$((DELIVERIES - made < 1000 ? DELIVERIES - made : 1000))
    python3 -c "
import json, sys
start, n = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps([{'name': f'外发线索 {start + i}', 'status': 'new', 'score': i % 101} for i in range(n)]))
" "$made" "$batch" >"$WORK/bulk.json"
    curl -fsS --max-time 120 -o /dev/null -H "Authorization: Bearer $TOKEN" \
        -H 'Content-Type: application/json' --data-binary "@$WORK/bulk.json" \
        "http://127.0.0.1:$DRAIN_PORT/api/v1/records/lead/bulk" || { echo "bulk create failed" >&2; exit 1; }
    made=$((made + batch))
done
stop_process "$FILL_PID"
log "draining with one worker"
DRAIN_START=$(date +%s.%N)
serve "$DRAIN" "$DRAIN_URL" "$DRAIN_PORT" drain KEEL_OUTBOX_WORKER=on
received=0
for attempt in $(seq 1 6000); do # at most 600 s
    read -r received distinct span_ms < <(curl -fsS --max-time 2 "http://127.0.0.1:$SINK_PORT/count" || echo "0 0 0")
    ((received >= DELIVERIES)) && break
    sleep 0.1
done
DRAIN_END=$(date +%s.%N)
DRAIN_SECONDS=$(awk -v a="$DRAIN_START" -v b="$DRAIN_END" 'BEGIN { printf "%.2f", b - a }')

# ---------------------------------------------------------------------------------------
report() {
    local cpu
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    echo "### $(date -u +%Y-%m-%d) · workflow · $DB_KIND"
    echo
    echo "Machine: $(nproc) cores ($cpu), $(free -h | awk '/^Mem:/ {print $2}') RAM;" \
        "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')."
    echo "Load average before: $LOAD_BEFORE; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "POST: wrk -t2 -c32 -d${DURATION}s after ${WARMUP}s warm-up, $ROUNDS rounds alternating."
    echo
    echo "| server | round | req/s | p50 | p99 | non-2xx |"
    echo "|---|---:|---:|---:|---:|---:|"
    awk '
        function field(name,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == name) return kv[2] } return 0 }
        {
            round[$1]++
            printf "| %s | %d | %.0f | %.2f ms | %.2f ms | %d |\n", $1, round[$1], field("rps"), field("p50_us") / 1000, field("p99_us") / 1000, field("non2xx") + field("socket_errors")
            total[$1] += field("requests")
        }
        END {
            if (total["plain"] > 0)
                printf "\nPOST create with the 20-line before-save script and one event rule: **%.2f×** of POST create without them (summed requests).\n", total["workflow"] / total["plain"]
        }
    ' "$WORK/results.txt"
    echo
    echo "Outbox drain: $received webhook deliveries ($distinct distinct delivery ids) reached the sink" \
        "$DRAIN_SECONDS s after a worker process started (start-up included):" \
        "$(awk -v n="$received" -v s="$DRAIN_SECONDS" 'BEGIN { printf "%.0f", n / s }') deliveries/s;" \
        "from the first delivery to the last, $(awk -v ms="$span_ms" 'BEGIN { printf "%.2f", ms / 1000 }') s:" \
        "**$(awk -v n="$received" -v ms="$span_ms" 'BEGIN { printf "%.0f", (ms > 0) ? n * 1000 / ms : 0 }') deliveries/s**" \
        "(each one a rule row and a webhook row)."
}
REPORT=$(report)
echo "$REPORT"
[[ -n $OUT ]] && echo "$REPORT" >"$OUT"
((received >= DELIVERIES)) || { echo "the sink got $received of $DELIVERIES deliveries" >&2; exit 1; }
