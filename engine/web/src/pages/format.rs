//! How values look on a page: numbers with digit groups, money with the app's currency
//! (`¥ 1,234.50`), dates and times in the app's timezone (`2026-12-06 09:30`), relative
//! times ("3 天前", "3 days ago"), choice keys as their labels, lookups as links to their
//! target, and masked values as the API masks them.
//!
//! Pages show a record exactly as the API returns it to the same user (`Records` decides
//! what is masked or hidden); this module only formats.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use keel_meta::{Field, FieldKind, Schema};
use serde::Serialize;
use serde_json::Value as Json;

/// The settings every formatted value depends on.
#[derive(Debug, Clone)]
pub struct Formatter {
    pub lang: String,
    /// The app's language: labels fall back to it.
    pub app_lang: String,
    pub tz: Tz,
    pub currency: String,
    pub now: DateTime<Utc>,
}

/// One field value, ready for a template.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Shown {
    /// The text to show; empty for no value.
    pub text: String,
    /// A link for lookups, users and URLs, emails (`mailto:`) and phones (`tel:`).
    pub href: Option<String>,
    /// `number` (right-aligned), `masked`, `empty`, `boolean`, `choice`, `text`.
    pub class: &'static str,
    /// The raw value as a form would send it (dates as `YYYY-MM-DD`, a lookup's id, …).
    pub raw: String,
    /// Each selected key of a multi-choice, with its label.
    pub items: Vec<(String, String)>,
}

impl Formatter {
    pub fn new(schema: &Schema, lang: &str, now: DateTime<Utc>) -> Formatter {
        Formatter {
            lang: lang.to_owned(),
            app_lang: schema.app.language.clone(),
            tz: schema
                .app
                .timezone
                .parse()
                .unwrap_or(chrono_tz::Asia::Shanghai),
            currency: schema.app.currency.clone(),
            now,
        }
    }

    /// A label in the page's language.
    pub fn label<'a>(&self, label: Option<&'a keel_meta::Label>, fallback: &'a str) -> String {
        label
            .map(|label| label.text(&self.lang, &self.app_lang))
            .filter(|text| !text.is_empty())
            .unwrap_or(fallback)
            .to_owned()
    }

    /// A field's label in the page's language (its name when it has none).
    pub fn field_label(&self, field: &Field) -> String {
        self.label(field.label.as_ref(), &field.name)
    }

    /// `field` of `record` (a record as the API renders it, with `_refs`), formatted.
    /// `masked` is whether `Records` masked it for this user.
    pub fn show(&self, field: &Field, record: &Json, masked: bool) -> Shown {
        let value = record.get(&field.name).unwrap_or(&Json::Null);
        if value.is_null() {
            return Shown {
                class: "empty",
                ..Shown::default()
            };
        }
        let raw = match value {
            Json::String(text) => text.clone(),
            other => other.to_string(),
        };
        if masked {
            return Shown {
                text: raw.clone(),
                class: "masked",
                raw,
                ..Shown::default()
            };
        }
        let plain = |text: String, class: &'static str| Shown {
            text,
            class,
            raw: raw.clone(),
            ..Shown::default()
        };
        match &field.kind {
            FieldKind::Integer | FieldKind::Decimal { .. } => plain(number_text(&raw), "number"),
            FieldKind::Money { .. } => plain(self.money(&raw), "number"),
            FieldKind::Percent { .. } => plain(format!("{}%", number_text(&raw)), "number"),
            FieldKind::Boolean => plain(
                if value.as_bool() == Some(true) {
                    "✓".to_owned()
                } else {
                    "✗".to_owned()
                },
                "boolean",
            ),
            FieldKind::Datetime => plain(datetime_in(&raw, self.tz), "text"),
            FieldKind::Date => plain(raw.clone(), "text"),
            FieldKind::Choice { options } => {
                let label = options
                    .iter()
                    .find(|option| option.key == raw)
                    .map(|option| self.label(option.label.as_ref(), &option.key))
                    .unwrap_or_else(|| raw.clone());
                plain(label, "choice")
            }
            FieldKind::MultiChoice { options } => {
                let items: Vec<(String, String)> = value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Json::as_str)
                    .map(|key| {
                        let label = options
                            .iter()
                            .find(|option| option.key == key)
                            .map(|option| self.label(option.label.as_ref(), &option.key))
                            .unwrap_or_else(|| key.to_owned());
                        (key.to_owned(), label)
                    })
                    .collect();
                Shown {
                    text: items
                        .iter()
                        .map(|(_, label)| label.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    class: "choice",
                    raw,
                    items,
                    href: None,
                }
            }
            FieldKind::Lookup { object, .. } => {
                let title = reference_title(record, &field.name).unwrap_or_else(|| raw.clone());
                Shown {
                    text: title,
                    href: Some(format!("/app/{object}/{raw}")),
                    class: "text",
                    raw,
                    ..Shown::default()
                }
            }
            FieldKind::User => plain(
                reference_title(record, &field.name).unwrap_or_else(|| raw.clone()),
                "text",
            ),
            FieldKind::Email => Shown {
                href: Some(format!("mailto:{raw}")),
                ..plain(raw.clone(), "text")
            },
            FieldKind::Phone => Shown {
                href: Some(format!("tel:{raw}")),
                ..plain(raw.clone(), "text")
            },
            FieldKind::Url if raw.starts_with("http://") || raw.starts_with("https://") => Shown {
                href: Some(raw.clone()),
                ..plain(raw.clone(), "text")
            },
            FieldKind::Formula { returns, .. } => match returns {
                keel_meta::FormulaType::Money => plain(self.money(&raw), "number"),
                keel_meta::FormulaType::Integer | keel_meta::FormulaType::Decimal => {
                    plain(number_text(&raw), "number")
                }
                _ => plain(raw.clone(), "text"),
            },
            _ => plain(raw.clone(), "text"),
        }
    }

    /// `1234.5` → `¥ 1,234.50` in the app's currency.
    pub fn money(&self, amount: &str) -> String {
        let symbol = currency_symbol(&self.currency);
        let grouped = number_text(amount);
        let grouped = match grouped.split_once('.') {
            None => format!("{grouped}.00"),
            Some((_, fraction)) if fraction.len() == 1 => format!("{grouped}0"),
            _ => grouped,
        };
        match grouped.strip_prefix('-') {
            Some(positive) => format!("-{symbol} {positive}"),
            None => format!("{symbol} {grouped}"),
        }
    }

    /// A datetime in the app's timezone, `YYYY-MM-DD HH:MM`.
    pub fn datetime(&self, value: &str) -> String {
        datetime_in(value, self.tz)
    }

    /// How long ago (or ahead) an instant is, in the page's language.
    pub fn ago(&self, value: &str) -> String {
        ago_text(value, &self.now.to_rfc3339(), &self.lang)
    }
}

