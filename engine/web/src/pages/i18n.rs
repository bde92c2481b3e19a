//! The pages' message catalogs (`admin-ui/i18n/<language>/*.yaml`: one directory per
//! language, one file per area of the UI, merged) and the choice of a page's language.
//!
//! A catalog is YAML with nested keys (`list: { new: 新建 }` is the key `list.new`); a text
//! may name arguments in braces (`{count} 条`). Labels that come from the app's metadata are
//! not here: they are in the metadata, in every language the app gives.
//!
//! A page's language is the user's own setting, else the first language of the browser's
//! `Accept-Language` that Keel has a catalog for, else the app's language (docs/ui.md).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_yaml::Value as Yaml;

/// The languages Keel has catalogs for.
pub const LANGUAGES: [&str; 2] = ["en", "zh"];

/// Every catalog, each a map of dotted key → text.
#[derive(Debug, Default)]
pub struct Catalogs {
    by_language: BTreeMap<String, BTreeMap<String, String>>,
}

impl Catalogs {
    /// Reads every `i18n/<language>/<area>.yaml` of `files` through `read`. A key given in
    /// two files of one language is logged, and the later file wins.
    pub fn load(files: &[String], read: impl Fn(&str) -> Option<Cow<'static, [u8]>>) -> Catalogs {
        let mut by_language = BTreeMap::new();
        for language in LANGUAGES {
            let prefix = format!("i18n/{language}/");
            let mut catalog = BTreeMap::new();
            for path in files
                .iter()
                .filter(|path| path.starts_with(&prefix) && path.ends_with(".yaml"))
            {
                match read(path).map(|bytes| parse(&bytes)) {
                    Some(Ok(area)) => {
                        for (key, text) in area {
                            if catalog.insert(key.clone(), text).is_some() {
                                tracing::error!(path, key, "a message key is given twice");
                            }
                        }
                    }
                    Some(Err(error)) => {
                        tracing::error!(%error, path, "a message catalog does not parse");
                    }
                    None => tracing::error!(path, "a message catalog is missing"),
                }
            }
            by_language.insert(language.to_owned(), catalog);
        }
        Catalogs { by_language }
    }

    /// The text of `key` in `language` with its `{argument}`s filled by `argument`. A key
    /// missing from the catalog shows as `⟦key⟧`, which tests look for.
    pub fn text(
        &self,
        language: &str,
        key: &str,
        argument: impl Fn(&str) -> Option<String>,
    ) -> String {
        let Some(template) = self
            .by_language
            .get(language)
            .or_else(|| self.by_language.get("en"))
            .and_then(|catalog| catalog.get(key))
        else {
            return format!("⟦{key}⟧");
        };
        fill(template, argument)
    }

    /// The keys of one language's catalog.
    pub fn keys(&self, language: &str) -> Vec<&str> {
        self.by_language
            .get(language)
            .map(|catalog| catalog.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// Whether `key` is in every catalog.
    pub fn has(&self, key: &str) -> bool {
        self.by_language
            .values()
            .all(|catalog| catalog.contains_key(key))
    }
}

fn parse(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let root: Yaml = serde_yaml::from_slice(bytes).map_err(|error| error.to_string())?;
    let mut catalog = BTreeMap::new();
    flatten("", &root, &mut catalog)?;
    Ok(catalog)
}

fn flatten(prefix: &str, node: &Yaml, into: &mut BTreeMap<String, String>) -> Result<(), String> {
    match node {
        Yaml::Mapping(map) => {
            for (key, value) in map {
                let Some(key) = key.as_str() else {
                    return Err(format!("a key under `{prefix}` is not text"));
                };
                let path = if prefix.is_empty() {
                    key.to_owned()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&path, value, into)?;
            }
            Ok(())
        }
        Yaml::String(text) => {
            into.insert(prefix.to_owned(), text.clone());
            Ok(())
        }
        Yaml::Number(number) => {
            into.insert(prefix.to_owned(), number.to_string());
            Ok(())
        }
        _ => Err(format!("`{prefix}` is neither text nor a map")),
    }
}

/// Replaces each `{name}` in `template` by its argument; an unknown `{name}` stays.
fn fill(template: &str, argument: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) if is_argument_name(&after[..end]) => {
                match argument(&after[..end]) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&rest[start..start + end + 2]),
                }
                rest = &after[end + 1..];
            }
            _ => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_argument_name(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// The page language for a user setting, an `Accept-Language` header and the app's
/// language, in that order of preference; only languages with a catalog qualify.
pub fn negotiate(user: Option<&str>, accept_language: Option<&str>, app: &str) -> String {
    if let Some(language) = user.and_then(supported) {
        return language;
    }
    if let Some(header) = accept_language {
        let mut ranges: Vec<(f32, usize, &str)> = header
            .split(',')
            .enumerate()
            .filter_map(|(index, part)| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let quality = pieces
                    .find_map(|piece| piece.trim().strip_prefix("q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                (quality > 0.0).then_some((quality, index, tag))
            })
            .collect();
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(language) = ranges.iter().find_map(|(_, _, tag)| supported(tag)) {
            return language;
        }
    }
    supported(app).unwrap_or_else(|| "en".to_owned())
}

/// `zh-CN` → `zh`, `en_US` → `en`; `None` for a language without a catalog.
fn supported(tag: &str) -> Option<String> {
    let primary = tag
        .split(['-', '_'])
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    LANGUAGES.contains(&primary.as_str()).then_some(primary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_is_the_users_then_the_browsers_then_the_apps() {
        assert_eq!(negotiate(Some("en"), Some("zh-CN"), "zh"), "en");
        assert_eq!(
            negotiate(None, Some("fr;q=1, zh-CN;q=0.8, en;q=0.5"), "en"),
            "zh"
        );
        assert_eq!(negotiate(None, Some("en-US,en;q=0.9"), "zh"), "en");
        assert_eq!(negotiate(None, Some("fr, de"), "zh"), "zh");
        assert_eq!(negotiate(Some("fr"), None, "de"), "en");
        assert_eq!(negotiate(None, Some("zh;q=0"), "en"), "en");
    }

    #[test]
    fn arguments_fill_their_braces_and_missing_keys_are_marked() {
        let files = vec!["i18n/en/list.yaml".to_owned()];
        let catalogs = Catalogs::load(&files, |path| {
            (path == "i18n/en/list.yaml")
                .then(|| Cow::Borrowed(&b"list:\n  count: \"{count} records\"\n"[..]))
        });
        let count = |name: &str| (name == "count").then(|| "3".to_owned());
        assert_eq!(catalogs.text("en", "list.count", count), "3 records");
        assert_eq!(catalogs.text("en", "list.nope", count), "⟦list.nope⟧");
        assert_eq!(
            fill("{a} and {b} {not closed", |n| (n == "a")
                .then(|| "x".into())),
            "x and {b} {not closed"
        );
    }
}
