//! `keel-bench-baseline`: the bare server Keel is measured against. Three axum handlers run
//! the statements Keel runs (`keel_bench::sql`) on the same database with the same pool
//! settings and answer the same JSON, and nothing else: no sessions, permissions, metadata,
//! scripts, problem+json or middleware.
//!
//! - `GET /lead/{id}` → one lead, 404 when there is none;
//! - `GET /lead?status=eq.<key>&order=-score&limit=<n>` → `{data, next}` (only this filter
//!   and order: it is the benchmarked list, not a query language);
//! - `POST /lead` → checks each field's type and options, then in one write transaction
//!   (`BEGIN IMMEDIATE` on SQLite) inserts the lead and one `keel_audit` row per filled field
//!   plus `owner`, as Keel does; 201 with the record;
//! - `POST /pools/{pool}/records/{id}/claim` (bench/pools.sh) → the user of the bearer
//!   token's session (looked up once per token) claims the lead: in one write transaction the
//!   conditional update, the pool history row and the audit rows of `owner` and
//!   `claimed_at`, as Keel does; 200 with the record, 409 when someone holds it.
//!
//! It stops on Ctrl-C or SIGTERM.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use keel_bench::args::Args;
use keel_bench::data::{SOURCES, STATUSES};
use keel_bench::database::Pool;
use keel_bench::sql::{
    LEAD_FIELDS, POSTGRES_CLAIM, POSTGRES_CLAIM_HISTORY, POSTGRES_GET, POSTGRES_INSERT_LEAD,
    POSTGRES_LIST_BY_STATUS, POSTGRES_SESSION_USER, SQLITE_CLAIM, SQLITE_CLAIM_HISTORY, SQLITE_GET,
    SQLITE_INSERT_LEAD, SQLITE_LIST_BY_STATUS, SQLITE_SESSION_USER, audit_insert,
};
use serde_json::{Map, Value as JsonValue};
use sha2::{Digest as _, Sha256};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row as _};

const USAGE: &str = "\
usage: keel-bench-baseline --db URL [--listen 127.0.0.1:8091] [--owner bench]

Serves GET /lead/{id}, GET /lead?status=eq.KEY&order=-score&limit=N, POST /lead and
POST /pools/POOL/records/ID/claim on the benchmark database; leads it creates belong to the
Keel user --owner.";

const SQLITE_DATETIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";
const MAX_PAGE_SIZE: i64 = 500;

struct AppState {
    pool: Pool,
    owner: String,
    /// Session token → user id, as read from `keel_sessions` the first time.
    sessions: Mutex<HashMap<String, String>>,
}

type Shared = Arc<AppState>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse(std::env::args().skip(1), &["db", "listen", "owner"], USAGE)?;
    let url = args.required("db")?;
    let listen = args.text("listen").unwrap_or("127.0.0.1:8091");
    let pool = Pool::connect(url).await?;
    let owner = pool.user_id(args.text("owner").unwrap_or("bench")).await?;
    let state = Arc::new(AppState {
        pool: pool.clone(),
        owner,
        sessions: Mutex::new(HashMap::new()),
    });
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/lead", get(list_leads).post(create_lead))
        .route("/lead/{id}", get(get_lead))
        .route("/pools/{pool}/records/{id}/claim", post(claim))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    println!(
        "keel-bench-baseline listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(keel_bench::shutdown_signal())
        .await?;
    pool.close().await;
    Ok(())
}

/// A failed call: a status and a JSON body. Database errors are logged and answer 500.
struct Failure(StatusCode, JsonValue);

impl Failure {
    fn invalid(errors: Vec<JsonValue>) -> Failure {
        Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            serde_json::json!({ "status": 422, "errors": errors }),
        )
    }

    fn bad_request(message: &str) -> Failure {
        Failure(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "status": 400, "detail": message }),
        )
    }
}

impl From<sqlx::Error> for Failure {
    fn from(error: sqlx::Error) -> Failure {
        eprintln!("database error: {error}");
        Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "status": 500 }),
        )
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

