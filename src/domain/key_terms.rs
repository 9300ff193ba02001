//! What one key carries of its own, beside the plans its customer's keys share: a cap on its
//! use, and, once rolled, how long it keeps working.

use std::fmt;

use super::{calendar, thousands};

/// How a key's cap is counted: per calendar day or month (UTC), or over the key's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPeriod {
    Day,
    Month,
    Total,
}

impl CapPeriod {
    /// As stored in `access_keys.cap_period`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
            Self::Total => "total",
        }
    }

    fn parse(input: &str) -> Option<Self> {
        match input {
            "day" => Some(Self::Day),
            "month" => Some(Self::Month),
            "total" => Some(Self::Total),
            _ => None,
        }
    }
}

/// A key's own limit: at most `limit` predictions `per` period, whatever its plans allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCap {
    pub limit: u64,
    pub per: CapPeriod,
}

/// Caps above this are not caps.
const MAX_CAP: u64 = 1_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyCapError {
    #[error(
        "a key's cap is a number of predictions, optionally per day or month: 100/day, 5000/month or 10000 (in all)"
    )]
    Malformed,
    #[error("a key's cap must be at least 1 (to stop a key, revoke it)")]
    Zero,
    #[error("a key's cap must be at most 1,000,000,000,000")]
    TooLarge,
}

impl KeyCap {
    /// `100/day`, `5000/month`, `10000` or `10000/total`; `1,000` and `1_000` are read too.
    pub fn parse(input: &str) -> Result<Self, KeyCapError> {
        let (number, per) = match input.trim().split_once('/') {
            Some((number, per)) => (
                number,
                CapPeriod::parse(per.trim().to_ascii_lowercase().as_str())
                    .ok_or(KeyCapError::Malformed)?,
            ),
            None => (input.trim(), CapPeriod::Total),
        };
        let digits: String = number
            .trim()
            .chars()
            .filter(|c| *c != ',' && *c != '_')
            .collect();
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return Err(KeyCapError::Malformed);
        }
        let limit: u64 = digits.parse().map_err(|_| KeyCapError::TooLarge)?;
        Self::new(limit, per)
    }

    pub fn new(limit: u64, per: CapPeriod) -> Result<Self, KeyCapError> {
        match limit {
            0 => Err(KeyCapError::Zero),
            n if n > MAX_CAP => Err(KeyCapError::TooLarge),
            _ => Ok(Self { limit, per }),
        }
    }

    /// A cap as stored; `None` for no cap or a stored value that is not one.
    pub fn from_stored(limit: Option<i64>, per: Option<&str>) -> Option<Self> {
        let limit = u64::try_from(limit?).ok()?;
        Self::new(limit, CapPeriod::parse(per?)?).ok()
    }

    /// The start of the period `now` falls in (0 for a cap over the key's life).
    pub fn period_start(&self, now: i64) -> i64 {
        match self.per {
            CapPeriod::Day => calendar::day_start(now),
            CapPeriod::Month => calendar::month_start(now),
            CapPeriod::Total => 0,
        }
    }

    /// When the count starts again, if it does.
    pub fn resets_at(&self, now: i64) -> Option<i64> {
        match self.per {
            CapPeriod::Day => Some(calendar::day_start(now) + calendar::DAY),
            CapPeriod::Month => Some(calendar::next_month_start(now)),
            CapPeriod::Total => None,
        }
    }

    /// As people read it: "100 predictions a day", "10,000 predictions in all".
    pub fn describe(&self) -> String {
        let n = thousands(self.limit);
        let unit = if self.limit == 1 {
            "prediction"
        } else {
            "predictions"
        };
        match self.per {
            CapPeriod::Day => format!("{n} {unit} a day"),
            CapPeriod::Month => format!("{n} {unit} a month"),
            CapPeriod::Total => format!("{n} {unit} in all"),
        }
    }

    /// "today", "this month", "in all": the span a count against the cap covers.
    pub fn span(&self) -> &'static str {
        match self.per {
            CapPeriod::Day => "today",
            CapPeriod::Month => "this month",
            CapPeriod::Total => "in all",
        }
    }
}

