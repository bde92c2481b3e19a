//! The reports (docs/reports.md): the sales funnel of a process, the briefing of the current
//! period against the previous one, and the calendar of the objects that declare one.
//!
//! `Reports` is a cheap clone over [`Records`]: every figure is computed in SQL by
//! `keel_store::reports` (or the records aggregate) under the caller's record scope — the
//! same [`access::read_condition`] every list carries — so a rep's funnel counts only the
//! records the rep may read. This module turns parameters into periods and conditions,
//! and grouped rows into the figures the API returns and the pages render. Dates are in the
//! app timezone; time comes from the records' `Clock`.

mod briefing;
mod calendar;
mod funnel;

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use chrono_tz::Tz;
use keel_meta::{FieldKind, Object, Storage, Value};
use keel_store::records::Condition;
use rust_decimal::Decimal;
use serde_json::Value as Json;

use crate::actor::Actor;
use keel_meta::FieldAccess;

use crate::records::access::{self, Action};
use crate::records::{RecordError, Records};

pub use briefing::{Briefing, Change, OpportunityFigures, Period, PeriodRange};
pub use calendar::{CALENDAR_ENTRY_LIMIT, Calendar, CalendarEntry, CalendarScope};
pub use funnel::{Funnel, FunnelParams, FunnelStage};

/// The longest calendar range one call may ask for.
pub const MAX_CALENDAR_DAYS: i64 = 366;

/// The reports of one app, over its records.
#[derive(Clone, Debug)]
pub struct Reports {
    records: Records,
}

/// Why a report was not computed.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A parameter that cannot be used (422, naming it).
    #[error("{message}")]
    BadParameter { parameter: String, message: String },
    #[error(transparent)]
    Record(#[from] RecordError),
}

impl From<keel_store::StoreError> for ReportError {
    fn from(error: keel_store::StoreError) -> ReportError {
        ReportError::Record(RecordError::Store(error))
    }
}

fn bad(parameter: &str, message: impl Into<String>) -> ReportError {
    ReportError::BadParameter {
        parameter: parameter.to_owned(),
        message: message.into(),
    }
}

impl Reports {
    pub fn new(records: Records) -> Reports {
        Reports { records }
    }

    fn timezone(&self) -> Tz {
        self.records
            .schema()
            .app
            .timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Today in the app timezone.
    fn today(&self) -> NaiveDate {
        self.records
            .clock()
            .now()
            .with_timezone(&self.timezone())
            .date_naive()
    }

    /// The instant a day starts in the app timezone.
    fn start_of(&self, day: NaiveDate) -> Result<DateTime<Utc>, ReportError> {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        self.timezone()
            .from_local_datetime(&midnight)
            .earliest()
            .map(|instant| instant.with_timezone(&Utc))
            .ok_or_else(|| bad("from", format!("{day} has no midnight in the app timezone")))
    }

    /// The records of `object` the actor may read, or `None` when they may read none.
    fn read_scope(&self, actor: &Actor, object: &Object) -> Option<Condition> {
        let schema = self.records.schema();
        if access::scopes(schema, actor, &object.name, Action::Read).is_none() {
            return None;
        }
        Some(access::read_condition(schema, actor, &object.name))
    }
}

/// `created_at` in `[from, to)`.
fn created_between(from: DateTime<Utc>, to: DateTime<Utc>) -> Condition {
    Condition::All(vec![
        Condition::Compare {
            column: "created_at".to_owned(),
            op: keel_store::records::CompareOp::Gte,
            value: Value::Datetime(from),
        },
        Condition::Compare {
            column: "created_at".to_owned(),
            op: keel_store::records::CompareOp::Lt,
            value: Value::Datetime(to),
        },
    ])
}

/// An object's amount: its field `amount` when that is a number, else its first money
/// field; `None` when it has neither, or when the actor may not see it in clear on every
/// record (a sum would reveal what is hidden or masked).
fn amount_field<'o>(records: &Records, actor: &Actor, object: &'o Object) -> Option<&'o str> {
    let named = object
        .fields
        .get("amount")
        .filter(|field| matches!(field.storage(), Storage::Integer | Storage::Decimal { .. }));
    let field = named.or_else(|| {
        object
            .fields
            .values()
            .find(|field| matches!(field.kind, FieldKind::Money { .. }))
    })?;
    let schema = records.schema();
    if access::field_access(schema, actor, object, &field.name) == FieldAccess::Hidden
        || access::Masking::new(schema, actor, object).hides_anywhere(&field.name)
    {
        return None;
    }
    Some(field.name.as_str())
}

/// A summed value as an exact decimal (integers and decimals; anything else is zero).
fn decimal(value: &Value) -> Decimal {
    match value {
        Value::Integer(number) => Decimal::from(*number),
        Value::Decimal(number) => *number,
        _ => Decimal::ZERO,
    }
}

/// A money figure in JSON: a decimal string at the amount field's scale, as the API sends
/// money.
fn money(amount: Decimal, scale: u32) -> Json {
    let mut amount =
        amount.round_dp_with_strategy(scale, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    amount.rescale(scale);
    Json::String(amount.to_string())
}

/// The scale of the amount field (0 for integers).
fn scale_of(object: &Object, amount: Option<&str>) -> u32 {
    match amount
        .and_then(|name| object.fields.get(name))
        .map(|field| field.storage())
    {
        Some(Storage::Decimal { scale }) => scale,
        _ => 0,
    }
}

/// `part / whole` rounded to 4 decimals; `None` when `whole` is zero.
fn ratio(part: Decimal, whole: Decimal) -> Option<f64> {
    use rust_decimal::prelude::ToPrimitive as _;
    if whole.is_zero() {
        return None;
    }
    let quotient = (part / whole)
        .round_dp_with_strategy(4, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    quotient.to_f64()
}

/// Parses a `YYYY-MM-DD` parameter.
fn parse_date(parameter: &str, text: &str) -> Result<NaiveDate, ReportError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        bad(
            parameter,
            format!("`{text}` is not a date of the form YYYY-MM-DD"),
        )
    })
}