async fn get_lead(
    State(state): State<Shared>,
    Path(id): Path<String>,
) -> Result<Response, Failure> {
    let record = match &state.pool {
        Pool::Sqlite(pool) => sqlx::query(SQLITE_GET)
            .bind(&id)
            .bind(1_i64)
            .fetch_optional(pool)
            .await?
            .map(|row| sqlite_record(&row))
            .transpose()?,
        Pool::Postgres(pool) => sqlx::query(POSTGRES_GET)
            .bind(&id)
            .bind(1_i64)
            .fetch_optional(pool)
            .await?
            .map(|row| postgres_record(&row))
            .transpose()?,
    };
    Ok(match record {
        Some(record) => Json(JsonValue::Object(record)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({ "status": 404 })),
        )
            .into_response(),
    })
}

async fn list_leads(
    State(state): State<Shared>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Response, Failure> {
    let status = params
        .get("status")
        .and_then(|value| value.strip_prefix("eq."))
        .ok_or_else(|| Failure::bad_request("expected status=eq.KEY"))?;
    if params.get("order").is_some_and(|order| order != "-score") {
        return Err(Failure::bad_request("only order=-score is served"));
    }
    let limit: i64 = match params.get("limit") {
        None => 50,
        Some(text) => text
            .parse()
            .ok()
            .filter(|limit| (1..=MAX_PAGE_SIZE).contains(limit))
            .ok_or_else(|| Failure::bad_request("limit must be 1..=500"))?,
    };
    let mut records = match &state.pool {
        Pool::Sqlite(pool) => sqlx::query(SQLITE_LIST_BY_STATUS)
            .bind(status)
            .bind(limit + 1)
            .fetch_all(pool)
            .await?
            .iter()
            .map(sqlite_record)
            .collect::<Result<Vec<_>, _>>()?,
        Pool::Postgres(pool) => sqlx::query(POSTGRES_LIST_BY_STATUS)
            .bind(status)
            .bind(limit + 1)
            .fetch_all(pool)
            .await?
            .iter()
            .map(postgres_record)
            .collect::<Result<Vec<_>, _>>()?,
    };
    let limit = usize::try_from(limit).unwrap_or(50);
    let next = if records.len() > limit {
        records.truncate(limit);
        // A bare cursor: the last row's sort values.
        records.last().map(|last| {
            format!(
                "{}|{}",
                last.get("score").unwrap_or(&JsonValue::Null),
                last.get("id").unwrap_or(&JsonValue::Null)
            )
        })
    } else {
        None
    };
    let data: Vec<JsonValue> = records.into_iter().map(JsonValue::Object).collect();
    Ok(Json(serde_json::json!({ "data": data, "next": next })).into_response())
}

/// A validated create: each declared field's value, `None` when empty.
struct NewLead {
    name: String,
    company: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    source: Option<String>,
    status: String,
    score: i64,
}

impl NewLead {
    /// The declared fields in metadata order, as JSON (for the response and the audit).
    fn fields(&self) -> [(&'static str, JsonValue); 7] {
        let text =
            |value: &Option<String>| value.clone().map_or(JsonValue::Null, JsonValue::String);
        [
            ("name", JsonValue::String(self.name.clone())),
            ("company", text(&self.company)),
            ("phone", text(&self.phone)),
            ("email", text(&self.email)),
            ("source", text(&self.source)),
            ("status", JsonValue::String(self.status.clone())),
            ("score", JsonValue::from(self.score)),
        ]
    }
}

/// The minimal checks a hand-written handler would make: types, lengths, options, range.
fn validate(input: &Map<String, JsonValue>) -> Result<NewLead, Failure> {
    let mut errors = Vec::new();
    let mut problem = |field: &str, message: &str| {
        errors.push(serde_json::json!({ "field": field, "message": message }));
    };
    for key in input.keys() {
        if !LEAD_FIELDS.contains(&key.as_str()) {
            problem(key, "unknown field");
        }
    }
    let mut text = |field: &str, max: usize| -> Option<String> {
        match input.get(field) {
            None | Some(JsonValue::Null) => None,
            Some(JsonValue::String(value)) if value.is_empty() => None,
            Some(JsonValue::String(value)) if value.chars().count() <= max => {
                Some(value.trim().to_owned())
            }
            Some(_) => {
                problem(field, "expected text of at most the maximum length");
                None
            }
        }
    };
    let name = text("name", 100);
    let company = text("company", 200);
    let phone = text("phone", 40);
    let email = text("email", 200);
    let source = text("source", 40);
    let status = text("status", 40);
    if name.is_none() {
        problem("name", "required");
    }
    if phone.as_deref().is_some_and(|phone| {
        !phone
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
            || !(3..=20).contains(&phone.chars().filter(char::is_ascii_digit).count())
    }) {
        problem("phone", "not a phone number");
    }
    if email.as_deref().is_some_and(|email| {
        email
            .split_once('@')
            .is_none_or(|(user, host)| user.is_empty() || !host.contains('.'))
    }) {
        problem("email", "not an email address");
    }
    if source
        .as_deref()
        .is_some_and(|source| !SOURCES.contains(&source))
    {
        problem("source", "not an option");
    }
    if status
        .as_deref()
        .is_some_and(|status| !STATUSES.contains(&status))
    {
        problem("status", "not an option");
    }
    let score = match input.get("score") {
        None | Some(JsonValue::Null) => 0,
        Some(value) => match value.as_i64() {
            Some(score) if (0..=100).contains(&score) => score,
            _ => {
                problem("score", "expected an integer from 0 to 100");
                0
            }
        },
    };
    match name {
        Some(name) if errors.is_empty() => Ok(NewLead {
            name,
            company,
            phone,
            email,
            source,
            status: status.unwrap_or_else(|| "new".to_owned()),
            score,
        }),
        _ => Err(Failure::invalid(errors)),
    }
}

async fn create_lead(
    State(state): State<Shared>,
    Json(input): Json<Map<String, JsonValue>>,
) -> Result<Response, Failure> {
    let lead = validate(&input)?;
    let id = uuid::Uuid::now_v7().to_string();
    #[expect(
        clippy::disallowed_methods,
        reason = "the baseline deliberately bypasses Keel, its Clock included"
    )]
    let now = Utc::now();
    let owner = state.owner.as_str();
    // One audit row per filled field, then `owner` (Keel's order).
    let mut audit: Vec<(&'static str, JsonValue)> = lead
        .fields()
        .into_iter()
        .filter(|(_, value)| !value.is_null())
        .collect();
    audit.push(("owner", JsonValue::String(owner.to_owned())));
    match &state.pool {
        Pool::Sqlite(pool) => {
            let at = now.format(SQLITE_DATETIME_FORMAT).to_string();
            let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(SQLITE_INSERT_LEAD)
                .bind(&id)
                .bind(owner)
                .bind(&at)
                .bind(owner)
                .bind(&at)
                .bind(owner)
                .bind(1_i64)
                .bind(None::<String>)
                .bind(None::<String>)
                .bind(&lead.name)
                .bind(&lead.company)
                .bind(&lead.phone)
                .bind(&lead.email)
                .bind(&lead.source)
                .bind(&lead.status)
                .bind(lead.score)
                .execute(&mut *transaction)
                .await?;
            let mut query = sqlx::query(AssertSqlSafe(audit_insert(false, audit.len())));
            for (field, value) in &audit {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind("lead")
                    .bind(&id)
                    .bind(&at)
                    .bind(owner)
                    .bind("create")
                    .bind(*field)
                    .bind(None::<String>)
                    .bind(value.to_string());
            }
            query.execute(&mut *transaction).await?;
            transaction.commit().await?;
        }
        Pool::Postgres(pool) => {
            let mut transaction = pool.begin().await?;
            sqlx::query(POSTGRES_INSERT_LEAD)
                .bind(&id)
                .bind(owner)
                .bind(now)
                .bind(owner)
                .bind(now)
                .bind(owner)
                .bind(1_i64)
                .bind(None::<DateTime<Utc>>)
                .bind(None::<String>)
                .bind(&lead.name)
                .bind(&lead.company)
                .bind(&lead.phone)
                .bind(&lead.email)
                .bind(&lead.source)
                .bind(&lead.status)
                .bind(lead.score)
                .execute(&mut *transaction)
                .await?;
            let mut query = sqlx::query(AssertSqlSafe(audit_insert(true, audit.len())));
            for (field, value) in &audit {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind("lead")
                    .bind(&id)
                    .bind(now)
                    .bind(owner)
                    .bind("create")
                    .bind(*field)
                    .bind(None::<JsonValue>)
                    .bind(value.clone());
            }
            query.execute(&mut *transaction).await?;
            transaction.commit().await?;
        }
    }
    let at = JsonValue::String(now.to_rfc3339_opts(SecondsFormat::Micros, true));
    let mut record = Map::new();
    record.insert("id".to_owned(), JsonValue::String(id));
    record.insert("owner".to_owned(), JsonValue::String(owner.to_owned()));
    record.insert("created_at".to_owned(), at.clone());
    record.insert("created_by".to_owned(), JsonValue::String(owner.to_owned()));
    record.insert("updated_at".to_owned(), at);
    record.insert("updated_by".to_owned(), JsonValue::String(owner.to_owned()));
    record.insert("version".to_owned(), JsonValue::from(1));
    for (field, value) in lead.fields() {
        record.insert(field.to_owned(), value);
    }
    Ok((StatusCode::CREATED, Json(JsonValue::Object(record))).into_response())
}

/// The user of the request's bearer token, or 401.
async fn session_user(state: &AppState, headers: &HeaderMap) -> Result<String, Failure> {
    let unauthorized = || {
        Failure(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "status": 401 }),
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(unauthorized)?;
    let cached = state
        .sessions
        .lock()
        .ok()
        .and_then(|sessions| sessions.get(token).cloned());
    if let Some(user) = cached {
        return Ok(user);
    }
    let id = hex::encode(Sha256::digest(token.as_bytes()));
    let user: Option<String> = match &state.pool {
        Pool::Sqlite(pool) => {
            sqlx::query_scalar(SQLITE_SESSION_USER)
                .bind(&id)
                .fetch_optional(pool)
                .await?
        }
        Pool::Postgres(pool) => {
            sqlx::query_scalar(POSTGRES_SESSION_USER)
                .bind(&id)
                .fetch_optional(pool)
                .await?
        }
    };
    let user = user.ok_or_else(unauthorized)?;
    if let Ok(mut sessions) = state.sessions.lock() {
        sessions.insert(token.to_owned(), user.clone());
    }
    Ok(user)
}

async fn claim(
    State(state): State<Shared>,
    Path((pool_name, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let user = session_user(&state, &headers).await?;
    #[expect(
        clippy::disallowed_methods,
        reason = "the baseline deliberately bypasses Keel, its Clock included"
    )]
    let now = Utc::now();
    let history_id = uuid::Uuid::now_v7().to_string();
    let owner_json = JsonValue::String(user.clone());
    let claimed_json = JsonValue::String(rfc3339(now));
    let audit = [("owner", owner_json), ("claimed_at", claimed_json)];
    let record = match &state.pool {
        Pool::Sqlite(pool) => {
            let at = now.format(SQLITE_DATETIME_FORMAT).to_string();
            let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
            let Some(row) = sqlx::query(SQLITE_CLAIM)
                .bind(&user)
                .bind(&at)
                .bind(&id)
                .bind(&pool_name)
                .fetch_optional(&mut *transaction)
                .await?
            else {
                return Ok(taken());
            };
            let record = sqlite_record(&row)?;
            sqlx::query(SQLITE_CLAIM_HISTORY)
                .bind(&history_id)
                .bind(&id)
                .bind(&pool_name)
                .bind(&user)
                .bind(&at)
                .execute(&mut *transaction)
                .await?;
            let mut query = sqlx::query(AssertSqlSafe(audit_insert(false, audit.len())));
            for (field, value) in &audit {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind("lead")
                    .bind(&id)
                    .bind(&at)
                    .bind(&user)
                    .bind("update")
                    .bind(*field)
                    .bind(None::<String>)
                    .bind(value.to_string());
            }
            query.execute(&mut *transaction).await?;
            transaction.commit().await?;
            record
        }
        Pool::Postgres(pool) => {
            let mut transaction = pool.begin().await?;
            let Some(row) = sqlx::query(POSTGRES_CLAIM)
                .bind(&user)
                .bind(now)
                .bind(&id)
                .bind(&pool_name)
                .fetch_optional(&mut *transaction)
                .await?
            else {
                return Ok(taken());
            };
            let record = postgres_record(&row)?;
            sqlx::query(POSTGRES_CLAIM_HISTORY)
                .bind(&history_id)
                .bind(&id)
                .bind(&pool_name)
                .bind(&user)
                .bind(now)
                .execute(&mut *transaction)
                .await?;
            let mut query = sqlx::query(AssertSqlSafe(audit_insert(true, audit.len())));
            for (field, value) in &audit {
                query = query
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind("lead")
                    .bind(&id)
                    .bind(now)
                    .bind(&user)
                    .bind("update")
                    .bind(*field)
                    .bind(None::<JsonValue>)
                    .bind(value.clone());
            }
            query.execute(&mut *transaction).await?;
            transaction.commit().await?;
            record
        }
    };
    Ok(Json(JsonValue::Object(record)).into_response())
}

/// The 409 of a claim of a record someone holds (the transaction is rolled back on drop).
fn taken() -> Response {
    (
        StatusCode::CONFLICT,
        Json(serde_json::json!({ "status": 409, "code": "taken" })),
    )
        .into_response()
}

/// A selected lead as Keel answers it: the system fields a record carries (not the recycle
/// bin's `deleted_at` and `deleted_by`), then fields.
fn sqlite_record(row: &SqliteRow) -> Result<Map<String, JsonValue>, sqlx::Error> {
    let text = |index: usize| -> Result<JsonValue, sqlx::Error> {
        Ok(row
            .try_get_unchecked::<Option<String>, _>(index)?
            .map_or(JsonValue::Null, JsonValue::String))
    };
    let instant = |index: usize| -> Result<JsonValue, sqlx::Error> {
        let stored: Option<String> = row.try_get_unchecked(index)?;
        stored
            .map(|stored| {
                NaiveDateTime::parse_from_str(&stored, SQLITE_DATETIME_FORMAT)
                    .map(|naive| JsonValue::String(rfc3339(naive.and_utc())))
                    .map_err(|error| sqlx::Error::Decode(Box::new(error)))
            })
            .unwrap_or(Ok(JsonValue::Null))
    };
    let integer = |index: usize| -> Result<JsonValue, sqlx::Error> {
        Ok(row
            .try_get_unchecked::<Option<i64>, _>(index)?
            .map_or(JsonValue::Null, JsonValue::from))
    };
    Ok(record([
        ("id", text(0)?),
        ("owner", text(1)?),
        ("created_at", instant(2)?),
        ("created_by", text(3)?),
        ("updated_at", instant(4)?),
        ("updated_by", text(5)?),
        ("version", integer(6)?),
        ("name", text(9)?),
        ("company", text(10)?),
        ("phone", text(11)?),
        ("email", text(12)?),
        ("source", text(13)?),
        ("status", text(14)?),
        ("score", integer(15)?),
    ]))
}

fn postgres_record(row: &PgRow) -> Result<Map<String, JsonValue>, sqlx::Error> {
    let text = |index: usize| -> Result<JsonValue, sqlx::Error> {
        Ok(row
            .try_get::<Option<String>, _>(index)?
            .map_or(JsonValue::Null, JsonValue::String))
    };
    let instant = |index: usize| -> Result<JsonValue, sqlx::Error> {
        Ok(row
            .try_get::<Option<DateTime<Utc>>, _>(index)?
            .map_or(JsonValue::Null, |at| JsonValue::String(rfc3339(at))))
    };
    let integer = |index: usize| -> Result<JsonValue, sqlx::Error> {
        Ok(row
            .try_get::<Option<i64>, _>(index)?
            .map_or(JsonValue::Null, JsonValue::from))
    };
    Ok(record([
        ("id", text(0)?),
        ("owner", text(1)?),
        ("created_at", instant(2)?),
        ("created_by", text(3)?),
        ("updated_at", instant(4)?),
        ("updated_by", text(5)?),
        ("version", integer(6)?),
        ("name", text(9)?),
        ("company", text(10)?),
        ("phone", text(11)?),
        ("email", text(12)?),
        ("source", text(13)?),
        ("status", text(14)?),
        ("score", integer(15)?),
    ]))
}

fn record(fields: [(&str, JsonValue); 14]) -> Map<String, JsonValue> {
    fields
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

/// RFC 3339 with microseconds and `Z`, as Keel writes instants in JSON.
fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
