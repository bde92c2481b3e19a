//! The SQL of the reports (docs/reports.md): the sales funnel over a cohort of process
//! records, read from each record's stage summary (`keel_stages`, which every move keeps
//! from the stage history `keel_stage_history`: the stages entered and the time spent in
//! each), and the records that entered some stages in a period (the briefing's won amount).
//!
//! Every query takes the cohort as a [`Condition`] over the object's columns — the runtime
//! puts the caller's record scope, the period and any owner into it — and evaluates it in a
//! subquery over the object's table alone, so its unqualified column names never meet the
//! history's. Stage keys, object and process names are bound parameters like every value.
//! The figures come back grouped; which stage counts as reached, the rates and the
//! weighting are the runtime's (`keel_runtime::reports`). [`seed_stage_history`] writes
//! history rows (and the summaries) directly, for tests only: the one path that writes them
//! in the product is the process transition.

use chrono::{DateTime, Utc};
use keel_meta::{Object, Storage, Value};

use crate::db::{Connection, Db};
use crate::error::StoreError;
use crate::processes::{STAGE_SUMMARY, SummaryPart, push_summary_number};
use crate::records::columns::ObjectColumns;
use crate::records::condition::push_condition;
use crate::records::execute::{Shape, fetch};
use crate::records::select::push_deleted;
use crate::records::statement::Statement;
use crate::records::{Condition, Deleted};

const HISTORY: &str = "keel_stage_history";
/// Rows per INSERT of [`seed_stage_history`] (10 parameters a row, under every limit).
const ROWS_PER_STATEMENT: usize = 1_000;

/// The funnel's question: the process of one object, the cohort of its records, and the
/// ladder of stages a record climbs.
#[derive(Debug, Clone)]
pub struct FunnelQuery<'a> {
    /// An object with a process (whose table has the stage summary).
    pub object: &'a Object,
    /// The object's stage field.
    pub stage_field: &'a str,
    /// The stages without a `lost` outcome, in process order: a record's *reach* is the
    /// index of the furthest of them it ever entered (by its history or its current stage).
    pub ladder: &'a [String],
    /// Stages with a `won` outcome: a record in one of them reached the whole ladder.
    pub won: &'a [String],
    /// Every stage of the process, in order: the completed stays are counted per stage.
    pub stages: &'a [String],
    /// The amount field (integer or decimal), if the object has one.
    pub amount: Option<&'a str>,
    /// Which records make the cohort: scope, period, owner.
    pub cohort: Condition,
}

/// One group of the cohort: records with the same reach and current stage.
#[derive(Debug, Clone, PartialEq)]
pub struct FunnelGroup {
    /// The index in [`FunnelQuery::ladder`] of the furthest stage reached; `None` when the
    /// record never entered a ladder stage (e.g. created straight into a lost stage).
    pub reach: Option<usize>,
    /// The current stage (`None` when empty).
    pub stage: Option<String>,
    pub count: i64,
    /// Σ amount (zero when the object has no amount field or none is filled).
    pub amount: Value,
    /// Per stage of [`FunnelQuery::stages`]: the group's completed stays in it (history
    /// rows leaving it with a known duration).
    pub stays: Vec<Stays>,
}

/// Completed stays in one stage: how many, and their total seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stays {
    pub count: i64,
    pub seconds: i64,
}

/// One stage history row, as [`seed_stage_history`] writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageChange {
    /// A UUIDv7.
    pub id: String,
    pub object: String,
    pub record_id: String,
    pub process: String,
    pub from_stage: Option<String>,
    pub to_stage: String,
    pub at: DateTime<Utc>,
    pub by_user: Option<String>,
    pub comment: Option<String>,
    pub seconds_in_from: Option<i64>,
}

fn text(value: &str) -> Value {
    Value::Text(value.to_owned())
}

/// `SELECT <what> FROM <object> WHERE deleted_at IS NULL AND <cohort>`: the cohort
/// subquery, evaluated over the object's table alone.
fn push_cohort(
    statement: &mut Statement,
    columns: &ObjectColumns<'_>,
    what: &str,
    cohort: &Condition,
) -> Result<(), StoreError> {
    statement.push("SELECT ");
    // `what` is constant text and quoted identifiers of the caller's own making.
    statement.push(what);
    statement.push(" FROM ");
    statement.push_identifier(columns.table());
    statement.push(" WHERE ");
    push_deleted(statement, Deleted::Exclude);
    statement.push(" AND ");
    push_condition(statement, columns, cohort)
}

