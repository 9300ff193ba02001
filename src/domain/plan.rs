use std::collections::HashMap;

use super::Predictors;

/// What a payment buys, read from the owner's Stripe product and price metadata (a price's
/// value wins over its product's). Missing keys take the documented defaults; a value that
/// cannot be read is ignored and reported, never fatal, so one typo in the Dashboard cannot
/// stop the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRules {
    pub predictors: Predictors,
    pub quota: Option<u64>,
    pub credits: Option<u64>,
    pub duration_days: Option<u32>,
    pub rate_limit: Option<u32>,
    /// `alert_at`: percentages of a quota or of credits at which the customer and the owner
    /// are told (e.g. `80,100`).
    pub alert_at: Thresholds,
    /// `alert_credits_below`: credits left under which the customer and the owner are told.
    pub alert_credits_below: Option<u64>,
    /// `unit`: what one counted use is called on the pages, plural (`sessions`); `None` says
    /// "predictions".
    pub unit: Option<String>,
}

/// What one counted use is called when a plan names no `unit`.
pub const DEFAULT_UNIT: &str = "predictions";

/// What one counted use is called, plural: a plan's `unit`, or [`DEFAULT_UNIT`].
pub fn unit_or_default(unit: Option<&str>) -> &str {
    unit.unwrap_or(DEFAULT_UNIT)
}

/// The unit of one: "prediction" for "predictions".
pub fn singular(unit: &str) -> &str {
    unit.strip_suffix('s').unwrap_or(unit)
}

impl PlanRules {
    /// What one counted use is called, plural: the plan's `unit`, or "predictions".
    pub fn unit(&self) -> &str {
        unit_or_default(self.unit.as_deref())
    }
}

/// Percentages from 1 to 100 at which an alert fires, as one bit each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Thresholds(u128);

impl Thresholds {
    /// `80,100` or `50, 90, 100`; a value outside 1..=100 or not a number is an error.
    pub fn parse(input: &str) -> Result<Self, String> {
        let mut bits = 0u128;
        for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let percent: u8 = part
                .trim_end_matches('%')
                .parse()
                .ok()
                .filter(|p| (1..=100).contains(p))
                .ok_or_else(|| format!("{part:?} is not a percentage from 1 to 100"))?;
            bits |= 1 << percent;
        }
        Ok(Self(bits))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The percentages, smallest first.
    pub fn iter(self) -> impl Iterator<Item = u8> {
        (1..=100u8).filter(move |p| self.0 & (1 << p) != 0)
    }
}

/// The form [`Thresholds::parse`] reads: `80,100`.
impl std::fmt::Display for Thresholds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.iter().map(|p| p.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}

impl PlanRules {
    /// `product` and `price` are the metadata objects as JSON text (absent for unknown prices).
    /// Returns the rules and a description of each value that was ignored.
    pub fn from_metadata(product: Option<&str>, price: Option<&str>) -> (Self, Vec<String>) {
        let mut problems = Vec::new();
        let mut merged: HashMap<String, String> = HashMap::new();
        for json in [product, price].into_iter().flatten() {
            match serde_json::from_str::<HashMap<String, serde_json::Value>>(json) {
                Ok(map) => merged.extend(map.into_iter().filter_map(|(k, v)| match v {
                    serde_json::Value::String(s) => Some((k, s)),
                    serde_json::Value::Number(n) => Some((k, n.to_string())),
                    _ => None,
                })),
                Err(e) => problems.push(format!("metadata is not a JSON object: {e}")),
            }
        }
        let mut number = |name: &str| -> Option<u64> {
            let raw = merged.get(name)?.trim();
            match raw.replace(['_', ','], "").parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(format!("{name}={raw:?} is not a whole number; ignored"));
                    None
                }
            }
        };
        let quota = number("quota");
        let credits = number("credits");
        let duration_days = number("duration_days").map(|n| n.min(u64::from(u32::MAX)) as u32);
        let rate_limit = number("rate_limit").map(|n| n.min(u64::from(u32::MAX)) as u32);
        let alert_credits_below = number("alert_credits_below").filter(|n| *n > 0);
        let alert_at = match merged.get("alert_at") {
            Some(raw) => Thresholds::parse(raw).unwrap_or_else(|e| {
                problems.push(format!("alert_at={raw:?}: {e}; no alert"));
                Thresholds::default()
            }),
            None => Thresholds::default(),
        };
        let unit = match merged.get("unit").map(|u| u.trim()) {
            None | Some("") => None,
            Some(u)
                if u.len() <= 30
                    && u.chars().all(|c| c.is_alphabetic() || c == ' ' || c == '-') =>
            {
                Some(u.to_owned())
            }
            Some(u) => {
                problems.push(format!(
                    "unit={u:?} is not a word of at most 30 letters; ignored"
                ));
                None
            }
        };
        let predictors = match merged.get("predictors").map(|s| s.trim()) {
            None | Some("") => Predictors::all(),
            Some(raw) => Predictors::parse(raw, None).unwrap_or_else(|e| {
                problems.push(format!("predictors={raw:?}: {e}; no predictor unlocked"));
                Predictors::none()
            }),
        };
        let rules = Self {
            predictors,
            quota,
            credits,
            duration_days,
            rate_limit,
            alert_at,
            alert_credits_below,
            unit,
        };
        (rules, problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PredictorTag;

    #[test]
    fn a_plan_names_its_unit_or_counts_predictions() {
        let (rules, _) = PlanRules::from_metadata(Some(r#"{"unit":"sessions"}"#), None);
        assert_eq!(rules.unit(), "sessions");
        let (rules, problems) = PlanRules::from_metadata(Some(r#"{"unit":"<b>x</b>"}"#), None);
        assert_eq!((rules.unit(), problems.len()), ("predictions", 1));
    }

    #[test]
    fn alert_thresholds_are_percentages_of_the_limit() {
        let (rules, problems) = PlanRules::from_metadata(Some(r#"{"alert_at":"100, 80%"}"#), None);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rules.alert_at.iter().collect::<Vec<_>>(), [80, 100]);
        assert_eq!(rules.alert_at.to_string(), "80,100");
        let (rules, problems) = PlanRules::from_metadata(Some(r#"{"alert_at":"0,120"}"#), None);
        assert!(rules.alert_at.is_empty());
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn no_metadata_means_every_predictor_unlimited() {
        let (rules, problems) = PlanRules::from_metadata(Some("{}"), None);
        assert!(problems.is_empty());
        assert_eq!(rules.predictors, Predictors::all());
        assert_eq!(
            (rules.quota, rules.credits, rules.rate_limit),
            (None, None, None)
        );
    }

    #[test]
    fn price_metadata_wins_over_product_metadata() {
        let product = r#"{"quota":"100","predictors":"@acme/*","rate_limit":"60"}"#;
        let price = r#"{"quota":"1,000"}"#;
        let (rules, problems) = PlanRules::from_metadata(Some(product), Some(price));
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(rules.quota, Some(1000));
        assert_eq!(rules.rate_limit, Some(60));
        assert!(
            rules
                .predictors
                .matches(&PredictorTag::parse("@acme/x").unwrap())
        );
    }

    #[test]
    fn unreadable_values_are_ignored_and_reported() {
        let (rules, problems) =
            PlanRules::from_metadata(Some(r#"{"quota":"lots","predictors":"sdxl"}"#), None);
        assert_eq!(rules.quota, None);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            !rules
                .predictors
                .matches(&PredictorTag::parse("@acme/sdxl").unwrap())
        );
    }
}
