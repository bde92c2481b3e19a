//! `keel-bench-gen`: writes N deterministic leads (see `keel_bench::data`) straight into a
//! database that `keel migrate --apply --app bench/app` created, with batched multi-row
//! INSERTs in large transactions, then runs ANALYZE as one would after a bulk load. Prints
//! rows per second. It also writes a sample of the new ids for the load script to request.
//!
//! This is deliberately not `keel import`: importing validates and audits every row through
//! the write path, which is right for real data and far too slow for a million benchmark
//! rows. The rows it writes are the ones Keel would write (same columns, UUIDv7 ids, UTC
//! timestamps in Keel's SQLite text form, version 1), minus the audit trail of their
//! creation.
//!
//! With `--mobile-prefix P` it also fills a `mobile` column (the standard app's lead has
//! one) with `P` and the row number as 8 digits, unique per row. Either way it then marks
//! the table's duplicate keys stale (deletes its row of `keel_duplicate_definitions`), so the
//! next `keel migrate --apply` or `keel serve` fills them for the rows written here.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use keel_bench::args::Args;
use keel_bench::data::{Lead, LeadGenerator};
use keel_bench::database::Pool;
use keel_bench::sql::LEAD_COLUMNS;
use sqlx::AssertSqlSafe;

const USAGE: &str = "\
usage: keel-bench-gen --db URL [--rows 100000] [--seed 42] [--owner bench]
                      [--batch 500] [--commit-every 20000] [--ids-out FILE] [--ids 2000]
                      [--ids-owners N] [--mobile-prefix 139]

Writes --rows leads owned by the Keel user --owner into the `lead` table of a database that
`keel migrate --apply --app bench/app` created (the table must be empty). --owner may list
several users, comma-separated: lead i belongs to the (i mod n)-th. --ids-out writes --ids of
the new ids, spread evenly over the table, one per line; with --ids-owners N, only ids of
leads owned by the first N owners. --mobile-prefix also fills `mobile` (the standard app's
lead) with the prefix and the row number as 8 digits. The duplicate keys of `lead` are left
stale, for the next `keel migrate --apply` to fill.";

/// The SQLite text form of an instant (keel-store's `datetime::SQLITE_DATETIME_FORMAT`).
const SQLITE_DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(
        std::env::args().skip(1),
        &[
            "db",
            "rows",
            "seed",
            "owner",
            "batch",
            "commit-every",
            "ids-out",
            "ids",
            "ids-owners",
            "mobile-prefix",
        ],
        USAGE,
    )?;
    let url = args.required("db")?;
    let rows: u64 = args.number("rows", 100_000)?;
    let seed: u64 = args.number("seed", 42)?;
    let owner_names: Vec<&str> = args.text("owner").unwrap_or("bench").split(',').collect();
    // 500 rows × 16 columns = 8,000 parameters: under SQLite's 32,766 and PostgreSQL's 65,535.
    let batch: usize = args.number("batch", 500_usize)?.clamp(1, 2_000);
    let commit_every: usize = args.number("commit-every", 20_000_usize)?.max(batch);
    let sample_size: u64 = args.number("ids", 2_000)?;
    let sampled_owners: u64 = args
        .number("ids-owners", owner_names.len() as u64)?
        .clamp(1, owner_names.len() as u64);

    let mobile_prefix = args.text("mobile-prefix").map(str::to_owned);
    let pool = Pool::connect(url).await?;
    let mut owners = Vec::with_capacity(owner_names.len());
    for name in &owner_names {
        owners.push(pool.user_id(name).await?);
    }
    let existing = count_leads(&pool).await?;
    if existing > 0 {
        bail!("the lead table already holds {existing} rows; generate into a fresh database");
    }

    let started = Instant::now();
    let eligible = rows * sampled_owners / owners.len() as u64;
    let sample_every = (eligible / sample_size.max(1)).max(1);
    let mut eligible_seen: u64 = 0;
    let mut sample = Vec::new();
    let mut generator = LeadGenerator::new(seed, rows);
    let mut written: u64 = 0;
    let mut last_report = Instant::now();
    loop {
        let mut chunk: Vec<Lead> = Vec::with_capacity(commit_every);
        chunk.extend(generator.by_ref().take(commit_every));
        if chunk.is_empty() {
            break;
        }
        for (offset, lead) in chunk.iter().enumerate() {
            let index = written + offset as u64;
            if index % owners.len() as u64 >= sampled_owners {
                continue;
            }
            if eligible_seen.is_multiple_of(sample_every) && (sample.len() as u64) < sample_size {
                sample.push(lead.id.clone());
            }
            eligible_seen += 1;
        }
        insert_chunk(
            &pool,
            &chunk,
            batch,
            &owners,
            written,
            mobile_prefix.as_deref(),
        )
        .await?;
        written += chunk.len() as u64;
        if last_report.elapsed().as_secs() >= 2 {
            eprintln!("  {written} / {rows} leads");
            last_report = Instant::now();
        }
    }
    let insert_seconds = started.elapsed().as_secs_f64();
    mark_duplicate_keys_stale(&pool).await?;
    analyze(&pool).await?;
    let total_seconds = started.elapsed().as_secs_f64();
    println!(
        "generated {written} leads in {insert_seconds:.1} s ({:.0} rows/s); ANALYZE done at {total_seconds:.1} s",
        written as f64 / insert_seconds.max(f64::EPSILON)
    );

    if let Some(path) = args.text("ids-out") {
        let mut file = std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {path}"))?,
        );
        for id in &sample {
            writeln!(file, "{id}")?;
        }
        file.flush()?;
        println!("wrote {} ids to {path}", sample.len());
    }
    pool.close().await;
    Ok(())
}

