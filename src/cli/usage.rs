//! `tollbooth usage`: predictions allowed per day, customer, key and predictor, with totals,
//! and authorizations refused per day and reason.

use std::collections::BTreeMap;

use crate::clock::unix_now;
use crate::domain::{calendar, thousands};
use crate::store::{RefusalDay, Reports, UsageDay};

/// Days shown when no `--since` is given (today included).
const DEFAULT_DAYS: i64 = 30;

pub async fn run(
    store: &dyn Reports,
    customer: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> anyhow::Result<()> {
    let day = |flag: &str, text: &str| {
        calendar::parse_date(text)
            .ok_or_else(|| anyhow::anyhow!("{flag} {text:?} is not a date: give it as YYYY-MM-DD"))
    };
    let today = calendar::day_start(unix_now());
    let since = match since {
        Some(text) => day("--since", text)?,
        None => today - (DEFAULT_DAYS - 1) * 86_400,
    };
    // `--until` names the last day shown.
    let until = match until {
        Some(text) => day("--until", text)? + 86_400,
        None => today + 86_400,
    };
    if until <= since {
        anyhow::bail!("--until must not be before --since");
    }
    let rows = store.usage_by_day(customer, since, until).await?;
    let period = format!(
        "{} to {}",
        calendar::date(since),
        calendar::date(until - 86_400)
    );
    allowed(&rows, &period);
    // Refusals are counted for the whole service: an unknown key has no customer.
    if customer.is_none() {
        refused(&store.refusals_by_day(since, until).await?, &period);
    }
    Ok(())
}

fn allowed(rows: &[UsageDay], period: &str) {
    if rows.is_empty() {
        println!(
            "No authorizations allowed from {period} (use reaches the database about once a minute)."
        );
        return;
    }
    println!(
        "{:<10}  {:<24} {:<24} {:<32} {:>12}",
        "day (UTC)", "customer", "key", "predictor", "allowed"
    );
    let mut per_day: BTreeMap<i64, i64> = BTreeMap::new();
    for row in rows {
        *per_day.entry(row.day).or_default() += row.predictions;
        println!(
            "{:<10}  {:<24} {:<24} {:<32} {:>12}",
            calendar::date(row.day),
            row.customer_id,
            row.key_id,
            row.tag,
            thousands(row.predictions.max(0) as u64)
        );
    }
    println!();
    for (day, n) in &per_day {
        println!(
            "{}  {:>12}",
            calendar::date(*day),
            thousands((*n).max(0) as u64)
        );
    }
    let total: i64 = per_day.values().sum();
    println!(
        "Total from {period}: {} allowed (use reaches the database about once a minute).",
        authorizations(total)
    );
}

/// `1 authorization`, `2,500 authorizations`: what quotas, credits and meters count (one per
/// remote prediction, one per predictor loaded to run locally; docs/function.md).
fn authorizations(n: i64) -> String {
    let n = n.max(0) as u64;
    format!(
        "{} authorization{}",
        thousands(n),
        if n == 1 { "" } else { "s" }
    )
}

fn refused(rows: &[RefusalDay], period: &str) {
    println!();
    if rows.is_empty() {
        println!("No authorization refused from {period}.");
        return;
    }
    println!(
        "{:<10}  {:<24} {:>12}",
        "day (UTC)", "refused because", "refusals"
    );
    let mut per_reason: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        *per_reason.entry(&row.reason).or_default() += row.refusals;
        println!(
            "{:<10}  {:<24} {:>12}",
            calendar::date(row.day),
            row.reason,
            thousands(row.refusals.max(0) as u64)
        );
    }
    let reasons: Vec<String> = per_reason
        .iter()
        .map(|(reason, n)| format!("{reason} {}", thousands((*n).max(0) as u64)))
        .collect();
    println!("Refused from {period}: {}.", reasons.join(", "));
}