/// The form [`KeyCap::parse`] reads back: `100/day`, `5000/month`, `10000`.
impl fmt::Display for KeyCap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per {
            CapPeriod::Total => write!(f, "{}", self.limit),
            per => write!(f, "{}/{}", self.limit, per.as_str()),
        }
    }
}

/// How long a rolled key keeps working beside the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grace {
    /// The old key stops at once.
    None,
    Hour,
    Day,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the grace period is none, 1h or 24h")]
pub struct GraceError;

impl Grace {
    /// `none`, `1h` or `24h` (as the forms and the CLI say them; `0` is `none`).
    pub fn parse(input: &str) -> Result<Self, GraceError> {
        match input.trim().to_ascii_lowercase().as_str() {
            "none" | "0" | "" => Ok(Self::None),
            "1h" => Ok(Self::Hour),
            "24h" | "1d" => Ok(Self::Day),
            _ => Err(GraceError),
        }
    }

    pub fn seconds(self) -> i64 {
        match self {
            Self::None => 0,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Hour => "1h",
            Self::Day => "24h",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_read_as_people_write_them_and_back() {
        for (input, limit, per) in [
            ("100/day", 100, CapPeriod::Day),
            ("5,000 / Month", 5_000, CapPeriod::Month),
            ("10000", 10_000, CapPeriod::Total),
            ("1_000/total", 1_000, CapPeriod::Total),
        ] {
            let cap = KeyCap::parse(input).unwrap();
            assert_eq!(cap, KeyCap { limit, per }, "{input}");
            assert_eq!(KeyCap::parse(&cap.to_string()), Ok(cap));
        }
        assert_eq!(KeyCap::parse("0/day"), Err(KeyCapError::Zero));
        assert_eq!(KeyCap::parse("-5"), Err(KeyCapError::Malformed));
        assert_eq!(KeyCap::parse("10/week"), Err(KeyCapError::Malformed));
        assert_eq!(KeyCap::parse(""), Err(KeyCapError::Malformed));
        assert_eq!(
            KeyCap::parse("99999999999999999999"),
            Err(KeyCapError::TooLarge)
        );
        assert_eq!(
            KeyCap::parse("1,000/day").unwrap().describe(),
            "1,000 predictions a day"
        );
        assert_eq!(
            KeyCap::parse("1").unwrap().describe(),
            "1 prediction in all"
        );
    }

    #[test]
    fn a_cap_counts_per_utc_day_or_month_or_in_all() {
        let now = calendar::parse_date("2026-12-03").unwrap() + 5 * 3_600;
        let day = KeyCap::parse("10/day").unwrap();
        assert_eq!(
            day.period_start(now),
            calendar::parse_date("2026-12-03").unwrap()
        );
        assert_eq!(day.resets_at(now), calendar::parse_date("2026-12-04"));
        let month = KeyCap::parse("10/month").unwrap();
        assert_eq!(
            month.period_start(now),
            calendar::parse_date("2026-12-01").unwrap()
        );
        assert_eq!(month.resets_at(now), calendar::parse_date("2027-01-01"));
        let total = KeyCap::parse("10").unwrap();
        assert_eq!((total.period_start(now), total.resets_at(now)), (0, None));
    }

    #[test]
    fn grace_periods_are_the_three_offered() {
        assert_eq!(Grace::parse("none").map(Grace::seconds), Ok(0));
        assert_eq!(Grace::parse("1h").map(Grace::seconds), Ok(3_600));
        assert_eq!(Grace::parse("24H").map(Grace::seconds), Ok(86_400));
        assert_eq!(Grace::parse("2h"), Err(GraceError));
    }
}
