//! `tollbooth audit`: the audit log, newest first, as the owner reads it at a terminal.

use crate::domain::calendar;
use crate::store::Audit;

/// Rows shown when no `--limit` is given.
pub const DEFAULT_LIMIT: i64 = 50;

pub async fn run(store: &dyn Audit, customer: Option<&str>, limit: i64) -> anyhow::Result<()> {
    if limit < 1 {
        anyhow::bail!("--limit must be at least 1 (it was {limit})");
    }
    let rows = store.audit_log(customer, limit).await?;
    if rows.is_empty() {
        match customer {
            Some(id) => println!("Nothing in the audit log for customer {id}."),
            None => println!("The audit log is empty."),
        }
        return Ok(());
    }
    println!(
        "{:<20} {:<28} {:<22} {:<24} {:<28} detail",
        "when (UTC)", "who", "what", "customer", "object"
    );
    for row in rows {
        println!(
            "{:<20} {:<28} {:<22} {:<24} {:<28} {}",
            calendar::date_time(row.at),
            row.actor,
            row.action,
            row.customer_id.as_deref().unwrap_or("-"),
            row.subject.as_deref().unwrap_or("-"),
            row.detail.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
