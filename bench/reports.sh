#!/usr/bin/env bash
# The reports benchmark (BENCHMARKS.md, "Reports"): the sales funnel over 1M opportunities
# with 5M stage-history rows (five per opportunity), as an admin (every record) and as a rep
# (a tenth of them, the own scope), for one month's cohort (the default period, about 82k
# opportunities) and for the whole year's (all of them). Each figure is the median of 5
# requests after 2 warm-ups, timed by curl on loopback.
#
#   bench/reports.sh [--db sqlite|postgres] [--rows 1000000] [--no-build] [--out FILE]
#
# It builds the release binary, writes bench/app plus an opportunity object and a sales
# process into a temporary app directory, migrates a fresh database (for --db postgres, a
# throwaway PostgreSQL 15 cluster on 127.0.0.1:61435), generates the opportunities and their
# stage history with SQL in the database itself (deterministic: opportunity n follows one of
# four paths by n mod 4 — won, lost late, back and forth and still open, lost early after a
# reopen — created at an even pace through 2026 in the order of their ids, as real records
# are: ids are UUIDv7, so a period's records and their history sit together) with each
# opportunity's stage summary as its moves would have kept it, and starts `keel serve` on
# loopback.
# Everything it started is stopped, whatever happens; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DB_KIND=sqlite
ROWS=1000000
BUILD=1
OUT=
KEEL_PORT=18191
PGPORT=61435
PGBIN=/usr/lib/postgresql/15/bin
ADMIN=bench
ADMIN_PASSWORD=bench-password-0
REP_PASSWORD=rep-password-0
REPS=10

usage() { header_usage "${BASH_SOURCE[0]}" 19; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $DB_KIND == sqlite || $DB_KIND == postgres ]] || { echo "--db is sqlite or postgres" >&2; exit 2; }
[[ $ROWS =~ ^[0-9]+$ ]] && ((ROWS > 0)) || { echo "not a number: $ROWS" >&2; exit 2; }

WORK=$(mktemp -d -t keel-bench-reports.XXXXXX)
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

cd "$ROOT"
release_binaries

# bench/app plus the opportunity of the standard app reduced to what the funnel reads, its
# sales process, and the permissions of reps (own) and managers on it.
APP=$WORK/app
cp -r "$ROOT/bench/app" "$APP"
cat >"$APP/metadata/objects/opportunity.yaml" <<'YAML'
name: opportunity
label: { en: Opportunity, zh: 商机 }
title: name
fields:
  name: { type: text, required: true, max_length: 200 }
  stage:
    type: choice
    default: qualification
    options: [qualification, needs_analysis, proposal, negotiation, won, lost]
  amount: { type: money, min: 0 }
indexes:
  - [created_at]
  - [owner, stage]
YAML
mkdir -p "$APP/workflows/processes"
cat >"$APP/workflows/processes/opportunity_sales.yaml" <<'YAML'
name: opportunity_sales
object: opportunity
stage_field: stage
stages:
  - { key: qualification, probability: 10 }
  - { key: needs_analysis, probability: 30 }
  - { key: proposal, probability: 60 }
  - { key: negotiation, probability: 80 }
  - { key: won, probability: 100, outcome: won }
  - { key: lost, probability: 0, outcome: lost }
transitions:
  - { linear: true }
  - { from: "*", to: lost }
  - { from: lost, to: qualification }
YAML
# Appended under the last role of bench/app's roles.yaml, sales_rep: the own scope, as in
# the standard app.
cat >>"$APP/metadata/roles.yaml" <<'YAML'
    opportunity: { read: own, create: true, edit: own, delete: none }
YAML

[[ $DB_KIND == postgres ]] && start_postgres "$PGPORT"
KEEL_URL="http://127.0.0.1:$KEEL_PORT"
DB_NAME=keel_bench_reports

sql() { # STATEMENT: run on the database, printing rows
    if [[ $DB_KIND == sqlite ]]; then
        sqlite3 "$WORK/$DB_NAME.db" "$1"
    else
        as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -v ON_ERROR_STOP=1 \
            -qAtc "$1" "$DB_NAME"
    fi
}

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
for n in $(seq -w 1 "$REPS"); do
    "$KEEL" user add "rep$n" --password "$REP_PASSWORD" --role sales_rep --app "$APP" \
        --db "$DB_URL" >"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }
done

