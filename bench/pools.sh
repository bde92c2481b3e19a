#!/usr/bin/env bash
# The pools benchmark (BENCHMARKS.md, "Pools and the scheduler"):
#  1. claims: 64 users claim the records of a 10k-record pool at once, two users racing for
#     every record; claims per second, and a check that no record was claimed twice; then the
#     same race against keel-bench-baseline (the same claim as bare SQL behind the same
#     sessions) on the same database put back as it was, for the ratio;
#  2. the auto-return sweep: 1M held leads of which about 100k are due, swept by a manual
#     run of the pool's job; the sweep's own time from its run record, and the p99 of record
#     reads idle, during the sweep, and while a shell loop keeps one core busy (what any
#     one-core job costs the reads), measured in the same run; then the baseline: the same
#     writes as bare set-based SQL (sqlite3 / psql) on a copy of the same database, chunk by
#     chunk, which is what the database itself needs.
#
#   bench/pools.sh [--db sqlite|postgres] [--rows 1000000] [--pool-rows 10000]
#                  [--claimers 64] [--part all|claims|sweep] [--no-build] [--out FILE]
#
# It builds the release binaries, writes bench/app plus a pool into a temporary app
# directory, and for each part migrates a fresh database (for --db postgres, a throwaway
# PostgreSQL 15 cluster on 127.0.0.1:61434), generates the leads with keel-bench-gen, puts
# them in the pool with one SQL update, and starts `keel serve` on loopback. Everything it
# started is stopped, whatever happens; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DB_KIND=sqlite
ROWS=1000000
POOL_ROWS=10000
CLAIMERS=64
BUILD=1
PART=all
OUT=
KEEL_PORT=18190
BASELINE_PORT=18192
PGPORT=61434
PGBIN=/usr/lib/postgresql/15/bin
ADMIN=bench
ADMIN_PASSWORD=bench-password-0
REP_PASSWORD=rep-password-0

usage() { header_usage "${BASH_SOURCE[0]}" 21; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
        --pool-rows) POOL_ROWS=${2:?}; shift 2 ;;
        --claimers) CLAIMERS=${2:?}; shift 2 ;;
        --part) PART=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $DB_KIND == sqlite || $DB_KIND == postgres ]] || { echo "--db is sqlite or postgres" >&2; exit 2; }
[[ $PART == all || $PART == claims || $PART == sweep ]] || { echo "--part is all, claims or sweep" >&2; exit 2; }
require_numbers "$ROWS" "$POOL_ROWS" "$CLAIMERS"
((CLAIMERS >= 2 && CLAIMERS <= 128 && CLAIMERS % 2 == 0)) ||
    { echo "--claimers is an even number from 2 to 128" >&2; exit 2; }

WORK=$(mktemp -d -t keel-bench-pools.XXXXXX)
KEEL_PID=
BASELINE_PID=
PGTMP=
cleanup() {
    local status=$?
    stop_process "$KEEL_PID"
    stop_process "$BASELINE_PID"
    stop_postgres
    rm -rf "$WORK"
    exit "$status"
}
set_traps

ensure_wrk
cd "$ROOT"
release_binaries keel-bench-gen keel-bench-baseline

# bench/app plus one pool without limits (the claims measure the claim itself) whose
# auto-return runs only when asked (its schedule is once a year).
APP=$WORK/app
cp -r "$ROOT/bench/app" "$APP"
mkdir -p "$APP/metadata/pools"
cat >"$APP/metadata/pools/bench_pool.yaml" <<'YAML'
name: bench_pool
object: lead
members: [sales_rep]
managers: [sales_manager]
claim_limit: 0
daily_claim_limit: 0
reclaim_cooldown: 0
auto_return:
  schedule: "0 0 3 1 1 *"
  warn_before: 0
  rules:
    - no_follow_up_for: 3d
notify_on_return: true
YAML

[[ $DB_KIND == postgres ]] && start_postgres "$PGPORT"
KEEL_URL="http://127.0.0.1:$KEEL_PORT"
export KEEL_BENCH_LUA_DIR=$ROOT/bench/wrk

sql() { # STATEMENT: run on the current database, printing rows
    if [[ $DB_KIND == sqlite ]]; then
        sqlite3 "$WORK/$DB_NAME.db" "$1"
    else
        as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qAtc "$1" "$DB_NAME"
    fi
}
# An instant DAYS days before now, as a SQL expression in the database's stored form.
ago() {
    if [[ $DB_KIND == sqlite ]]; then
        echo "strftime('%Y-%m-%dT%H:%M:%S', 'now', '-$1 days') || '.000000Z'"
    else
        echo "now() - interval '$1 days'"
    fi
}