/// `CASE <expression> WHEN ? THEN 0 WHEN ? THEN 1 … END`: a stage key as its ladder index.
fn push_ladder_index(
    statement: &mut Statement,
    expression: &str,
    ladder: &[String],
) -> Result<(), StoreError> {
    if ladder.is_empty() {
        statement.push("NULL");
        return Ok(());
    }
    statement.push("CASE ");
    statement.push(expression);
    for (index, stage) in ladder.iter().enumerate() {
        statement.push(" WHEN ");
        statement.push_value(&text(stage), Storage::Text)?;
        statement.push(&format!(" THEN {index}"));
    }
    statement.push(" END");
    Ok(())
}

/// `(?, ?, …)` of stage keys; `(NULL)` for none, which matches nothing.
fn push_keys(statement: &mut Statement, keys: &[String]) -> Result<(), StoreError> {
    statement.push("(");
    if keys.is_empty() {
        statement.push("NULL");
    }
    for (index, key) in keys.iter().enumerate() {
        if index > 0 {
            statement.push(", ");
        }
        statement.push_value(&text(key), Storage::Text)?;
    }
    statement.push(")");
    Ok(())
}

fn amount_storage(
    statement: &Statement,
    columns: &ObjectColumns<'_>,
    amount: Option<&str>,
) -> Result<Option<Storage>, StoreError> {
    let Some(amount) = amount else {
        return Ok(None);
    };
    match columns.storage(amount)? {
        storage @ (Storage::Integer | Storage::Decimal { .. }) => Ok(Some(storage)),
        _ => Err(statement.invalid(format!("`{amount}` is not a number"))),
    }
}