# The four paths, five stages each (the last is where the opportunity stands now).
PATHS="(0, 0, 'qualification'), (0, 1, 'needs_analysis'), (0, 2, 'proposal'), (0, 3, 'negotiation'), (0, 4, 'won'),
  (1, 0, 'qualification'), (1, 1, 'needs_analysis'), (1, 2, 'proposal'), (1, 3, 'negotiation'), (1, 4, 'lost'),
  (2, 0, 'qualification'), (2, 1, 'needs_analysis'), (2, 2, 'proposal'), (2, 3, 'needs_analysis'), (2, 4, 'proposal'),
  (3, 0, 'qualification'), (3, 1, 'lost'), (3, 2, 'qualification'), (3, 3, 'needs_analysis'), (3, 4, 'lost')"
REPS_BY_NUMBER="SELECT id, row_number() OVER (ORDER BY username) - 1 AS k FROM keel_users WHERE username LIKE 'rep%'"
# Each path's stage summary (the opportunity's keel_stages, as its moves would have kept it):
# per stage [times entered, completed stays, their seconds], every stay a day long.
summaries() { # JSON_OBJECT_AGG JSON_ARRAY: the CTEs paths, moves and summaries (p, j)
    echo "paths(p, j, stage) AS (VALUES $PATHS),
      moves AS (SELECT cur.p, prev.stage AS from_stage, cur.stage AS to_stage,
        CASE WHEN cur.j = 0 THEN NULL ELSE 86400 END AS seconds
        FROM paths cur LEFT JOIN paths prev ON prev.p = cur.p AND prev.j = cur.j - 1),
      parts AS (SELECT p, to_stage AS stage, 1 AS e, 0 AS n, 0 AS s FROM moves
        UNION ALL SELECT p, from_stage, 0, 1, seconds FROM moves WHERE seconds IS NOT NULL),
      summaries AS (SELECT p, $1(stage, $2(e, n, s)) AS j
        FROM (SELECT p, stage, sum(e) AS e, sum(n) AS n, sum(s) AS s FROM parts GROUP BY p, stage) t
        GROUP BY p)"
}
log "generating $ROWS opportunities and $((ROWS * 5)) stage history rows"
GENERATION_STARTED=$(date +%s)
if [[ $DB_KIND == sqlite ]]; then
    # Keel's SQLite forms: instants as fixed-width UTC text, money as cents.
    day="strftime('%Y-%m-%dT%H:%M:%S', '2025-12-31 16:00:00', '+' || (s.n * 31536000 / $ROWS) || ' seconds')"
    sql "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < $ROWS - 1),
      $(summaries json_group_object json_array),
      reps AS ($REPS_BY_NUMBER)
    INSERT INTO opportunity (id, owner, created_at, created_by, updated_at, updated_by, version, name, stage, amount, keel_stages)
    SELECT printf('opp-%08d', s.n), reps.id, $day || '.000000Z', reps.id, $day || '.000000Z', reps.id, 1,
      'Deal ' || s.n, paths.stage, ((s.n % 1000) + 1) * 100000, summaries.j
    FROM s JOIN reps ON reps.k = s.n % $REPS JOIN paths ON paths.p = s.n % 4 AND paths.j = 4
      JOIN summaries ON summaries.p = paths.p"
    sql "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < $ROWS - 1),
      paths(p, j, stage) AS (VALUES $PATHS)
    INSERT INTO keel_stage_history (id, object, record_id, process, from_stage, to_stage, at, by_user, comment, seconds_in_from)
    SELECT printf('h-%08d-%d', s.n, cur.j), 'opportunity', printf('opp-%08d', s.n), 'opportunity_sales',
      prev.stage, cur.stage,
      strftime('%Y-%m-%dT%H:%M:%S', '2025-12-31 16:00:00', '+' || (s.n * 31536000 / $ROWS + cur.j * 86400) || ' seconds') || '.000000Z',
      NULL, NULL, CASE WHEN cur.j = 0 THEN NULL ELSE 86400 END
    FROM s JOIN paths cur ON cur.p = s.n % 4
      LEFT JOIN paths prev ON prev.p = cur.p AND prev.j = cur.j - 1"
    sql "ANALYZE" >/dev/null
