//! Converting a column's values from one storage type to another, as SQL per dialect: the
//! expression that computes a new value from an old one, and the predicate that finds the
//! values that would not survive the change.
//!
//! The planner uses the predicate to count the rows a type change would hurt (and so to
//! classify it), and the expression to fill the new column. A value that cannot be read as
//! the new type becomes NULL (the old column is archived, so nothing is lost); numbers with
//! too many decimals are rounded and datetimes cut to their UTC date, and those rows are
//! counted too. On PostgreSQL, text is parsed by small `pg_temp` functions that return NULL
//! instead of failing the whole statement. This module does not run SQL.

use keel_meta::Storage;

use crate::db::Dialect;

/// How to turn values of one type into another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// Lossless for every value in range: integer → decimal, a larger decimal scale,
    /// anything → text, boolean → number, date → datetime.
    pub widening: bool,
    /// SQL computing the new value from the old column.
    pub value: String,
    /// SQL predicate, over a non-NULL old value, that holds when the value does not convert
    /// exactly (or is out of range). `None` when every value converts.
    pub lossy: Option<String>,
    /// What happens to a value the predicate matches, for plan descriptions.
    pub lossy_effect: &'static str,
}

/// PostgreSQL helper functions for parsing text without aborting the transaction. Created
/// in `pg_temp`, so they live only as long as the session and need no privileges.
pub const POSTGRES_TRY_FUNCTIONS: &[&str] = &[
    "CREATE OR REPLACE FUNCTION pg_temp.keel_try_bigint(value text) RETURNS bigint \
     LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN trim(value)::bigint; \
     EXCEPTION WHEN others THEN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION pg_temp.keel_try_decimal(value text, scale int) RETURNS numeric \
     LANGUAGE plpgsql IMMUTABLE AS $$ DECLARE parsed numeric; BEGIN parsed := trim(value)::numeric; \
     IF parsed <> round(parsed, scale) OR abs(parsed) >= 10::numeric ^ (18 - scale) THEN RETURN NULL; END IF; \
     RETURN parsed; EXCEPTION WHEN others THEN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION pg_temp.keel_try_date(value text) RETURNS date \
     LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN trim(value)::date; \
     EXCEPTION WHEN others THEN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION pg_temp.keel_try_timestamptz(value text) RETURNS timestamptz \
     LANGUAGE plpgsql STABLE SET timezone = 'UTC' AS $$ BEGIN RETURN trim(value)::timestamptz; \
     EXCEPTION WHEN others THEN RETURN NULL; END $$",
    "CREATE OR REPLACE FUNCTION pg_temp.keel_try_jsonb(value text) RETURNS jsonb \
     LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN value::jsonb; \
     EXCEPTION WHEN others THEN RETURN NULL; END $$",
];

/// Whether converting `from` to `to` on `dialect` uses [`POSTGRES_TRY_FUNCTIONS`].
pub fn needs_postgres_try_functions(dialect: Dialect, from: Option<Storage>, to: Storage) -> bool {
    dialect == Dialect::Postgres
        && matches!(from, None | Some(Storage::Text))
        && !matches!(to, Storage::Text | Storage::Boolean)
}

const LEFT_EMPTY: &str = "left empty";
const ROUNDED: &str = "rounded";
const CUT_TO_DATE: &str = "cut to their UTC date";
const TRUE_WORDS: &str = "('true', 't', 'yes', 'y', '1')";
const FALSE_WORDS: &str = "('false', 'f', 'no', 'n', '0')";
/// SQLite and PostgreSQL keep decimals to 18 significant digits.
const DECIMAL_PRECISION: u32 = 18;

