//! A small `--flag value` parser for the two bench binaries, so the harness needs no
//! argument crate. Every flag takes one value; unknown flags and missing values are errors
//! that name the flag. It does not know any flag's meaning or type beyond parsing numbers.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context as _, anyhow, bail};

/// Parsed `--flag value` pairs.
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: BTreeMap<String, String>,
}

impl Args {
    /// Parses `arguments` (without the program name), accepting only flags in `known`
    /// (written without the leading `--`). `--help` returns an error holding `usage`.
    pub fn parse(
        arguments: impl IntoIterator<Item = String>,
        known: &[&str],
        usage: &str,
    ) -> anyhow::Result<Args> {
        let mut values = BTreeMap::new();
        let mut arguments = arguments.into_iter();
        while let Some(argument) = arguments.next() {
            if argument == "--help" || argument == "-h" {
                bail!("{usage}");
            }
            let (name, inline_value) = match argument.strip_prefix("--") {
                Some(flag) => match flag.split_once('=') {
                    Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
                    None => (flag.to_owned(), None),
                },
                None => bail!("unexpected argument `{argument}`\n\n{usage}"),
            };
            if !known.contains(&name.as_str()) {
                bail!("unknown flag `--{name}`\n\n{usage}");
            }
            let value = match inline_value {
                Some(value) => value,
                None => arguments
                    .next()
                    .ok_or_else(|| anyhow!("`--{name}` needs a value\n\n{usage}"))?,
            };
            values.insert(name, value);
        }
        Ok(Args { values })
    }

    /// The value of `--name`, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The value of `--name`, which must be given.
    pub fn required(&self, name: &str) -> anyhow::Result<&str> {
        self.text(name)
            .ok_or_else(|| anyhow!("`--{name}` is required"))
    }

    /// The value of `--name` parsed as a `T`, or `default` when not given.
    pub fn number<T>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        match self.text(name) {
            None => Ok(default),
            Some(text) => {
                // Allow `1_000_000` and `1,000,000` for readability in scripts.
                let digits: String = text.chars().filter(|c| !matches!(c, '_' | ',')).collect();
                digits
                    .parse()
                    .with_context(|| format!("`--{name} {text}` is not a valid number"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(arguments: &[&str]) -> anyhow::Result<Args> {
        Args::parse(
            arguments.iter().map(|argument| (*argument).to_owned()),
            &["db", "rows"],
            "usage",
        )
    }

    #[test]
    fn flags_take_separate_or_inline_values() {
        let args = parse(&["--db", "sqlite://x.db", "--rows=1_000_000"]).unwrap();
        assert_eq!(args.text("db"), Some("sqlite://x.db"));
        assert_eq!(args.number("rows", 0_u64).unwrap(), 1_000_000);
        assert_eq!(args.number("missing", 7_u64).unwrap(), 7);
    }

    #[test]
    fn unknown_flags_and_missing_values_are_named() {
        assert!(
            parse(&["--nope", "1"])
                .unwrap_err()
                .to_string()
                .contains("--nope")
        );
        assert!(parse(&["--db"]).unwrap_err().to_string().contains("--db"));
        assert!(
            parse(&["--rows", "many"])
                .unwrap()
                .number("rows", 0_u64)
                .is_err()
        );
    }
}