fresh_database() { # NAME: migrate the app into a new database, add the admin and the reps
    DB_NAME=$1
    if [[ $DB_KIND == sqlite ]]; then
        DB_URL="sqlite://$WORK/$DB_NAME.db"
    else
        create_database "$PGPORT" "$DB_NAME"
        DB_URL="postgres://postgres@127.0.0.1:$PGPORT/$DB_NAME"
    fi
    log "migrating the app into $DB_NAME ($DB_KIND)"
    "$KEEL" migrate --app "$APP" --db "$DB_URL" --apply >"$WORK/migrate.log" 2>&1 ||
        { cat "$WORK/migrate.log" >&2; exit 1; }
    "$KEEL" user add "$ADMIN" --password "$ADMIN_PASSWORD" --role admin --app "$APP" \
        --db "$DB_URL" >"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }
    log "adding $CLAIMERS sales reps"
    REPS=()
    local n
    for n in $(seq -w 1 "$CLAIMERS"); do
        "$KEEL" user add "rep$n" --password "$REP_PASSWORD" --role sales_rep --app "$APP" \
            --db "$DB_URL" >"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }
        REPS+=("rep$n")
    done
}

start_keel() {
    KEEL_LOG=warn KEEL_ADMIN_PASSWORD=unused-admin-password "$KEEL" serve --app "$APP" \
        --db "$DB_URL" --listen "127.0.0.1:$KEEL_PORT" >"$WORK/keel.log" 2>&1 &
    KEEL_PID=$!
    wait_ready "$KEEL_URL/api/v1/healthz" "$KEEL_PID" "$WORK/keel.log"
}