/// The conversion of `column` (a quoted identifier) from `from` (`None`: a type Keel does not
/// know, read as text) to `to`.
pub fn conversion(
    dialect: Dialect,
    from: Option<Storage>,
    to: Storage,
    column: &str,
) -> Conversion {
    let c = column;
    let text_source = match (dialect, from) {
        (
            Dialect::Sqlite,
            Some(Storage::Text | Storage::Json | Storage::Date | Storage::Datetime),
        ) => c.to_owned(),
        (Dialect::Sqlite, _) => format!("CAST({c} AS TEXT)"),
        (Dialect::Postgres, _) => format!("{c}::text"),
    };
    let widening = |value: String| Conversion {
        widening: true,
        value,
        lossy: None,
        lossy_effect: LEFT_EMPTY,
    };
    // Widening that can still overflow the 18 significant digits.
    let widening_in_range = |value: String, out_of_range: String| Conversion {
        widening: true,
        value: format!("CASE WHEN NOT ({out_of_range}) THEN {value} END"),
        lossy: Some(out_of_range),
        lossy_effect: LEFT_EMPTY,
    };
    let narrowing = |value: String, lossy: String, lossy_effect: &'static str| Conversion {
        widening: false,
        value,
        lossy: Some(lossy),
        lossy_effect,
    };
    // A value that does not parse becomes NULL.
    let parsed = |value: String, lossy: String| Conversion {
        widening: false,
        value: format!("CASE WHEN NOT ({lossy}) THEN {value} END"),
        lossy: Some(lossy),
        lossy_effect: LEFT_EMPTY,
    };
    let nothing_converts = || Conversion {
        widening: false,
        value: "NULL".to_owned(),
        lossy: Some("TRUE".to_owned()),
        lossy_effect: LEFT_EMPTY,
    };

    let mut converted = match (dialect, from, to) {
        // Anything becomes text.
        (Dialect::Sqlite, Some(Storage::Decimal { scale }), Storage::Text) => {
            widening(sqlite_decimal_as_text(c, scale))
        }
        (Dialect::Sqlite, Some(Storage::Boolean), Storage::Text) => {
            widening(format!("CASE WHEN {c} THEN 'true' ELSE 'false' END"))
        }
        (Dialect::Postgres, Some(Storage::Date), Storage::Text) => {
            widening(format!("to_char({c}, 'YYYY-MM-DD')"))
        }
        (Dialect::Postgres, Some(Storage::Datetime), Storage::Text) => widening(format!(
            "to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )),
        (_, _, Storage::Text) => widening(text_source),

        // Integers.
        (Dialect::Sqlite, Some(Storage::Boolean), Storage::Integer) => {
            widening(format!("CASE WHEN {c} THEN 1 ELSE 0 END"))
        }
        (Dialect::Postgres, Some(Storage::Boolean), Storage::Integer) => {
            widening(format!("CASE WHEN {c} THEN 1 ELSE 0 END::bigint"))
        }
        (Dialect::Sqlite, Some(Storage::Decimal { scale }), Storage::Integer) => narrowing(
            sqlite_round_scaled(c, scale),
            format!("{c} % {} <> 0", power_of_ten(scale)),
            ROUNDED,
        ),
        (Dialect::Postgres, Some(Storage::Decimal { .. }), Storage::Integer) => narrowing(
            format!("round({c})::bigint"),
            format!("{c} <> trunc({c})"),
            ROUNDED,
        ),
        (Dialect::Sqlite, None | Some(Storage::Text), Storage::Integer) => {
            let t = text_source;
            parsed(
                format!("CAST(trim({t}) AS INTEGER)"),
                format!("NOT ({})", sqlite_is_integer_text(&t)),
            )
        }
        (Dialect::Postgres, None | Some(Storage::Text), Storage::Integer) => parsed(
            format!("pg_temp.keel_try_bigint({text_source})"),
            format!("pg_temp.keel_try_bigint({text_source}) IS NULL"),
        ),

        // Decimals.
        (_, Some(Storage::Integer), Storage::Decimal { scale }) => {
            let out_of_range = format!(
                "abs({c}) >= {}",
                power_of_ten(DECIMAL_PRECISION.saturating_sub(scale))
            );
            let value = match dialect {
                Dialect::Sqlite => format!("{c} * {}", power_of_ten(scale)),
                Dialect::Postgres => format!("{c}::numeric(18,{scale})"),
            };
            widening_in_range(value, out_of_range)
        }
        (Dialect::Sqlite, Some(Storage::Decimal { scale: old }), Storage::Decimal { scale })
            if scale > old =>
        {
            let factor = scale - old;
            widening_in_range(
                format!("{c} * {}", power_of_ten(factor)),
                format!("abs({c}) >= {}", power_of_ten(DECIMAL_PRECISION - factor)),
            )
        }
        (Dialect::Postgres, Some(Storage::Decimal { scale: old }), Storage::Decimal { scale })
            if scale > old =>
        {
            widening_in_range(
                format!("{c}::numeric(18,{scale})"),
                format!("abs({c}) >= {}", power_of_ten(DECIMAL_PRECISION - scale)),
            )
        }
        (Dialect::Sqlite, Some(Storage::Decimal { scale: old }), Storage::Decimal { scale }) => {
            let factor = old - scale;
            narrowing(
                sqlite_round_scaled(c, factor),
                format!("{c} % {} <> 0", power_of_ten(factor)),
                ROUNDED,
            )
        }
        (Dialect::Postgres, Some(Storage::Decimal { .. }), Storage::Decimal { scale }) => {
            narrowing(
                format!("round({c}, {scale})::numeric(18,{scale})"),
                format!("{c} <> round({c}, {scale})"),
                ROUNDED,
            )
        }
        (Dialect::Sqlite, Some(Storage::Boolean), Storage::Decimal { scale }) => widening(format!(
            "CASE WHEN {c} THEN {} ELSE 0 END",
            power_of_ten(scale)
        )),
        (Dialect::Postgres, Some(Storage::Boolean), Storage::Decimal { scale }) => widening(
            format!("CASE WHEN {c} THEN 1 ELSE 0 END::numeric(18,{scale})"),
        ),
        (Dialect::Sqlite, None | Some(Storage::Text), Storage::Decimal { scale }) => {
            let (valid, value) = sqlite_decimal_text(&text_source, scale);
            parsed(value, format!("NOT ({valid})"))
        }
        (Dialect::Postgres, None | Some(Storage::Text), Storage::Decimal { scale }) => parsed(
            format!("pg_temp.keel_try_decimal({text_source}, {scale})::numeric(18,{scale})"),
            format!("pg_temp.keel_try_decimal({text_source}, {scale}) IS NULL"),
        ),

        // Booleans.
        (Dialect::Sqlite, Some(Storage::Integer), Storage::Boolean) => {
            parsed(c.to_owned(), format!("{c} NOT IN (0, 1)"))
        }
        (Dialect::Postgres, Some(Storage::Integer), Storage::Boolean) => {
            parsed(format!("{c} = 1"), format!("{c} NOT IN (0, 1)"))
        }
        (Dialect::Sqlite, Some(Storage::Decimal { scale }), Storage::Boolean) => {
            let one = power_of_ten(scale);
            parsed(format!("{c} = {one}"), format!("{c} NOT IN (0, {one})"))
        }
        (Dialect::Postgres, Some(Storage::Decimal { .. }), Storage::Boolean) => {
            parsed(format!("{c} = 1"), format!("{c} NOT IN (0, 1)"))
        }
        (_, None | Some(Storage::Text), Storage::Boolean) => {
            let word = format!("lower(trim({text_source}))");
            let truth = match dialect {
                Dialect::Sqlite => format!("CASE WHEN {word} IN {TRUE_WORDS} THEN 1 ELSE 0 END"),
                Dialect::Postgres => format!("{word} IN {TRUE_WORDS}"),
            };
            parsed(
                truth,
                format!("{word} NOT IN {TRUE_WORDS} AND {word} NOT IN {FALSE_WORDS}"),
            )
        }

        // Dates and datetimes.
        (Dialect::Sqlite, Some(Storage::Datetime), Storage::Date) => narrowing(
            format!("date({c})"),
            format!("date({c}) IS NULL OR julianday({c}) <> julianday(date({c}))"),
            CUT_TO_DATE,
        ),
        (Dialect::Postgres, Some(Storage::Datetime), Storage::Date) => narrowing(
            format!("({c} AT TIME ZONE 'UTC')::date"),
            format!("({c} AT TIME ZONE 'UTC')::time <> '00:00:00'"),
            CUT_TO_DATE,
        ),
        (Dialect::Sqlite, None | Some(Storage::Text), Storage::Date) => {
            let t = format!("trim({text_source})");
            parsed(t.clone(), format!("date({t}) IS NULL OR date({t}) <> {t}"))
        }
        (Dialect::Postgres, None | Some(Storage::Text), Storage::Date) => parsed(
            format!("pg_temp.keel_try_date({text_source})"),
            format!("pg_temp.keel_try_date({text_source}) IS NULL"),
        ),
        (Dialect::Sqlite, Some(Storage::Date), Storage::Datetime) => {
            widening(format!("{c} || 'T00:00:00.000000Z'"))
        }
        (Dialect::Postgres, Some(Storage::Date), Storage::Datetime) => {
            widening(format!("{c}::timestamp AT TIME ZONE 'UTC'"))
        }
        (Dialect::Sqlite, None | Some(Storage::Text), Storage::Datetime) => {
            let t = format!("trim({text_source})");
            // julianday() also reads bare numbers as Julian days: insist on a date first.
            parsed(
                format!("strftime('%Y-%m-%dT%H:%M:%f', {t}) || '000Z'"),
                format!(
                    "{t} NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*' \
                     OR julianday({t}) IS NULL"
                ),
            )
        }
        (Dialect::Postgres, None | Some(Storage::Text), Storage::Datetime) => parsed(
            format!("pg_temp.keel_try_timestamptz({text_source})"),
            format!("pg_temp.keel_try_timestamptz({text_source}) IS NULL"),
        ),

        // JSON (multi_choice): a text value becomes a one-element array, unless it already
        // is an array.
        (Dialect::Sqlite, None | Some(Storage::Text), Storage::Json) => Conversion {
            widening: false,
            value: format!(
                "CASE WHEN json_valid({text_source}) AND json_type({text_source}) = 'array' \
                 THEN {text_source} ELSE json_array({text_source}) END"
            ),
            lossy: None,
            lossy_effect: LEFT_EMPTY,
        },
        (Dialect::Postgres, None | Some(Storage::Text), Storage::Json) => Conversion {
            widening: false,
            value: format!(
                "CASE WHEN jsonb_typeof(pg_temp.keel_try_jsonb({text_source})) = 'array' \
                 THEN pg_temp.keel_try_jsonb({text_source}) ELSE jsonb_build_array({text_source}) END"
            ),
            lossy: None,
            lossy_effect: LEFT_EMPTY,
        },

        _ => nothing_converts(),
    };
    // Several expressions above map NULL to a value (`CASE WHEN c THEN … ELSE …`,
    // `json_array(c)`): empty stays empty.
    converted.value = format!("CASE WHEN {c} IS NOT NULL THEN {} END", converted.value);
    converted
}

fn power_of_ten(exponent: u32) -> i64 {
    10_i64.saturating_pow(exponent)
}

/// A scaled SQLite integer divided by 10^`digits`, rounded half away from zero.
fn sqlite_round_scaled(c: &str, digits: u32) -> String {
    let divisor = power_of_ten(digits);
    if divisor == 1 {
        return c.to_owned();
    }
    let half = divisor / 2;
    format!(
        "CASE WHEN {c} >= 0 THEN ({c} + {half}) / {divisor} ELSE -((-{c} + {half}) / {divisor}) END"
    )
}

/// A scaled SQLite integer as decimal text: `1234` at scale 2 is `'12.34'`.
fn sqlite_decimal_as_text(c: &str, scale: u32) -> String {
    if scale == 0 {
        return format!("CAST({c} AS TEXT)");
    }
    let divisor = power_of_ten(scale);
    let zeros = "0".repeat(scale as usize);
    format!(
        "(CASE WHEN {c} < 0 THEN '-' ELSE '' END || (abs({c}) / {divisor}) || '.' || \
         substr('{zeros}' || (abs({c}) % {divisor}), -{scale}))"
    )
}

/// SQLite predicate: `t` is an optionally signed integer of 1 to 18 digits (spaces around
/// allowed).
fn sqlite_is_integer_text(t: &str) -> String {
    let trimmed = format!("trim({t})");
    format!(
        "({trimmed} GLOB '[0-9]*' OR {trimmed} GLOB '[+-][0-9]*') \
         AND substr({trimmed}, 2) NOT GLOB '*[^0-9]*' \
         AND length(ltrim({trimmed}, '+-')) <= 18"
    )
}

/// SQLite: (predicate that `t` is a decimal number exactly representable at `scale` within 18
/// digits, the scaled integer it stands for).
fn sqlite_decimal_text(t: &str, scale: u32) -> (String, String) {
    let trimmed = format!("trim({t})");
    let unsigned = format!("ltrim({trimmed}, '+-')");
    let point = format!("instr({unsigned}, '.')");
    let integer_part = format!(
        "(CASE WHEN {point} > 0 THEN substr({unsigned}, 1, {point} - 1) ELSE {unsigned} END)"
    );
    let fraction_part =
        format!("(CASE WHEN {point} > 0 THEN substr({unsigned}, {point} + 1) ELSE '' END)");
    let valid = format!(
        "length({trimmed}) - length({unsigned}) <= 1 \
         AND {integer_part} <> '' AND {integer_part} NOT GLOB '*[^0-9]*' \
         AND {fraction_part} NOT GLOB '*[^0-9]*' \
         AND length(rtrim({fraction_part}, '0')) <= {scale} \
         AND length(ltrim({integer_part}, '0')) <= {}",
        DECIMAL_PRECISION.saturating_sub(scale)
    );
    let zeros = "0".repeat(scale as usize);
    let value = format!(
        "(CASE WHEN {trimmed} GLOB '-*' THEN -1 ELSE 1 END) * \
         (CAST({integer_part} AS INTEGER) * {} + CAST(substr({fraction_part} || '{zeros}', 1, {scale}) AS INTEGER))",
        power_of_ten(scale)
    );
    (valid, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_changes_are_recognised() {
        let widening = |dialect, from, to| conversion(dialect, Some(from), to, "\"c\"").widening;
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert!(widening(
                dialect,
                Storage::Integer,
                Storage::Decimal { scale: 2 }
            ));
            assert!(widening(
                dialect,
                Storage::Decimal { scale: 2 },
                Storage::Decimal { scale: 4 }
            ));
            assert!(widening(dialect, Storage::Datetime, Storage::Text));
            assert!(widening(dialect, Storage::Date, Storage::Datetime));
            assert!(!widening(dialect, Storage::Text, Storage::Integer));
            assert!(!widening(
                dialect,
                Storage::Decimal { scale: 4 },
                Storage::Decimal { scale: 2 }
            ));
            assert!(!widening(dialect, Storage::Datetime, Storage::Date));
            assert!(!widening(dialect, Storage::Json, Storage::Date));
        }
    }

    #[test]
    fn every_value_converts_to_text() {
        for from in [
            Storage::Integer,
            Storage::Boolean,
            Storage::Json,
            Storage::Date,
        ] {
            assert_eq!(
                conversion(Dialect::Sqlite, Some(from), Storage::Text, "\"c\"").lossy,
                None
            );
        }
    }

    #[test]
    fn postgres_helpers_are_needed_only_for_parsing_text() {
        assert!(needs_postgres_try_functions(
            Dialect::Postgres,
            Some(Storage::Text),
            Storage::Integer
        ));
        assert!(needs_postgres_try_functions(
            Dialect::Postgres,
            None,
            Storage::Date
        ));
        assert!(!needs_postgres_try_functions(
            Dialect::Sqlite,
            Some(Storage::Text),
            Storage::Integer
        ));
        assert!(!needs_postgres_try_functions(
            Dialect::Postgres,
            Some(Storage::Integer),
            Storage::Text
        ));
    }
}
