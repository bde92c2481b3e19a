//! Labels: a plain string, or a map of language code to string (`{ en: Lead, zh: 线索 }`).
//!
//! This module only picks the right text for a language; it does not know where the user's
//! language comes from.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A label in one or more languages. A plain string in YAML is stored under the key `""`
/// and serves every language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    Plain(String),
    Translated(IndexMap<String, String>),
}

impl Label {
    /// The text for `language`, falling back to `fallback_language`, then English, then the
    /// first translation given.
    pub fn text(&self, language: &str, fallback_language: &str) -> &str {
        match self {
            Label::Plain(text) => text,
            Label::Translated(map) => map
                .get(language)
                .or_else(|| map.get(fallback_language))
                .or_else(|| map.get("en"))
                .or_else(|| map.values().next())
                .map(String::as_str)
                .unwrap_or(""),
        }
    }

    /// A label from a plain string.
    pub fn plain(text: impl Into<String>) -> Label {
        Label::Plain(text.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translated_label_falls_back_to_the_app_language_then_english() {
        let label = Label::Translated(IndexMap::from([
            ("en".to_owned(), "Lead".to_owned()),
            ("zh".to_owned(), "线索".to_owned()),
        ]));
        assert_eq!(label.text("zh", "en"), "线索");
        assert_eq!(label.text("fr", "zh"), "线索");
        assert_eq!(label.text("fr", "de"), "Lead");
        assert_eq!(Label::plain("Name").text("zh", "zh"), "Name");
    }
}
