//! How a Stripe price charges, as the ledger stores it (`prices.price_type`, `usage_type`):
//! read in one place, so "recurring" and "metered" are not spelled around the code.

/// A one-time payment or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PriceType {
    OneTime,
    Recurring,
}

impl PriceType {
    /// Stripe's `type`; anything unknown is read as one-time (a purchase, never a renewal).
    pub fn parse(stored: &str) -> Self {
        match stored {
            "recurring" => Self::Recurring,
            _ => Self::OneTime,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OneTime => "one_time",
            Self::Recurring => "recurring",
        }
    }
}

/// A subscription price billed per seat (`licensed`), or per use reported to a Billing Meter
/// (`metered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageType {
    Licensed,
    Metered,
}

impl UsageType {
    /// Stripe's `recurring.usage_type`; absent or unknown is licensed.
    pub fn parse(stored: Option<&str>) -> Self {
        match stored {
            Some("metered") => Self::Metered,
            _ => Self::Licensed,
        }
    }
}

/// The calendar period of a quota the owner gives by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalendarPeriod {
    Day,
    Month,
}

impl CalendarPeriod {
    /// As stored in `grants.quota_period`; anything but `day` is a month.
    pub fn parse(stored: Option<&str>) -> Self {
        match stored {
            Some("day") => Self::Day,
            _ => Self::Month,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_read_back() {
        for t in [PriceType::OneTime, PriceType::Recurring] {
            assert_eq!(PriceType::parse(t.as_str()), t);
        }
        for p in [CalendarPeriod::Day, CalendarPeriod::Month] {
            assert_eq!(CalendarPeriod::parse(Some(p.as_str())), p);
        }
        assert_eq!(UsageType::parse(Some("metered")), UsageType::Metered);
        assert_eq!(UsageType::parse(None), UsageType::Licensed);
    }
}
