//! Durations as admins write them: `30s`, `10m`, `12h`, `3d`, `2w`, or `0` (off).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A non-negative duration with second precision. Zero means "off" where a limit or rule
/// takes a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    seconds: u64,
}

impl Duration {
    pub const ZERO: Duration = Duration { seconds: 0 };

    pub const fn from_secs(seconds: u64) -> Duration {
        Duration { seconds }
    }

    pub const fn as_secs(self) -> u64 {
        self.seconds
    }

    pub const fn is_zero(self) -> bool {
        self.seconds == 0
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.seconds)
    }

    /// Parses `<n><unit>` with unit `s`, `m`, `h`, `d` or `w`, or a bare `0`.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        if text == "0" {
            return Ok(Duration::ZERO);
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| {
            format!("duration `{text}` needs a unit: s, m, h, d or w (e.g. `3d`)")
        })?;
        let (number, unit) = text.split_at(split);
        let number: u64 = number.parse().map_err(|_| {
            format!("`{text}` is not a duration such as `30s`, `10m`, `12h`, `3d` or `2w`")
        })?;
        let unit_seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            _ => {
                return Err(format!(
                    "`{text}` is not a duration such as `30s`, `10m`, `12h`, `3d` or `2w`"
                ));
            }
        };
        number
            .checked_mul(unit_seconds)
            .filter(|seconds| *seconds <= 100 * 365 * 86_400)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("duration `{text}` is longer than 100 years"))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.seconds;
        match s {
            0 => write!(f, "0"),
            _ if s.is_multiple_of(604_800) => write!(f, "{}w", s / 604_800),
            _ if s.is_multiple_of(86_400) => write!(f, "{}d", s / 86_400),
            _ if s.is_multiple_of(3_600) => write!(f, "{}h", s / 3_600),
            _ if s.is_multiple_of(60) => write!(f, "{}m", s / 60),
            _ => write!(f, "{s}s"),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(0) => Ok(Duration::ZERO),
            Raw::Number(n) => Err(serde::de::Error::custom(format!(
                "duration `{n}` needs a unit: s, m, h, d or w (e.g. `{n}d`)"
            ))),
            Raw::Text(text) => Duration::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_every_unit_and_zero() {
        assert_eq!(Duration::parse("30s").unwrap().as_secs(), 30);
        assert_eq!(Duration::parse("10m").unwrap().as_secs(), 600);
        assert_eq!(Duration::parse("12h").unwrap().as_secs(), 43_200);
        assert_eq!(Duration::parse("3d").unwrap().as_secs(), 259_200);
        assert_eq!(Duration::parse("2w").unwrap().as_secs(), 1_209_600);
        assert!(Duration::parse("0").unwrap().is_zero());
        assert_eq!(Duration::parse("3d").unwrap().to_string(), "3d");
    }

    #[test]
    fn bad_durations_are_refused_with_the_text() {
        for bad in ["3", "3x", "d", "", "-1d", "1.5d", "99999999999999999999d"] {
            assert!(Duration::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