async fn count_leads(pool: &Pool) -> anyhow::Result<i64> {
    match pool {
        Pool::Sqlite(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM lead")
                .fetch_one(pool)
                .await
        }
        Pool::Postgres(pool) => {
            sqlx::query_scalar("SELECT count(*) FROM lead")
                .fetch_one(pool)
                .await
        }
    }
    .context("counting leads: did `keel migrate --apply --app bench/app` run on this database?")
}

/// A multi-row INSERT of `rows` leads, every column bound.
/// The rows written here have no duplicate keys yet: deleting the lead's fingerprint makes
/// the next metadata apply fill them (a database from before duplicate keys has no table).
async fn mark_duplicate_keys_stale(pool: &Pool) -> anyhow::Result<()> {
    const SQL: &str = "DELETE FROM keel_duplicate_definitions WHERE id = 'lead'";
    match pool {
        Pool::Sqlite(pool) => sqlx::query(SQL).execute(pool).await.map(drop),
        Pool::Postgres(pool) => sqlx::query(SQL).execute(pool).await.map(drop),
    }
    .context("marking the duplicate keys of `lead` stale")
}

fn insert_sql(postgres: bool, rows: usize, mobile: bool) -> String {
    let mut quoted: Vec<String> = LEAD_COLUMNS.iter().map(|c| format!("\"{c}\"")).collect();
    if mobile {
        quoted.push("\"mobile\"".to_owned());
    }
    let mut sql = format!("INSERT INTO \"lead\" ({}) VALUES ", quoted.join(", "));
    let mut parameter = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..quoted.len() {
            if column > 0 {
                sql.push_str(", ");
            }
            parameter += 1;
            if postgres {
                sql.push_str(&format!("${parameter}"));
            } else {
                sql.push('?');
            }
        }
        sql.push(')');
    }
    sql
}