else
    day="(timestamptz '2026-01-01 00:00:00+08' + (s.n::bigint * 31536000 / $ROWS) * interval '1 second')"
    sql "WITH $(summaries jsonb_object_agg jsonb_build_array), reps AS ($REPS_BY_NUMBER)
    INSERT INTO opportunity (id, owner, created_at, created_by, updated_at, updated_by, version, name, stage, amount, keel_stages)
    SELECT 'opp-' || lpad(s.n::text, 8, '0'), reps.id, $day, reps.id, $day, reps.id, 1,
      'Deal ' || s.n, paths.stage, ((s.n % 1000) + 1) * 1000, summaries.j
    FROM generate_series(0, $ROWS - 1) AS s(n) JOIN reps ON reps.k = s.n % $REPS
      JOIN paths ON paths.p = s.n % 4 AND paths.j = 4 JOIN summaries ON summaries.p = paths.p"
    sql "WITH paths(p, j, stage) AS (VALUES $PATHS)
    INSERT INTO keel_stage_history (id, object, record_id, process, from_stage, to_stage, at, by_user, comment, seconds_in_from)
    SELECT 'h-' || lpad(s.n::text, 8, '0') || '-' || cur.j, 'opportunity', 'opp-' || lpad(s.n::text, 8, '0'),
      'opportunity_sales', prev.stage, cur.stage, $day + cur.j * interval '1 day',
      NULL, NULL, CASE WHEN cur.j = 0 THEN NULL ELSE 86400 END
    FROM generate_series(0, $ROWS - 1) AS s(n) JOIN paths cur ON cur.p = s.n % 4
      LEFT JOIN paths prev ON prev.p = cur.p AND prev.j = cur.j - 1"
    sql "VACUUM ANALYZE" >/dev/null
fi
GENERATION_SECONDS=$(($(date +%s) - GENERATION_STARTED))
OPPORTUNITIES=$(sql "SELECT count(*) FROM opportunity")
HISTORY_ROWS=$(sql "SELECT count(*) FROM keel_stage_history")

KEEL_LOG=warn KEEL_ADMIN_PASSWORD=unused-admin-password "$KEEL" serve --app "$APP" \
    --db "$DB_URL" --listen "127.0.0.1:$KEEL_PORT" >"$WORK/keel.log" 2>&1 &
KEEL_PID=$!
wait_ready "$KEEL_URL/api/v1/healthz" "$KEEL_PID" "$WORK/keel.log"
ADMIN_TOKEN=$(login "$KEEL_URL" "$ADMIN" "$ADMIN_PASSWORD")
REP_TOKEN=$(login "$KEEL_URL" rep01 "$REP_PASSWORD")

median_ms() { # TOKEN QUERY: the median of 5 timed requests after 2 warm-ups, in ms
    local times=() attempt
    for attempt in $(seq 1 7); do
        local time
        time=$(curl -fsS --max-time 120 -o "$WORK/answer.json" -w '%{time_total}' \
            -H "Authorization: Bearer $1" "$KEEL_URL/api/v1/reports/funnel?$2") ||
            { echo "the funnel failed: $(cat "$WORK/answer.json" 2>/dev/null)" >&2; exit 1; }
        ((attempt > 2)) && times+=("$time")
    done
    printf '%s\n' "${times[@]}" | sort -n | sed -n 3p | awk '{ printf "%.0f", $1 * 1000 }'
}
cohort() { jq -r '.total' "$WORK/answer.json"; }

MONTH="process=opportunity_sales&from=2026-06-01&to=2026-07-01"
YEAR="process=opportunity_sales&from=2026-01-01&to=2027-01-01"
log "timing the funnel"
ADMIN_MONTH=$(median_ms "$ADMIN_TOKEN" "$MONTH"); ADMIN_MONTH_N=$(cohort)
ADMIN_YEAR=$(median_ms "$ADMIN_TOKEN" "$YEAR"); ADMIN_YEAR_N=$(cohort)
REP_MONTH=$(median_ms "$REP_TOKEN" "$MONTH"); REP_MONTH_N=$(cohort)
REP_YEAR=$(median_ms "$REP_TOKEN" "$YEAR"); REP_YEAR_N=$(cohort)
curl -fsS --max-time 120 -H "Authorization: Bearer $ADMIN_TOKEN" \
    "$KEEL_URL/api/v1/reports/funnel?$YEAR" | jq -c '[.stages[] | {key, reached, avg_days}]' >"$WORK/stages.json"

REPORT=$(cat <<TEXT
### $DB_KIND — $(date -u +%Y-%m-%d) (commit $(git -C "$ROOT" rev-parse --short HEAD); load average $(cut -d' ' -f1-3 /proc/loadavg))

$OPPORTUNITIES opportunities, $HISTORY_ROWS stage history rows (generated in $GENERATION_SECONDS s).

| funnel (median of 5) | cohort | time |
|---|---|---|
| admin, one month | $ADMIN_MONTH_N | **$ADMIN_MONTH ms** |
| admin, the whole year | $ADMIN_YEAR_N | **$ADMIN_YEAR ms** |
| rep (own scope), one month | $REP_MONTH_N | $REP_MONTH ms |
| rep (own scope), the whole year | $REP_YEAR_N | $REP_YEAR ms |

Reached and average days per stage (admin, the year): \`$(cat "$WORK/stages.json")\`
TEXT
)
echo "$REPORT"
[[ -n $OUT ]] && echo "$REPORT" >>"$OUT"
exit 0
