#!/usr/bin/env bash
# The pages benchmark (BENCHMARKS.md, "Pages"): server time per page at 100k leads against
# the API call that reads the same data, measured in one run; the SQL statements a page
# runs beyond that API call; and the weight of a list page.
#
#   bench/pages.sh [--db sqlite|postgres] [--rows 100000] [--duration 10] [--warmup 3]
#                  [--no-build] [--out FILE]
#
# It builds the release binaries, migrates bench/app into a temporary database (for
# --db postgres, a throwaway PostgreSQL 15 cluster on 127.0.0.1:61433), generates --rows leads,
# starts `keel serve` on loopback, signs in as an admin (who sees every lead, the largest
# count), and for each page runs `wrk -t1 -c1` (one request at a time, so latency is the
# server's time plus loopback) against the page and then against its API twin. It then
# restarts Keel with SQL statement logging, asks each page and its twin once more, and
# counts the statements each ran. Everything it started is stopped, whatever happens; every
# wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DB_KIND=sqlite
ROWS=100000
DURATION=10
WARMUP=3
BUILD=1
OUT=
KEEL_PORT=18180
PGPORT=61433
PGBIN=/usr/lib/postgresql/15/bin
USER_NAME=bench
USER_PASSWORD=bench-password-0

usage() { header_usage "${BASH_SOURCE[0]}" 16; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
        --duration) DURATION=${2:?}; shift 2 ;;
        --warmup) WARMUP=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $DB_KIND == sqlite || $DB_KIND == postgres ]] || { echo "--db is sqlite or postgres" >&2; exit 2; }
require_numbers "$ROWS" "$DURATION" "$WARMUP"
((DURATION <= 120 && WARMUP <= 60)) || { echo "--duration ≤ 120 and --warmup ≤ 60" >&2; exit 2; }

WORK=$(mktemp -d -t keel-bench-pages.XXXXXX)
KEEL_PID=
PGTMP=
cleanup() {
    local status=$?
    stop_process "$KEEL_PID"
    stop_postgres
    rm -rf "$WORK"
    exit "$status"
}
set_traps

ensure_wrk
cd "$ROOT"
release_binaries keel-bench-gen

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
log "generating $ROWS leads"
GEN_OUTPUT=$("$GEN" --db "$DB_URL" --rows "$ROWS" --seed 42 --owner "$USER_NAME" \
    --ids-owners 1 --ids-out "$WORK/ids.txt")
echo "$GEN_OUTPUT" >&2

KEEL_URL="http://127.0.0.1:$KEEL_PORT"
start_keel() { # KEEL_LOG value
    KEEL_LOG=$1 KEEL_ADMIN_PASSWORD=unused-admin-password "$KEEL" serve --app "$APP" \
        --db "$DB_URL" --listen "127.0.0.1:$KEEL_PORT" >"$WORK/keel.log" 2>&1 &
    KEEL_PID=$!
    wait_ready "$KEEL_URL/api/v1/healthz" "$KEEL_PID" "$WORK/keel.log"
    local login
    login=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' \
        -d "{\"username\":\"$USER_NAME\",\"password\":\"$USER_PASSWORD\"}" \
        "$KEEL_URL/api/v1/auth/login") || { echo "login failed" >&2; exit 1; }
    TOKEN=$(sed -n 's/.*"token"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' <<<"$login")
    [[ -n $TOKEN ]] || { echo "no token in the login answer: $login" >&2; exit 1; }
}
start_keel warn

FIRST_ID=$(head -n 1 "$WORK/ids.txt")
FILTER='status=eq.qualified&order=-score'
# name | page path | API twin path (both with the id where they read one record)
PAIRS=(
    "list|/app/lead?$FILTER|/api/v1/records/lead?$FILTER&limit=50"
    "record|/app/lead/{id}|/api/v1/records/lead/{id}"
    "edit form|/app/lead/{id}/edit|/api/v1/records/lead/{id}"
    "new form|/app/lead/new|/api/v1/meta/objects/lead"
)
ask() { # PATH: one GET as the admin, failing on a non-2xx answer
    curl -fsS --max-time 10 -o /dev/null -H "Authorization: Bearer $TOKEN" "$KEEL_URL${1//\{id\}/$FIRST_ID}"
}
for pair in "${PAIRS[@]}"; do
    IFS='|' read -r _ page api <<<"$pair"
    ask "$page" || { echo "smoke check failed: $page" >&2; exit 1; }
    ask "$api" || { echo "smoke check failed: $api" >&2; exit 1; }
done

export KEEL_BENCH_LUA_DIR=$ROOT/bench/wrk
export KEEL_BENCH_IDS=$WORK/ids.txt
export KEEL_BENCH_TOKEN
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
CLOCK_TICKS=$(getconf CLK_TCK)