result_field() { # LINE NAME
    sed -n "s/.* $2=\([0-9.]*\).*/\1/p" <<<"$1"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 1. Claims -------------------------------------------------------------------------
if [[ $PART != sweep ]]; then
fresh_database keel_bench_claims
log "generating $POOL_ROWS leads into the pool"
"$GEN" --db "$DB_URL" --rows "$POOL_ROWS" --seed 7 --owner "$ADMIN" --ids "$POOL_ROWS" \
    --ids-out "$WORK/pool-ids.txt" >&2
sql "UPDATE lead SET owner = NULL, pool = 'bench_pool'"
# One claim race of every rep against the server at URL (PREFIX before /pools/…), measured
# from the database: sets CLAIM_* for the report.
claim_race() { # URL PREFIX
    # wrk's threads stop when their lists are done, but wrk itself waits out its duration: it
    # is interrupted (SIGINT, after which it prints its summary) once every record is claimed.
    local total
    total=$(wc -l <"$WORK/pool-ids.txt")
    KEEL_BENCH_TOKEN='' KEEL_BENCH_TOKENS=$WORK/tokens.txt KEEL_BENCH_PREFIX=$2 \
        KEEL_BENCH_IDS=$WORK/pool-ids.txt KEEL_BENCH_POOL=bench_pool \
        KEEL_BENCH_LISTS=$((CLAIMERS / 2)) \
        wrk -t"$CLAIMERS" -c"$CLAIMERS" -d300s --timeout 10s \
        -s "$KEEL_BENCH_LUA_DIR/claim.lua" "$1" >"$WORK/claims.txt" &
    local wrk_pid=$!
    for _ in $(seq 1 3000); do
        kill -0 "$wrk_pid" 2>/dev/null || break
        (($(sql "SELECT count(*) FROM lead WHERE owner IS NOT NULL") >= total)) && break
        sleep 0.1
    done
    sleep 0.5
    kill -INT "$wrk_pid" 2>/dev/null || true
    wait "$wrk_pid" || true
    local output line
    output=$(cat "$WORK/claims.txt")
    line=$(grep '^KEEL_BENCH_RESULT' <<<"$output") || { echo "$output" >&2; exit 1; }
    # The claims' own span, first to last, from their pool history rows (server time).
    if [[ $DB_KIND == sqlite ]]; then
        CLAIM_SECONDS=$(sql "SELECT round((julianday(max(at)) - julianday(min(at))) * 86400, 2) FROM keel_pool_history WHERE action = 'claim'")
    else
        CLAIM_SECONDS=$(sql "SELECT round(extract(epoch FROM max(at) - min(at))::numeric, 2) FROM keel_pool_history WHERE action = 'claim'")
    fi
    CLAIM_REQUESTS=$(result_field "$line" requests)
    CLAIM_REFUSED=$(result_field "$line" non2xx)
    CLAIM_P99=$(result_field "$line" p99_us)
    CLAIMED_ROWS=$(sql "SELECT count(*) FROM lead WHERE owner IS NOT NULL")
    CLAIM_EVENTS=$(sql "SELECT count(*) FROM keel_pool_history WHERE action = 'claim'")
    DOUBLE_CLAIMS=$(sql "SELECT count(*) FROM (SELECT record_id FROM keel_pool_history WHERE action = 'claim' GROUP BY record_id HAVING count(*) > 1) twice")
    CLAIM_RATE=$(awk -v n="$CLAIMED_ROWS" -v s="$CLAIM_SECONDS" 'BEGIN { printf "%.0f", n / (s > 0 ? s : 1) }')
}
# Puts every record back in the pool with no history, as before a race.
reset_pool() {
    sql "UPDATE lead SET owner = NULL, claimed_at = NULL, version = 1" >/dev/null
    sql "DELETE FROM keel_pool_history" >/dev/null
    sql "DELETE FROM keel_audit" >/dev/null
    if [[ $DB_KIND == postgres ]]; then sql "VACUUM ANALYZE" >/dev/null; fi
}
reset_pool
start_keel
: >"$WORK/tokens.txt"
for rep in "${REPS[@]}"; do
    login "$KEEL_URL" "$rep" "$REP_PASSWORD" >>"$WORK/tokens.txt"
done
log "$CLAIMERS users claim $(wc -l <"$WORK/pool-ids.txt") records, two racing for each"
claim_race "$KEEL_URL" /api/v1
stop_process "$KEEL_PID"
KEEL_PID=
KEEL_CLAIMS=("$CLAIMED_ROWS" "$CLAIM_SECONDS" "$CLAIM_RATE" "$CLAIM_REQUESTS" "$CLAIM_REFUSED" "$CLAIM_P99" "$CLAIM_EVENTS" "$DOUBLE_CLAIMS")
# The baseline: the same race against keel-bench-baseline (the same claim as bare SQL, the
# same sessions), on the same database put back as it was.
reset_pool
"$BASELINE" --db "$DB_URL" --listen "127.0.0.1:$BASELINE_PORT" --owner "$ADMIN" \
    >"$WORK/baseline.log" 2>&1 &
BASELINE_PID=$!
wait_ready "http://127.0.0.1:$BASELINE_PORT/healthz" "$BASELINE_PID" "$WORK/baseline.log"
log "the same race against the baseline"
claim_race "http://127.0.0.1:$BASELINE_PORT" ""
stop_process "$BASELINE_PID"
BASELINE_PID=
CLAIM_REPORT=$(cat <<TEXT

Claims: $CLAIMERS users, $(wc -l <"$WORK/pool-ids.txt") records, two users racing for each.

| figure | Keel | baseline (bare SQL) |
|---|---|---|
| claims won | ${KEEL_CLAIMS[0]} in ${KEEL_CLAIMS[1]} s = **${KEEL_CLAIMS[2]} claims/s** | $CLAIMED_ROWS in $CLAIM_SECONDS s = $CLAIM_RATE claims/s |
| Keel / baseline (claims per second) | **$(awk -v a="${KEEL_CLAIMS[2]}" -v b="$CLAIM_RATE" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')** | |
| claim requests (won + lost) | ${KEEL_CLAIMS[3]}, of which ${KEEL_CLAIMS[4]} refused (409) | $CLAIM_REQUESTS, of which $CLAIM_REFUSED refused (409) |
| claim p99 | $((KEEL_CLAIMS[5] / 1000)) ms | $((CLAIM_P99 / 1000)) ms |
| claim events in the pool history | ${KEEL_CLAIMS[6]} | $CLAIM_EVENTS |
| records claimed twice | **${KEEL_CLAIMS[7]}** | $DOUBLE_CLAIMS |
TEXT
)
fi

# --- 2. The auto-return sweep -------------------------------------------------------------
if [[ $PART != claims ]]; then
fresh_database keel_bench_sweep
OWNERS=$(IFS=,; echo "${REPS[*]}")
log "generating $ROWS leads held from the pool by $CLAIMERS reps"
"$GEN" --db "$DB_URL" --rows "$ROWS" --seed 42 --owner "$OWNERS" --ids-out "$WORK/ids.txt" >&2
# About a tenth are due: those whose id ends in 00 to 19 (hex), claimed five days ago; the
# rest were claimed an hour ago.
sql "UPDATE lead SET pool = 'bench_pool', claimed_at = CASE WHEN substr(id, 35, 2) < '1a' THEN $(ago 5) ELSE $(ago 0.04) END"
DUE=$(sql "SELECT count(*) FROM lead WHERE substr(id, 35, 2) < '1a'")
if [[ $DB_KIND == sqlite ]]; then sql "ANALYZE" >/dev/null; else sql "VACUUM ANALYZE lead" >/dev/null; fi
# A copy for the baseline, before Keel touches it.
if [[ $DB_KIND == sqlite ]]; then
    cp "$WORK/$DB_NAME.db" "$WORK/floor.db"
else
    sql "CHECKPOINT" >/dev/null
    as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qAtc \
        "CREATE DATABASE keel_bench_floor TEMPLATE $DB_NAME" postgres
fi
start_keel
TOKEN=$(login "$KEEL_URL" "$ADMIN" "$ADMIN_PASSWORD")
export KEEL_BENCH_TOKEN=$TOKEN KEEL_BENCH_IDS=$WORK/ids.txt KEEL_BENCH_PATH=/api/v1/records/lead/
read_load() { # SECONDS: record reads as the admin, 4 connections; prints the result line
    timeout $(($1 + 30)) wrk -t2 -c4 -d"$1s" --timeout 5s --latency \
        -s "$KEEL_BENCH_LUA_DIR/get.lua" "$KEEL_URL" | grep '^KEEL_BENCH_RESULT'
}
log "record reads, idle (5 s)"
read_load 2 >/dev/null
IDLE_LINE=$(read_load 5)
log "the sweep of $DUE due leads, with the same reads running"
read_load 5 >"$WORK/during.txt" &
READS_PID=$!
sleep 0.5
curl -fsS --max-time 10 -X POST -H "Authorization: Bearer $TOKEN" \
    "$KEEL_URL/api/v1/admin/rules/pool:bench_pool/run" >"$WORK/run.json" ||
    { echo "could not start the sweep" >&2; exit 1; }
wait "$READS_PID"
DURING_LINE=$(cat "$WORK/during.txt")
RUN=
for _ in $(seq 1 600); do
    RUN=$(curl -fsS --max-time 10 -H "Authorization: Bearer $TOKEN" \
        "$KEEL_URL/api/v1/admin/rules/pool:bench_pool/runs" | jq -c '.data[0]')
    [[ $(jq -r '.finished_at // empty' <<<"$RUN") != "" ]] && break
    sleep 0.5
done
[[ $(jq -r '.finished_at // empty' <<<"$RUN") != "" ]] || { echo "the sweep did not finish: $RUN" >&2; exit 1; }
# The same reads while a shell loop keeps one core busy: what any job taking one core costs
# them on this machine, the floor for reads during the sweep, in the same run.
log "record reads with one core kept busy by a shell loop (5 s)"
timeout 7 sh -c 'while :; do :; done' &
BUSY_PID=$!
sleep 0.5
BUSY_LINE=$(read_load 5)
wait "$BUSY_PID" || true
SWEEP_SECONDS=$(python3 -c '
import datetime, json, sys
run = json.loads(sys.argv[1])
at = lambda text: datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
print(round((at(run["finished_at"]) - at(run["started_at"])).total_seconds(), 2))' "$RUN")
RETURNED=$(sql "SELECT count(*) FROM lead WHERE owner IS NULL")
RETURN_EVENTS=$(sql "SELECT count(*) FROM keel_pool_history WHERE action = 'return'")
NOTIFIED=$(sql "SELECT count(*) FROM keel_notifications")
stop_process "$KEEL_PID"
KEEL_PID=

# The baseline: the sweep's writes as bare SQL on the copy, in chunks of 1,000 due records
# along the primary key, one transaction each: the pool history rows, the two audit rows
# (owner, returned_at), the notification, then the update. Keel's sweep against this is the
# engine's own share; this alone is what the database needs for the same rows.
log "the baseline: the same writes as bare SQL on a copy of the database"
DB_NAME=$([[ $DB_KIND == sqlite ]] && echo floor || echo keel_bench_floor)
if [[ $DB_KIND == sqlite ]]; then
    NOW="strftime('%Y-%m-%dT%H:%M:%f000Z', 'now')"; AS_JSON=json_quote; BEGIN="BEGIN IMMEDIATE;"
else
    NOW="now()"; AS_JSON=to_jsonb; BEGIN="BEGIN;"
fi
# New rows' ids: the lead's id (UUIDv7, in creation order) and a suffix, so that they grow
# the way Keel's UUIDv7 ids do, at the end of each primary key.
FLOOR_DUE="\"deleted_at\" IS NULL AND pool = 'bench_pool' AND owner IS NOT NULL AND claimed_at <= $(ago 3)"
sql "SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM lead WHERE $FLOOR_DUE) due WHERE n % 1000 = 0" >"$WORK/bounds.txt"
echo "~" >>"$WORK/bounds.txt" # after every id (ids are lowercase hex and dashes)
{
    [[ $DB_KIND == sqlite ]] && echo "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768; PRAGMA mmap_size = 268435456;"
    LOW=""
    while read -r HIGH; do
        RANGE="$FLOOR_DUE AND id > '$LOW' AND id <= '$HIGH'"
        cat <<SQL
$BEGIN
INSERT INTO keel_pool_history (id, object, record_id, pool, action, actor, from_user, to_user, reason, note, at)
  SELECT id || '-h', 'lead', id, 'bench_pool', 'return', 'system', owner, NULL, 'auto_return', NULL, $NOW FROM lead WHERE $RANGE;
INSERT INTO keel_audit (id, object, record_id, at, by, action, field, old, new)
  SELECT id || '-a1', 'lead', id, $NOW, 'system', 'update', 'owner', $AS_JSON(owner), NULL FROM lead WHERE $RANGE;
INSERT INTO keel_audit (id, object, record_id, at, by, action, field, old, new)
  SELECT id || '-a2', 'lead', id, $NOW, 'system', 'update', 'returned_at', NULL, $AS_JSON($NOW) FROM lead WHERE $RANGE;
INSERT INTO keel_notifications (id, user_id, message, object, record_id, created_at)
  SELECT id || '-n', owner, 'Lead ' || name || ' went back to the pool bench_pool', 'lead', id, $NOW FROM lead WHERE $RANGE;
UPDATE lead SET owner = NULL, returned_at = $NOW, updated_at = $NOW, updated_by = 'system', version = version + 1 WHERE $RANGE;
COMMIT;
SQL
        LOW=$HIGH
    done <"$WORK/bounds.txt"
} >"$WORK/floor.sql"
FLOOR_START=$(date +%s.%N)
if [[ $DB_KIND == sqlite ]]; then
    sqlite3 "$WORK/floor.db" <"$WORK/floor.sql" >/dev/null
else
    as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qAt -v ON_ERROR_STOP=1 \
        keel_bench_floor <"$WORK/floor.sql" >/dev/null
fi
FLOOR_SECONDS=$(awk -v a="$FLOOR_START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
FLOOR_RETURNED=$(sql "SELECT count(*) FROM lead WHERE owner IS NULL")

SWEEP_REPORT=$(cat <<TEXT

Auto-return sweep: $ROWS held leads, $DUE due.

| figure | value |
|---|---|
| sweep time (run record: started → finished) | **$SWEEP_SECONDS s** |
| baseline: the same writes as bare SQL, same chunks | $FLOOR_SECONDS s ($FLOOR_RETURNED returned) |
| Keel / baseline | **$(awk -v a="$SWEEP_SECONDS" -v b="$FLOOR_SECONDS" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')×** |
| returned / return events / notifications | $RETURNED / $RETURN_EVENTS / $NOTIFIED |
| run record | \`$(jq -c '{matched, changed, errors}' <<<"$RUN")\` |
| record read p99, idle | $(($(result_field "$IDLE_LINE" p99_us) / 1000)) ms ($(result_field "$IDLE_LINE" rps) reads/s) |
| record read p99, during the sweep | $(($(result_field "$DURING_LINE" p99_us) / 1000)) ms ($(result_field "$DURING_LINE" rps) reads/s) |
| ratio during / idle (p99) | **$(awk -v a="$(result_field "$DURING_LINE" p99_us)" -v b="$(result_field "$IDLE_LINE" p99_us)" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')×** |
| record read p99, one core busy (a shell loop, no sweep) | $(($(result_field "$BUSY_LINE" p99_us) / 1000)) ms ($(result_field "$BUSY_LINE" rps) reads/s): $(awk -v a="$(result_field "$BUSY_LINE" p99_us)" -v b="$(result_field "$IDLE_LINE" p99_us)" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')× idle |
| ratio during the sweep / one core busy (p99) | **$(awk -v a="$(result_field "$DURING_LINE" p99_us)" -v b="$(result_field "$BUSY_LINE" p99_us)" 'BEGIN { printf "%.2f", a / (b > 0 ? b : 1) }')×** |
TEXT
)
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
REPORT="### $DB_KIND — $(date -u +%Y-%m-%d) (commit $(git -C "$ROOT" rev-parse --short HEAD); load average $LOAD_BEFORE; at the end: $LOAD_AFTER)${CLAIM_REPORT:+
$CLAIM_REPORT}${SWEEP_REPORT:+
$SWEEP_REPORT}"
echo "$REPORT"
[[ -n $OUT ]] && echo "$REPORT" >>"$OUT"
exit 0
