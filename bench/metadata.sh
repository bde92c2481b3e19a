#!/usr/bin/env bash
# The live-metadata benchmark (BENCHMARKS.md, "Live metadata"): what a studio change costs on
# a large table, and how long each process takes to swap to it.
#
#  1. --applies times, an admin applies a one-field change (a new nullable text field on
#     lead) through POST /api/v1/admin/metadata/apply against a lead table of --rows rows;
#     the time of each apply as the client sees it (check, plan, migrate under the lock,
#     write the files, record the version, swap), and whether the table was rewritten
#     (SQLite: its root page; PostgreSQL: its relfilenode);
#  2. the swap in the applying process (from its log: building the new generation and
#     replacing the old), and in a second `keel serve` on the same database (from its log:
#     the whole reload — read the version, load it, write its files, swap — and the swap);
#  3. the baseline, in the same run: the same number of bare `ALTER TABLE lead ADD COLUMN`
#     through the database's command-line client (sqlite3 / psql), which is what the
#     database itself needs for the change.
#
#   bench/metadata.sh [--db sqlite|postgres] [--rows 1000000] [--applies 5] [--no-build]
#                     [--out FILE]
#
# It builds the release binaries, copies bench/app into a temporary app directory (one per
# server), migrates a fresh database (for --db postgres, a throwaway PostgreSQL 15 cluster on
# 127.0.0.1:61436), generates the leads with keel-bench-gen and starts two `keel serve` on
# loopback. Everything it started is stopped, whatever happens; every wait is bounded.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
DB_KIND=sqlite
ROWS=1000000
APPLIES=5
BUILD=1
OUT=
APPLIER_PORT=18196
FOLLOWER_PORT=18197
PGPORT=61436
PGBIN=/usr/lib/postgresql/15/bin
ADMIN=bench
ADMIN_PASSWORD=bench-password-0

usage() { header_usage "${BASH_SOURCE[0]}" 23; }

while (($# > 0)); do
    case $1 in
        --db) DB_KIND=${2:?}; shift 2 ;;
        --rows) ROWS=${2:?}; shift 2 ;;
        --applies) APPLIES=${2:?}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        --out) OUT=${2:?}; shift 2 ;;
        -h | --help) usage ;;
        *) echo "unknown argument: $1" >&2; usage ;;
    esac
done
[[ $DB_KIND == sqlite || $DB_KIND == postgres ]] || { echo "--db is sqlite or postgres" >&2; exit 2; }
require_numbers "$ROWS" "$APPLIES"
((APPLIES >= 1 && APPLIES <= 50)) || { echo "--applies is from 1 to 50" >&2; exit 2; }

WORK=$(mktemp -d -t keel-bench-metadata.XXXXXX)
APPLIER_PID=
FOLLOWER_PID=
PGTMP=
cleanup() {
    local status=$?
    stop_process "$APPLIER_PID"
    stop_process "$FOLLOWER_PID"
    stop_postgres
    rm -rf "$WORK"
    exit "$status"
}
set_traps

cd "$ROOT"
release_binaries keel-bench-gen

cp -r "$ROOT/bench/app" "$WORK/applier"
cp -r "$ROOT/bench/app" "$WORK/follower"

[[ $DB_KIND == postgres ]] && start_postgres "$PGPORT"
if [[ $DB_KIND == sqlite ]]; then
    DB_URL="sqlite://$WORK/bench.db"
else
    create_database "$PGPORT" keel_bench_metadata
    DB_URL="postgres://postgres@127.0.0.1:$PGPORT/keel_bench_metadata"
fi
sql() { # STATEMENT: run on the database, printing rows
    if [[ $DB_KIND == sqlite ]]; then
        sqlite3 "$WORK/bench.db" "$1"
    else
        as_postgres "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -qAtc "$1" keel_bench_metadata
    fi
}
# What changes when a table is rewritten: SQLite's root page (a rewrite copies the rows into
# a new table), PostgreSQL's relfilenode.
table_storage() {
    if [[ $DB_KIND == sqlite ]]; then
        sql "SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = 'lead'"
    else
        sql "SELECT relfilenode FROM pg_class WHERE relname = 'lead'"
    fi
}
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.1f\n", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
milliseconds() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", (b - a) * 1000 }'; }

