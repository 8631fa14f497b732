//! Timeframes: the length of a series' window, written `1s`, `5m`, `4h`,
//! `1d` (docs/formats.md, "Series store").
//!
//! A timeframe is a whole number of seconds, at least one; its label is
//! the largest unit that divides it (`60s` is `1m`, `90s` stays `90s`), so
//! one length has one name in every path and series id.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The longest timeframe: a year (bar arithmetic in milliseconds stays far
/// from `i64` overflow, and a segment of 1000 windows still fits).
pub const MAX_SECONDS: u64 = 366 * 86_400;

/// A window length in whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Timeframe {
    seconds: u64,
}

/// Why text is not a timeframe.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a timeframe: {why} (use a whole number of seconds with s, m, h or d, e.g. 1s, 5m, 1h, 1d)")]
pub struct TimeframeError {
    pub text: String,
    pub why: &'static str,
}

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

impl Timeframe {
    /// A timeframe of `seconds` (1 to [`MAX_SECONDS`]).
    pub fn from_seconds(seconds: u64) -> Option<Timeframe> {
        (1..=MAX_SECONDS)
            .contains(&seconds)
            .then_some(Timeframe { seconds })
    }

    /// A timeframe of `ms` milliseconds, when that is whole seconds.
    pub fn from_ms(ms: i64) -> Option<Timeframe> {
        if ms <= 0 || ms % 1000 != 0 {
            return None;
        }
        Timeframe::from_seconds((ms / 1000) as u64)
    }

    pub fn seconds(self) -> u64 {
        self.seconds
    }

    /// The window length in milliseconds.
    pub fn ms(self) -> i64 {
        self.seconds as i64 * 1000
    }

    /// Start of the window holding `ts`.
    pub fn window_start(self, ts: i64) -> i64 {
        let w = self.ms();
        ts.div_euclid(w) * w
    }

    /// Whether this timeframe is a whole multiple of `base` (`5m` of `1m`).
    pub fn is_multiple_of(self, base: Timeframe) -> bool {
        self.seconds % base.seconds == 0
    }

    /// Parses a comma-separated list (`1s,1m,1h,1d`), sorted shortest
    /// first, each length once.
    pub fn parse_list(text: &str) -> Result<Vec<Timeframe>, TimeframeError> {
        let mut list = text
            .split(',')
            .map(|t| t.trim().parse())
            .collect::<Result<Vec<Timeframe>, _>>()?;
        list.sort();
        list.dedup();
        Ok(list)
    }
}

impl FromStr for Timeframe {
    type Err = TimeframeError;

    fn from_str(text: &str) -> Result<Timeframe, TimeframeError> {
        let fail = |why| TimeframeError {
            text: text.to_string(),
            why,
        };
        let unit = text.chars().last().ok_or_else(|| fail("it is empty"))?;
        let scale = UNITS
            .iter()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(|| fail("it does not end in s, m, h or d"))?;
        let digits = &text[..text.len() - unit.len_utf8()];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail("it does not start with a whole number"));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| fail("the number is too large"))?;
        if n == 0 {
            return Err(fail("it is zero"));
        }
        n.checked_mul(scale)
            .and_then(Timeframe::from_seconds)
            .ok_or_else(|| fail("it is longer than a year"))
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unit, scale) = UNITS
            .iter()
            .find(|(_, s)| self.seconds % s == 0)
            .copied()
            .unwrap_or(('s', 1));
        write!(f, "{}{unit}", self.seconds / scale)
    }
}

impl TryFrom<String> for Timeframe {
    type Error = TimeframeError;
    fn try_from(text: String) -> Result<Timeframe, TimeframeError> {
        text.parse()
    }
}

impl From<Timeframe> for String {
    fn from(tf: Timeframe) -> String {
        tf.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tf(s: &str) -> Timeframe {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_names_each_length_once() {
        assert_eq!(tf("1s").ms(), 1000);
        assert_eq!(tf("5m").ms(), 300_000);
        assert_eq!(tf("4h").ms(), 14_400_000);
        assert_eq!(tf("1d").ms(), 86_400_000);
        assert_eq!(tf("60s").to_string(), "1m");
        assert_eq!(tf("90s").to_string(), "90s");
        assert_eq!(tf("24h").to_string(), "1d");
        assert_eq!(tf("120m").to_string(), "2h");
        assert!(tf("5m").is_multiple_of(tf("1m")));
        assert!(!tf("90s").is_multiple_of(tf("1m")));
        assert_eq!(Timeframe::from_ms(60_000), Some(tf("1m")));
        assert_eq!(Timeframe::from_ms(1500), None);
        assert_eq!(tf("1m").window_start(-1), -60_000);
    }

    #[test]
    fn bad_timeframes_say_why() {
        for (text, why) in [
            ("7x", "it does not end in s, m, h or d"),
            ("0s", "it is zero"),
            ("", "it is empty"),
            ("s", "it does not start with a whole number"),
            ("1.5s", "it does not start with a whole number"),
            ("-1m", "it does not start with a whole number"),
            ("400d", "it is longer than a year"),
            ("99999999999999999999s", "the number is too large"),
        ] {
            let e = text.parse::<Timeframe>().unwrap_err();
            assert_eq!(e.why, why, "{text}");
            assert!(e.to_string().contains("e.g. 1s, 5m"), "{e}");
        }
    }

    #[test]
    fn lists_are_sorted_and_unique() {
        let list = Timeframe::parse_list("1h, 1s,1m,60s,1d").unwrap();
        let names: Vec<String> = list.iter().map(|t| t.to_string()).collect();
        assert_eq!(names, ["1s", "1m", "1h", "1d"]);
        assert!(Timeframe::parse_list("1s,,1m").is_err());
    }
}
