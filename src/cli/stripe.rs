use std::io::{IsTerminal, Write};

use crate::config::Settings;
use crate::domain::calendar;
use crate::ledger::Ledger;
use crate::store::{Db, Inbox, MeterOutbox};

/// `tollbooth sync`: the full reconcile, with progress on a terminal and a report at the end.
pub async fn sync(ledger: &Ledger, settings: &Settings) -> anyhow::Result<()> {
    if !ledger.selling() {
        anyhow::bail!("STRIPE_SECRET_KEY is not set: there is nothing to sync from");
    }
    let terminal = std::io::stderr().is_terminal();
    let progress = |step: &str| {
        if terminal {
            eprint!("\r\x1b[2KSyncing {step}…");
            let _ = std::io::stderr().flush();
        }
    };
    let report = ledger.reconcile(&progress).await;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    println!("Synced from {}: {}.", settings.stripe_api_base, report?);
    Ok(())
}

/// `tollbooth events`: what the webhook worker could not process yet, and why.
pub async fn failed_events(store: &Db) -> anyhow::Result<()> {
    let events = store.failed_events().await?;
    if events.is_empty() {
        println!("No failing webhook events.");
    }
    for event in events {
        println!(
            "{}  {}  received {}  attempts {}\n    {}",
            event.id,
            event.event_type,
            calendar::date_time(event.received_at),
            event.attempts,
            event.last_error.as_deref().unwrap_or("-")
        );
    }
    let aside = store.meter_reports_set_aside(100).await?;
    if !aside.is_empty() {
        println!(
            "\nMeter reports Stripe refused for good (set aside, not sent again; the use they \
             report is in `tollbooth usage`):"
        );
    }
    for report in aside {
        println!(
            "{}  {}  {} for {}  queued {}  set aside {}\n    {}",
            report.id,
            report.event_name,
            report.value,
            report.customer_id,
            calendar::date_time(report.created_at),
            calendar::date_time(report.set_aside_at),
            report.last_error.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