/// The cohort grouped by reach and current stage, with each group's count, amount and
/// completed stays per stage.
///
/// One scan of the cohort's rows and nothing else: what the funnel needs of each record's
/// history is in its [`STAGE_SUMMARY`] (the stages it entered, its completed stays per
/// stage), which every move keeps. The furthest ladder stage entered is read from it
/// (furthest first), the stays of each stage of [`FunnelQuery::stages`] too, and the whole
/// grouped by reach and current stage.
pub async fn funnel_groups(
    db: &Db,
    query: &FunnelQuery<'_>,
) -> Result<Vec<FunnelGroup>, StoreError> {
    let columns = ObjectColumns::of(query.object);
    let dialect = db.dialect();
    let mut statement = Statement::new(dialect, columns.table());
    columns.storage(query.stage_field)?;
    let amount = amount_storage(&statement, &columns, query.amount)?;
    let stage = crate::naming::quote(query.stage_field);
    let amount_column = match query.amount {
        Some(name) => crate::naming::quote(name),
        None => "CAST(NULL AS BIGINT)".to_owned(),
    };
    let cohort_columns = format!(
        "{stage} AS keel_stage, {amount_column} AS keel_amount, {STAGE_SUMMARY} AS keel_summary"
    );
    let stays: String = (0..query.stages.len())
        .map(|index| format!(", sum(keel_x.keel_s{index}), sum(keel_x.keel_n{index})"))
        .collect();
    statement.push(&format!(
        "SELECT keel_x.keel_reach, keel_x.keel_stage, count(*), sum(keel_x.keel_amount){stays} \
         FROM (SELECT keel_r.*, CAST(CASE "
    ));
    if let Some(last) = query.ladder.len().checked_sub(1) {
        statement.push("WHEN keel_r.keel_stage IN ");
        push_keys(&mut statement, query.won)?;
        statement.push(&format!(" THEN {last} "));
    }
    statement.push(
        "WHEN keel_r.keel_history IS NULL THEN keel_r.keel_current \
         WHEN keel_r.keel_current IS NULL THEN keel_r.keel_history \
         WHEN keel_r.keel_history > keel_r.keel_current THEN keel_r.keel_history \
         ELSE keel_r.keel_current END AS BIGINT) AS keel_reach FROM (SELECT keel_c.keel_stage, \
         keel_c.keel_amount, ",
    );
    push_ladder_index(&mut statement, "keel_c.keel_stage", query.ladder)?;
    statement.push(" AS keel_current, ");
    // The furthest ladder stage the summary says was entered: the first, furthest first.
    if query.ladder.is_empty() {
        statement.push("NULL");
    } else {
        statement.push("CASE");
        for (index, key) in query.ladder.iter().enumerate().rev() {
            statement.push(" WHEN ");
            push_summary_number(
                &mut statement,
                "keel_c.keel_summary",
                key,
                SummaryPart::Entered,
            )?;
            statement.push(&format!(" > 0 THEN {index}"));
        }
        statement.push(" END");
    }
    statement.push(" AS keel_history");
    for (index, key) in query.stages.iter().enumerate() {
        statement.push(", ");
        push_summary_number(
            &mut statement,
            "keel_c.keel_summary",
            key,
            SummaryPart::Seconds,
        )?;
        statement.push(&format!(" AS keel_s{index}, "));
        push_summary_number(
            &mut statement,
            "keel_c.keel_summary",
            key,
            SummaryPart::Stays,
        )?;
        statement.push(&format!(" AS keel_n{index}"));
    }
    statement.push(" FROM (");
    push_cohort(&mut statement, &columns, &cohort_columns, &query.cohort)?;
    statement.push(
        ") keel_c) keel_r) keel_x GROUP BY keel_x.keel_reach, keel_x.keel_stage \
         ORDER BY keel_x.keel_reach, keel_x.keel_stage",
    );
    let mut shapes = vec![
        Shape::Stored(Storage::Integer),
        Shape::Stored(Storage::Text),
        Shape::Count,
        Shape::Sum(amount.unwrap_or(Storage::Integer)),
    ];
    for _ in query.stages {
        shapes.push(Shape::Sum(Storage::Integer));
        shapes.push(Shape::Sum(Storage::Integer));
    }
    let rows = fetch_report(db, &statement, &shapes).await?;
    rows.into_iter()
        .map(|row| {
            let unreadable = || StoreError::UnreadableValue {
                what: "a funnel group".to_owned(),
            };
            let mut values = row.into_iter();
            let (Some(reach), Some(stage), Some(Value::Integer(count)), Some(amount)) =
                (values.next(), values.next(), values.next(), values.next())
            else {
                return Err(unreadable());
            };
            let mut stays = Vec::with_capacity(query.stages.len());
            for _ in query.stages {
                match (values.next(), values.next()) {
                    (Some(Value::Integer(seconds)), Some(Value::Integer(count))) => {
                        stays.push(Stays { count, seconds });
                    }
                    _ => return Err(unreadable()),
                }
            }
            Ok(FunnelGroup {
                reach: match reach {
                    Value::Integer(reach) => usize::try_from(reach).ok(),
                    _ => None,
                },
                stage: match stage {
                    Value::Text(stage) => Some(stage),
                    _ => None,
                },
                count,
                amount,
                stays,
            })
        })
        .collect()
}

/// How many live records of `object` matching `condition` entered one of `stages` of
/// `process` in `[from, to)` (each record once), and their Σ `amount` (zero without one).
#[allow(clippy::too_many_arguments)]
pub async fn entered(
    db: &Db,
    object: &Object,
    condition: &Condition,
    process: &str,
    stages: &[String],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    amount: Option<&str>,
) -> Result<(i64, Value), StoreError> {
    let columns = ObjectColumns::of(object);
    let mut statement = Statement::new(db.dialect(), columns.table());
    let storage = amount_storage(&statement, &columns, amount)?;
    let measure = match amount {
        Some(name) => format!("count(*), sum({})", crate::naming::quote(name)),
        None => "count(*), sum(CAST(NULL AS BIGINT))".to_owned(),
    };
    push_cohort(&mut statement, &columns, &measure, condition)?;
    statement.push(
        " AND \"id\" IN (SELECT keel_h.record_id FROM keel_stage_history keel_h \
         WHERE keel_h.process = ",
    );
    statement.push_value(&text(process), Storage::Text)?;
    statement.push(" AND keel_h.to_stage IN ");
    push_keys(&mut statement, stages)?;
    statement.push(" AND keel_h.object = ");
    statement.push_value(&text(&object.name), Storage::Text)?;
    statement.push(" AND keel_h.at >= ");
    statement.push_value(&Value::Datetime(from), Storage::Datetime)?;
    statement.push(" AND keel_h.at < ");
    statement.push_value(&Value::Datetime(to), Storage::Datetime)?;
    statement.push(")");
    let shapes = [
        Shape::Count,
        Shape::Sum(storage.unwrap_or(Storage::Integer)),
    ];
    let rows = fetch_report(db, &statement, &shapes).await?;
    match rows.into_iter().next().map(<[Value; 2]>::try_from) {
        Some(Ok([Value::Integer(count), sum])) => Ok((count, sum)),
        _ => Err(StoreError::UnreadableValue {
            what: "the count of records that entered a stage".to_owned(),
        }),
    }
}