/// Writes `leads` in one transaction, `batch` rows per statement; lead number `first + i`
/// belongs to `owners[(first + i) mod n]`.
async fn insert_chunk(
    pool: &Pool,
    leads: &[Lead],
    batch: usize,
    owners: &[String],
    first: u64,
    mobile_prefix: Option<&str>,
) -> anyhow::Result<()> {
    let owner_of = |position: usize| owners[(first as usize + position) % owners.len()].clone();
    let mobile_of = |position: usize| {
        mobile_prefix.map(|prefix| format!("{prefix}{:08}", first as usize + position))
    };
    match pool {
        Pool::Sqlite(pool) => {
            let mut transaction = pool.begin().await?;
            for (number, rows) in leads.chunks(batch).enumerate() {
                let mut query = sqlx::query(AssertSqlSafe(insert_sql(
                    false,
                    rows.len(),
                    mobile_prefix.is_some(),
                )));
                for (offset, lead) in rows.iter().enumerate() {
                    let owner = owner_of(number * batch + offset);
                    let at = sqlite_text(lead.created_at);
                    query = query
                        .bind(lead.id.clone())
                        .bind(owner.clone())
                        .bind(at.clone())
                        .bind(owner.clone())
                        .bind(at)
                        .bind(owner.clone())
                        .bind(1_i64)
                        .bind(None::<String>)
                        .bind(None::<String>)
                        .bind(lead.name.clone())
                        .bind(lead.company.clone())
                        .bind(lead.phone.clone())
                        .bind(lead.email.clone())
                        .bind(lead.source.map(str::to_owned))
                        .bind(lead.status.to_owned())
                        .bind(lead.score);
                    if let Some(mobile) = mobile_of(number * batch + offset) {
                        query = query.bind(mobile);
                    }
                }
                query
                    .execute(&mut *transaction)
                    .await
                    .context("inserting leads")?;
            }
            transaction.commit().await?;
        }
        Pool::Postgres(pool) => {
            let mut transaction = pool.begin().await?;
            for (number, rows) in leads.chunks(batch).enumerate() {
                let mut query = sqlx::query(AssertSqlSafe(insert_sql(
                    true,
                    rows.len(),
                    mobile_prefix.is_some(),
                )));
                for (offset, lead) in rows.iter().enumerate() {
                    let owner = owner_of(number * batch + offset);
                    query = query
                        .bind(lead.id.clone())
                        .bind(owner.clone())
                        .bind(lead.created_at)
                        .bind(owner.clone())
                        .bind(lead.created_at)
                        .bind(owner.clone())
                        .bind(1_i64)
                        .bind(None::<DateTime<Utc>>)
                        .bind(None::<String>)
                        .bind(lead.name.clone())
                        .bind(lead.company.clone())
                        .bind(lead.phone.clone())
                        .bind(lead.email.clone())
                        .bind(lead.source.map(str::to_owned))
                        .bind(lead.status.to_owned())
                        .bind(lead.score);
                    if let Some(mobile) = mobile_of(number * batch + offset) {
                        query = query.bind(mobile);
                    }
                }
                query
                    .execute(&mut *transaction)
                    .await
                    .context("inserting leads")?;
            }
            transaction.commit().await?;
        }
    }
    Ok(())
}

/// Fresh planner statistics after the bulk load, for both servers alike.
async fn analyze(pool: &Pool) -> anyhow::Result<()> {
    match pool {
        Pool::Sqlite(pool) => {
            sqlx::query("ANALYZE").execute(pool).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await?;
        }
        Pool::Postgres(pool) => {
            sqlx::query("VACUUM ANALYZE lead").execute(pool).await?;
        }
    }
    Ok(())
}

fn sqlite_text(instant: DateTime<Utc>) -> String {
    instant.format(SQLITE_DATETIME_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserts_bind_every_column_of_every_row() {
        let sqlite = insert_sql(false, 3, false);
        assert_eq!(sqlite.matches('?').count(), 3 * LEAD_COLUMNS.len());
        let postgres = insert_sql(true, 2, false);
        assert!(postgres.ends_with("$32)"), "{postgres}");
        let with_mobile = insert_sql(true, 2, true);
        assert!(with_mobile.ends_with("$34)"), "{with_mobile}");
    }

    #[test]
    fn sqlite_instants_are_fixed_width_utc() {
        let instant = DateTime::<Utc>::from_timestamp(1_735_689_600, 5_000).unwrap();
        assert_eq!(sqlite_text(instant), "2025-01-01T00:00:00.000005Z");
    }
}