/// The title `Records` gave a lookup or user value in `_refs`.
fn reference_title(record: &Json, field: &str) -> Option<String> {
    record
        .get("_refs")?
        .get(field)?
        .get("title")?
        .as_str()
        .map(str::to_owned)
}

fn currency_symbol(code: &str) -> &str {
    match code {
        "CNY" | "RMB" | "JPY" => "¥",
        "USD" | "HKD" | "SGD" | "AUD" | "CAD" | "TWD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        other => other,
    }
}

/// Digit groups of three for the integer part of a decimal text (`-1234567.5` →
/// `-1,234,567.5`); anything that is not a number is returned unchanged.
pub fn number_text(text: &str) -> String {
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text),
    };
    let (whole, fraction) = match digits.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (digits, None),
    };
    if whole.is_empty() || !whole.bytes().all(|byte| byte.is_ascii_digit()) {
        return text.to_owned();
    }
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

/// An RFC 3339 instant as `YYYY-MM-DD HH:MM` in `tz`; other text unchanged.
fn datetime_in(value: &str, tz: Tz) -> String {
    match DateTime::parse_from_rfc3339(value) {
        Ok(instant) => instant
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M")
            .to_string(),
        Err(_) => value.to_owned(),
    }
}

/// [`datetime_in`] for a timezone name (the `datetime` template filter).
pub fn datetime_text(value: &str, timezone: &str) -> String {
    datetime_in(value, timezone.parse().unwrap_or(chrono_tz::UTC))
}

/// "3 天前" / "3 days ago" / "2 天后" / "in 2 days" for `value` seen at `now` (both
/// RFC 3339); `value` unchanged when either does not parse.
pub fn ago_text(value: &str, now: &str, lang: &str) -> String {
    let (Ok(then), Ok(now)) = (
        DateTime::parse_from_rfc3339(value),
        DateTime::parse_from_rfc3339(now),
    ) else {
        return value.to_owned();
    };
    let seconds = (now - then).num_seconds();
    let future = seconds < 0;
    let seconds = seconds.unsigned_abs();
    let zh = lang == "zh";
    if seconds < 60 {
        return if zh { "刚刚" } else { "just now" }.to_owned();
    }
    let (amount, unit_en, unit_zh) = if seconds < 3_600 {
        (seconds / 60, "minute", "分钟")
    } else if seconds < 86_400 {
        (seconds / 3_600, "hour", "小时")
    } else if seconds < 30 * 86_400 {
        (seconds / 86_400, "day", "天")
    } else if seconds < 365 * 86_400 {
        (seconds / (30 * 86_400), "month", "个月")
    } else {
        (seconds / (365 * 86_400), "year", "年")
    };
    match (zh, future) {
        (true, false) => format!("{amount} {unit_zh}前"),
        (true, true) => format!("{amount} {unit_zh}后"),
        (false, past_or_future) => {
            let plural = if amount == 1 { "" } else { "s" };
            if past_or_future {
                format!("in {amount} {unit_en}{plural}")
            } else {
                format!("{amount} {unit_en}{plural} ago")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_money_and_times_read_as_people_write_them() {
        assert_eq!(number_text("1234567.5"), "1,234,567.5");
        assert_eq!(number_text("-999"), "-999");
        assert_eq!(number_text("-1000"), "-1,000");
        assert_eq!(number_text("abc"), "abc");
        let formatter = Formatter {
            lang: "zh".into(),
            app_lang: "zh".into(),
            tz: chrono_tz::Asia::Shanghai,
            currency: "CNY".into(),
            now: "2026-12-06T01:30:00Z".parse().unwrap(),
        };
        assert_eq!(formatter.money("1234.5"), "¥ 1,234.50");
        assert_eq!(formatter.money("-20"), "-¥ 20.00");
        assert_eq!(
            formatter.datetime("2026-12-06T01:30:00Z"),
            "2026-12-06 09:30"
        );
        assert_eq!(formatter.ago("2026-12-03T01:30:00Z"), "3 天前");
        assert_eq!(
            ago_text("2026-12-08T01:30:00Z", "2026-12-06T01:30:00Z", "en"),
            "in 2 days"
        );
        assert_eq!(
            ago_text("2026-12-06T00:30:00Z", "2026-12-06T01:30:00Z", "en"),
            "1 hour ago"
        );
    }
}