/// Runs a report's statement. On PostgreSQL without JIT compilation, in a read-only
/// transaction of its own: a report's cost estimate is high enough for PostgreSQL to compile
/// it, which took longer (half a second) than running the funnel of a month of a million
/// opportunities, and a report runs once, not often enough for that to pay.
async fn fetch_report(
    db: &Db,
    statement: &Statement,
    shapes: &[Shape],
) -> Result<Vec<Vec<Value>>, StoreError> {
    match db {
        Db::Postgres(pool) => {
            let mut transaction = pool
                .begin()
                .await
                .map_err(StoreError::query("starting a report's transaction"))?;
            let mut connection = Connection::Postgres(&mut transaction);
            connection
                .execute("SET TRANSACTION READ ONLY; SET LOCAL jit = off")
                .await?;
            let rows = fetch(&mut connection, statement, shapes).await?;
            transaction
                .commit()
                .await
                .map_err(StoreError::query("ending a report's transaction"))?;
            Ok(rows)
        }
        Db::Sqlite(..) => {
            let mut pooled = db.acquire().await?;
            fetch(&mut pooled.connection(), statement, shapes).await
        }
    }
}

/// Writes stage history rows directly, in multi-row INSERTs in one transaction, and then the
/// stage summaries of the records they belong to. For test fixtures only: in the product,
/// rows are written by the process transition in the record's own transaction.
pub async fn seed_stage_history(db: &Db, rows: &[StageChange]) -> Result<(), StoreError> {
    let mut write = db.begin_records_write().await?;
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut statement = Statement::new(write.dialect(), HISTORY);
        statement.push(
            "INSERT INTO keel_stage_history (id, object, record_id, process, from_stage, \
             to_stage, at, by_user, comment, seconds_in_from) VALUES ",
        );
        for (index, row) in chunk.iter().enumerate() {
            if index > 0 {
                statement.push(", ");
            }
            let optional = |value: &Option<String>| value.as_deref().map_or(Value::Null, text);
            statement.push("(");
            for value in [
                text(&row.id),
                text(&row.object),
                text(&row.record_id),
                text(&row.process),
                optional(&row.from_stage),
                text(&row.to_stage),
            ] {
                statement.push_value(&value, Storage::Text)?;
                statement.push(", ");
            }
            statement.push_value(&Value::Datetime(row.at), Storage::Datetime)?;
            for value in [optional(&row.by_user), optional(&row.comment)] {
                statement.push(", ");
                statement.push_value(&value, Storage::Text)?;
            }
            statement.push(", ");
            statement.push_value(
                &row.seconds_in_from.map_or(Value::Null, Value::Integer),
                Storage::Integer,
            )?;
            statement.push(")");
        }
        write.run(&statement).await?;
    }
    // The summaries the funnel reads, as the moves would have kept them.
    let mut objects: Vec<&str> = rows.iter().map(|row| row.object.as_str()).collect();
    objects.sort_unstable();
    objects.dedup();
    for object in objects {
        let mut statement = Statement::new(write.dialect(), object);
        statement.push(&crate::processes::stage_summary_backfill(
            write.dialect(),
            object,
        ));
        write.run(&statement).await?;
    }
    write.commit().await
}
