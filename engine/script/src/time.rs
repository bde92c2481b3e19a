//! Dates, datetimes and durations inside scripts.
//!
//! A `date` is a calendar day (`chrono::NaiveDate`), a `datetime` an instant
//! (`chrono::DateTime<Utc>`), a `duration` a span (`chrono::TimeDelta`, made by `days(n)` and
//! `hours(n)`). Dates and datetimes compare with each other: a date stands for its midnight in
//! the app timezone, the timezone of the run ([`crate::run`]). They move by `+`/`-` of a
//! duration, and subtracting two of them gives a duration. They print as RFC 3339 (`2026-12-06`,
//! `2026-12-06T01:30:00Z`). `now()` and `today()` are registered with the data API, since they
//! read the run's clock.
//!
//! Nothing here reads the system clock.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, TimeZone, Utc};
use rhai::{Engine, EvalAltResult, Position};

/// Registers `==`, `!=`, `<`, `<=`, `>`, `>=` between two types, given how they compare.
macro_rules! register_comparisons {
    ($engine:expr, $a:ty, $b:ty, $compare:expr) => {{
        let compare: fn(&$a, &$b) -> Ordering = $compare;
        $engine
            .register_fn("==", move |a: $a, b: $b| compare(&a, &b) == Ordering::Equal)
            .register_fn("!=", move |a: $a, b: $b| compare(&a, &b) != Ordering::Equal)
            .register_fn("<", move |a: $a, b: $b| compare(&a, &b) == Ordering::Less)
            .register_fn("<=", move |a: $a, b: $b| {
                compare(&a, &b) != Ordering::Greater
            })
            .register_fn(">", move |a: $a, b: $b| {
                compare(&a, &b) == Ordering::Greater
            })
            .register_fn(">=", move |a: $a, b: $b| compare(&a, &b) != Ordering::Less);
    }};
}

/// Registers the three types with their names, printing, arithmetic and comparisons.
pub(crate) fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<NaiveDate>("date")
        .register_type_with_name::<DateTime<Utc>>("datetime")
        .register_type_with_name::<TimeDelta>("duration");

    engine
        .register_fn("to_string", |date: &mut NaiveDate| print_date(*date))
        .register_fn("to_debug", |date: &mut NaiveDate| print_date(*date))
        .register_fn("to_string", |at: &mut DateTime<Utc>| print_datetime(*at))
        .register_fn("to_debug", |at: &mut DateTime<Utc>| print_datetime(*at))
        .register_fn("to_string", |span: &mut TimeDelta| print_duration(*span))
        .register_fn("to_debug", |span: &mut TimeDelta| print_duration(*span));

    engine
        .register_get("year", |date: &mut NaiveDate| {
            i64::from(chrono::Datelike::year(date))
        })
        .register_get("month", |date: &mut NaiveDate| {
            i64::from(chrono::Datelike::month(date))
        })
        .register_get("day", |date: &mut NaiveDate| {
            i64::from(chrono::Datelike::day(date))
        })
        .register_get("days", |span: &mut TimeDelta| span.num_days())
        .register_get("hours", |span: &mut TimeDelta| span.num_hours());

    engine
        .register_fn("+", |date: NaiveDate, span: TimeDelta| {
            shift_date(date, span)
        })
        .register_fn("-", |date: NaiveDate, span: TimeDelta| {
            shift_date(date, -span)
        })
        .register_fn("+", |at: DateTime<Utc>, span: TimeDelta| {
            shift_datetime(at, span)
        })
        .register_fn("-", |at: DateTime<Utc>, span: TimeDelta| {
            shift_datetime(at, -span)
        })
        .register_fn("-", |a: NaiveDate, b: NaiveDate| a.signed_duration_since(b))
        .register_fn("-", |a: DateTime<Utc>, b: DateTime<Utc>| {
            a.signed_duration_since(b)
        })
        .register_fn("+", |a: TimeDelta, b: TimeDelta| add_durations(a, b))
        .register_fn("-", |a: TimeDelta| -a);

    register_comparisons!(engine, NaiveDate, NaiveDate, |a, b| a.cmp(b));
    register_comparisons!(engine, DateTime<Utc>, DateTime<Utc>, |a, b| a.cmp(b));
    register_comparisons!(engine, TimeDelta, TimeDelta, |a, b| a.cmp(b));
    register_comparisons!(engine, NaiveDate, DateTime<Utc>, |date, at| {
        midnight(*date).cmp(at)
    });
    register_comparisons!(engine, DateTime<Utc>, NaiveDate, |at, date| {
        at.cmp(&midnight(*date))
    });
}

/// `YYYY-MM-DD`.
pub(crate) fn print_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// RFC 3339 in UTC, with fractional seconds only when there are some.
pub(crate) fn print_datetime(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// `3d`, `5h` or `90s`: the units of relative dates in filters (`@now-3d`).
fn print_duration(span: TimeDelta) -> String {
    if span.num_seconds() % 86_400 == 0 && span.subsec_nanos() == 0 {
        format!("{}d", span.num_days())
    } else if span.num_seconds() % 3_600 == 0 && span.subsec_nanos() == 0 {
        format!("{}h", span.num_hours())
    } else {
        format!("{}s", span.num_seconds())
    }
}

/// `days(n)`.
pub(crate) fn days(n: i64) -> Result<TimeDelta, Box<EvalAltResult>> {
    TimeDelta::try_days(n).ok_or_else(|| out_of_range(format!("days({n})")))
}

/// `hours(n)`.
pub(crate) fn hours(n: i64) -> Result<TimeDelta, Box<EvalAltResult>> {
    TimeDelta::try_hours(n).ok_or_else(|| out_of_range(format!("hours({n})")))
}

/// The instant a date stands for when compared with a datetime: its midnight in the run's
/// timezone (UTC outside a run, e.g. in a formula).
fn midnight(date: NaiveDate) -> DateTime<Utc> {
    let timezone = crate::run::current_timezone();
    let local = date.and_time(chrono::NaiveTime::MIN);
    match timezone.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) | chrono::LocalResult::Ambiguous(at, _) => {
            at.with_timezone(&Utc)
        }
        // A midnight skipped by a daylight-saving change: the day starts an hour later.
        chrono::LocalResult::None => timezone
            .from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest()
            .map_or_else(|| local.and_utc(), |at| at.with_timezone(&Utc)),
    }
}

fn shift_date(date: NaiveDate, span: TimeDelta) -> Result<NaiveDate, Box<EvalAltResult>> {
    if span.num_seconds() % 86_400 != 0 || span.subsec_nanos() != 0 {
        return Err(EvalAltResult::ErrorArithmetic(
            format!(
                "a date moves by whole days, not by {}: use a datetime",
                print_duration(span)
            ),
            Position::NONE,
        )
        .into());
    }
    date.checked_add_signed(span)
        .ok_or_else(|| out_of_range(format!("{} + {}", print_date(date), print_duration(span))))
}

fn shift_datetime(at: DateTime<Utc>, span: TimeDelta) -> Result<DateTime<Utc>, Box<EvalAltResult>> {
    at.checked_add_signed(span)
        .ok_or_else(|| out_of_range(format!("{} + {}", print_datetime(at), print_duration(span))))
}

fn add_durations(a: TimeDelta, b: TimeDelta) -> Result<TimeDelta, Box<EvalAltResult>> {
    a.checked_add(&b)
        .ok_or_else(|| out_of_range(format!("{} + {}", print_duration(a), print_duration(b))))
}

fn out_of_range(what: String) -> Box<EvalAltResult> {
    EvalAltResult::ErrorArithmetic(format!("{what} is out of range"), Position::NONE).into()
}