# measure PATH: prints "requests rps p50_us p99_us non2xx cpu_us_per_request".
measure() {
    local path=$1 script url output line before after
    KEEL_BENCH_TOKEN=$TOKEN
    if [[ $path == *'{id}'* ]]; then
        script=$KEEL_BENCH_LUA_DIR/get.lua
        export KEEL_BENCH_PATH=${path%%\{id\}*}
        export KEEL_BENCH_SUFFIX=${path#*\{id\}}
        url=$KEEL_URL
    else
        script=$KEEL_BENCH_LUA_DIR/list.lua
        url=$KEEL_URL$path
    fi
    timeout $((WARMUP + 30)) wrk -t1 -c1 -d"${WARMUP}s" -s "$script" "$url" >/dev/null
    before=$(cpu_ticks "$KEEL_PID")
    output=$(timeout $((DURATION + 30)) wrk -t1 -c1 -d"${DURATION}s" --timeout 5s -s "$script" "$url")
    after=$(cpu_ticks "$KEEL_PID")
    line=$(grep '^KEEL_BENCH_RESULT' <<<"$output") || { echo "$output" >&2; return 1; }
    field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    local requests
    requests=$(field requests)
    echo "$requests $(field rps) $(field p50_us) $(field p99_us) $(field non2xx)" \
        "$(((after - before) * 1000000 / CLOCK_TICKS / (requests > 0 ? requests : 1)))"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$WORK/results.txt"
for pair in "${PAIRS[@]}"; do
    IFS='|' read -r name page api <<<"$pair"
    log "$name: the page, then its API twin (${DURATION}s each, one connection)"
    echo "$name|$page|$api|$(measure "$page")|$(measure "$api")" >>"$WORK/results.txt"
done

# Statements per answer: Keel again, logging every SQL statement (sqlx logs each one at
# debug level under the target sqlx::query); one warm request first (the session check is
# cached), then one counted request.
stop_process "$KEEL_PID"
KEEL_PID=
start_keel "warn,sqlx::query=debug"
count_statements() { # PATH
    ask "$1" >/dev/null
    local before after
    before=$(grep -c 'sqlx::query' "$WORK/keel.log" || true)
    ask "$1"
    sleep 0.2
    after=$(grep -c 'sqlx::query' "$WORK/keel.log" || true)
    echo $((after - before))
}
: >"$WORK/queries.txt"
for pair in "${PAIRS[@]}"; do
    IFS='|' read -r name page api <<<"$pair"
    echo "$name|$(count_statements "$page")|$(count_statements "$api")" >>"$WORK/queries.txt"
done

# Page weight of the list page: its HTML and every stylesheet and script it links.
LIST_HTML=$WORK/list.html
curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" -o "$LIST_HTML" "$KEEL_URL/app/lead?$FILTER"
HTML_BYTES=$(wc -c <"$LIST_HTML")
ASSET_BYTES=0
ASSETS=""
for asset in $(grep -oE '(href|src)="[^"]*/static/[^"]*\.(css|js)"' "$LIST_HTML" | sed -E 's/^(href|src)="//; s/"$//; s/&#x2f;/\//g'); do
    bytes=$(curl -fsS --max-time 10 "$KEEL_URL$asset" | wc -c)
    ASSET_BYTES=$((ASSET_BYTES + bytes))
    ASSETS="$ASSETS ${asset##*/} ($((bytes / 1024)) KB)"
done

report() {
    echo "### $(date -u +%Y-%m-%d) · $DB_KIND · $ROWS leads"
    echo
    echo "Machine: $(nproc) cores, $(free -h | awk '/^Mem:/ {print $2}') RAM; commit" \
        "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')." \
        "Load average before: $LOAD_BEFORE; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "Load: \`wrk -t1 -c1 -d${DURATION}s\` after a ${WARMUP}s warm-up, loopback, signed in as an admin (every lead visible)."
    echo "Data: $(head -n 1 <<<"$GEN_OUTPUT"). List filter: \`$FILTER\`, 50 per page."
    echo
    echo "| page | p50 page | p99 page | server CPU / page | API twin | p50 twin | server CPU / twin | page / twin (p50) | SQL statements page / twin |"
    echo "|---|---:|---:|---:|---|---:|---:|---:|---:|"
    while IFS='|' read -r name page api page_figures api_figures; do
        read -r _ _ p50 p99 bad cpu <<<"$page_figures"
        read -r _ _ tp50 _ tbad tcpu <<<"$api_figures"
        queries=$(grep "^$name|" "$WORK/queries.txt" | cut -d'|' -f2-)
        awk -v name="$name" -v page="$page" -v api="$api" -v p50="$p50" -v p99="$p99" -v cpu="$cpu" \
            -v tp50="$tp50" -v tcpu="$tcpu" -v bad="$((bad + tbad))" -v q="${queries/|/ / }" 'BEGIN {
                printf "| %s `%s` | %.2f ms | %.2f ms | %d µs | `%s` | %.2f ms | %d µs | %.2f× | %s |\n",
                    name, page, p50 / 1000, p99 / 1000, cpu, api, tp50 / 1000, tcpu, p50 / (tp50 > 0 ? tp50 : 1), q
                if (bad > 0) printf "|   ⚠ %d non-2xx answers |||||||||\n", bad
            }'
    done <"$WORK/results.txt"
    echo
    echo "List page weight: HTML $((HTML_BYTES / 1024)) KB + CSS and JS $((ASSET_BYTES / 1024)) KB =" \
        "**$(((HTML_BYTES + ASSET_BYTES) / 1024)) KB** uncompressed (assets:$ASSETS)."
}
REPORT=$(report)
echo "$REPORT"
if [[ -n $OUT ]]; then
    echo "$REPORT" >"$OUT"
    log "written to $OUT"
fi
