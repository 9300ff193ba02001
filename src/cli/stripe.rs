use std::io::{IsTerminal, Write};
use std::sync::Arc;

use crate::config::Settings;
use crate::domain::calendar;
use crate::store::{Db, Inbox, Mirror};
use crate::stripe::Syncer;

/// `tollbooth sync`: the full reconcile, with progress on a terminal and a report at the end.
pub async fn sync(store: Arc<Db>, settings: &Settings) -> anyhow::Result<()> {
    let api = settings.stripe_api()?.ok_or_else(|| {
        anyhow::anyhow!("STRIPE_SECRET_KEY is not set: there is nothing to sync from")
    })?;
    let syncer = Syncer::new(api, store as Arc<dyn Mirror>);
    let terminal = std::io::stderr().is_terminal();
    let progress = |step: &str| {
        if terminal {
            eprint!("\r\x1b[2KSyncing {step}…");
            let _ = std::io::stderr().flush();
        }
    };
    let report = syncer.reconcile(&progress).await;
    if terminal {
        eprint!("\r\x1b[2K");
    }
    println!("Synced from {}: {}.", settings.stripe_api_base, report?);
    Ok(())
}

/// `tollbooth events`: what the webhook worker could not process yet, and why.
pub async fn failed_events(store: &dyn Inbox) -> anyhow::Result<()> {
    let events = store.failed_events().await?;
    if events.is_empty() {
        println!("No failing webhook events.");
        return Ok(());
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
    Ok(())
}