log "migrating the app ($DB_KIND)"
"$KEEL" migrate --app "$WORK/applier" --db "$DB_URL" --apply >"$WORK/migrate.log" 2>&1 ||
    { cat "$WORK/migrate.log" >&2; exit 1; }
"$KEEL" user add "$ADMIN" --password "$ADMIN_PASSWORD" --role admin --app "$WORK/applier" \
    --db "$DB_URL" >"$WORK/user.log" 2>&1 || { cat "$WORK/user.log" >&2; exit 1; }
log "generating $ROWS leads"
"$GEN" --db "$DB_URL" --rows "$ROWS" --seed 42 --owner "$ADMIN" >&2
if [[ $DB_KIND == sqlite ]]; then sql "ANALYZE" >/dev/null; else sql "VACUUM ANALYZE lead" >/dev/null; fi

start_keel() { # NAME PORT: a `keel serve` on the app directory NAME, logging at info
    KEEL_LOG=info KEEL_ADMIN_PASSWORD=unused-admin-password "$KEEL" serve --app "$WORK/$1" \
        --db "$DB_URL" --listen "127.0.0.1:$2" >"$WORK/$1.log" 2>&1 &
    echo $!
}
APPLIER_PID=$(start_keel applier "$APPLIER_PORT")
wait_ready "http://127.0.0.1:$APPLIER_PORT/api/v1/healthz" "$APPLIER_PID" "$WORK/applier.log"
FOLLOWER_PID=$(start_keel follower "$FOLLOWER_PORT")
wait_ready "http://127.0.0.1:$FOLLOWER_PORT/api/v1/healthz" "$FOLLOWER_PID" "$WORK/follower.log"
URL="http://127.0.0.1:$APPLIER_PORT"
TOKEN=$(login "$URL" "$ADMIN" "$ADMIN_PASSWORD")
api() { # PATH [BODY]
    if (($# > 1)); then
        curl -sS --max-time 60 -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
            --data-binary "@$2" -o "$WORK/answer.json" -w '%{http_code} %{time_total}\n' "$URL$1"
    else
        curl -fsS --max-time 60 -H "Authorization: Bearer $TOKEN" "$URL$1"
    fi
}
# The log line of NAME's swap to VERSION (a bounded wait: 10 s).
log_line() { # NAME PATTERN VERSION
    local attempt line
    for attempt in $(seq 1 100); do
        line=$(grep -a "$2" "$WORK/$1.log" | grep -a "version=$3 " | tail -1 || true)
        [[ -n $line ]] && { echo "$line"; return 0; }
        sleep 0.1
    done
    echo "no '$2' line for version $3 in the $1's log:" >&2
    tail -20 "$WORK/$1.log" >&2
    return 1
}
# A number logged as KEY=<number> (tracing may quote or colour it).
log_number() { sed 's/\x1b\[[0-9;]*m//g' <<<"$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }

STORAGE_BEFORE=$(table_storage)
: >"$WORK/applies.txt"
for i in $(seq 1 "$APPLIES"); do
    BASE=$(api "/api/v1/admin/metadata/versions?limit=1" | jq -r '.data[0].version')
    api "/api/v1/admin/metadata/versions/$BASE" | jq -r '.files["metadata/objects/lead.yaml"]' \
        >"$WORK/lead.yaml"
    # A new nullable text field, the first under `fields:`.
    python3 - "$WORK/lead.yaml" "$i" "$BASE" >"$WORK/body.json" <<'PY'
import json, sys
path, i, base = sys.argv[1], sys.argv[2], int(sys.argv[3])
text = open(path, encoding="utf-8").read()
anchor = "\nfields:\n"
assert anchor in text, "lead.yaml has no fields:"
field = f"  bench_note_{i}: {{ type: text, label: {{ en: Note {i}, zh: 备注 {i} }} }}\n"
text = text.replace(anchor, anchor + field, 1)
print(json.dumps({"files": {"metadata/objects/lead.yaml": text}, "base": base}))
PY
    read -r STATUS ELAPSED < <(api /api/v1/admin/metadata/apply "$WORK/body.json")
    [[ $STATUS == 200 ]] || { echo "apply $i answered $STATUS: $(cat "$WORK/answer.json")" >&2; exit 1; }
    VERSION=$(jq -r '.version' "$WORK/answer.json")
    SWAP_LINE=$(log_line applier "swapped to a new metadata version" "$VERSION")
    FOLLOW_LINE=$(log_line follower "followed a new metadata version" "$VERSION")
    echo "$ELAPSED $(log_number "$SWAP_LINE" took_ms) $(log_number "$FOLLOW_LINE" reload_ms) $(log_number "$FOLLOW_LINE" swap_ms)" \
        >>"$WORK/applies.txt"
    log "apply $i → version $VERSION: $ELAPSED s"
done
STORAGE_AFTER=$(table_storage)
COLUMNS_SERVED=$(curl -fsS --max-time 10 -H "Authorization: Bearer $(login "http://127.0.0.1:$FOLLOWER_PORT" "$ADMIN" "$ADMIN_PASSWORD")" \
    "http://127.0.0.1:$FOLLOWER_PORT/api/v1/records/lead?limit=1" | jq -r "[.data[0] | keys[] | select(startswith(\"bench_note_\"))] | length")
stop_process "$APPLIER_PID"
APPLIER_PID=
stop_process "$FOLLOWER_PID"
FOLLOWER_PID=

log "the baseline: $APPLIES bare ALTER TABLE lead ADD COLUMN"
: >"$WORK/bare.txt"
for i in $(seq 1 "$APPLIES"); do
    START=$(date +%s.%N)
    sql "ALTER TABLE lead ADD COLUMN bare_note_$i TEXT" >/dev/null
    milliseconds "$START" "$(date +%s.%N)" >>"$WORK/bare.txt"
done

APPLY_MS=$(awk '{ print $1 * 1000 }' "$WORK/applies.txt" | median)
APPLY_MAX_MS=$(awk '{ printf "%.1f\n", $1 * 1000 }' "$WORK/applies.txt" | sort -g | tail -1)
SWAP_MS=$(awk '{ print $2 }' "$WORK/applies.txt" | median)
RELOAD_MS=$(awk '{ print $3 }' "$WORK/applies.txt" | median)
FOLLOWER_SWAP_MS=$(awk '{ print $4 }' "$WORK/applies.txt" | median)
BARE_MS=$(median <"$WORK/bare.txt")
REPORT=$(cat <<TEXT
### $DB_KIND — $(date -u +%Y-%m-%d) (commit $(git -C "$ROOT" rev-parse --short HEAD); load average $(cut -d' ' -f1-3 /proc/loadavg))

$APPLIES applies, each adding one nullable text field to lead ($ROWS rows); medians.

| figure | value |
|---|---|
| apply, as the client sees it (median / slowest) | **$APPLY_MS ms** / $APPLY_MAX_MS ms |
| baseline: a bare \`ALTER TABLE … ADD COLUMN\` through the command-line client | $BARE_MS ms |
| apply / baseline | $(awk -v a="$APPLY_MS" -v b="$BARE_MS" 'BEGIN { printf "%.1f", a / (b > 0 ? b : 1) }')× |
| table storage before → after the applies ($([[ $DB_KIND == sqlite ]] && echo "root page" || echo relfilenode)) | $STORAGE_BEFORE → $STORAGE_AFTER ($([[ $STORAGE_BEFORE == "$STORAGE_AFTER" ]] && echo "not rewritten" || echo "REWRITTEN")) |
| swap in the applying process | **$SWAP_MS ms** |
| the second process: whole reload (read, load, write files, swap) | **$RELOAD_MS ms** |
| the second process: swap | $FOLLOWER_SWAP_MS ms |
| new fields the second process serves | $COLUMNS_SERVED of $APPLIES |
TEXT
)
echo "$REPORT"
[[ -n $OUT ]] && echo "$REPORT" >>"$OUT"
exit 0
