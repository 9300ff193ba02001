//! Writes counted use behind the hot path once per interval, and reads back what other
//! instances wrote, so a quota shared by several instances is overshot by at most what they
//! allow in about two intervals (docs/operations.md, "Several machines").

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Ticker;
use crate::clock::unix_now;
use crate::domain::random_base62;
use crate::gate::Gate;
use crate::health::Health;
use crate::store::{Db, Usage};

/// Read back a little further than the last read: other instances' clocks and commits lag.
const OVERLAP: i64 = 5;
/// Activity (hourly report counts, each key's last use) is written about this often: it needs
/// no exactness, and under load it is as many rows as the counters or more.
const ACTIVITY_EVERY: Duration = Duration::from_secs(60);

pub async fn run(
    gate: Arc<Gate>,
    store: Arc<Db>,
    health: Arc<Health>,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    let mut ticker = Ticker::every(every, stop);
    let instance = format!("inst_{}", random_base62(16));
    let mut last_read = unix_now();
    let mut activity_written = tokio::time::Instant::now();
    while ticker.next().await {
        let with_activity = activity_written.elapsed() >= ACTIVITY_EVERY;
        if with_activity {
            activity_written = tokio::time::Instant::now();
        }
        match gate.flush(store.as_ref(), unix_now(), with_activity).await {
            Ok(_) => health.usage_written(unix_now()),
            Err(e) => {
                health.usage_write_failed(unix_now());
                tracing::warn!(error = ?e, "Failed to flush usage; will retry");
            }
        }
        let now = unix_now();
        // Alone, this instance's counts are the whole truth: nothing to read back.
        match store.heartbeat(&instance, now).await {
            Ok(0) => {
                last_read = now;
                continue;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "Failed to record this instance's heartbeat"),
        }
        match store.usage_since(last_read - OVERLAP).await {
            Ok(rows) => {
                gate.merge_usage(&rows);
                last_read = now;
            }
            Err(e) => tracing::warn!(error = ?e, "Failed to read other instances' usage"),
        }
    }
    if let Err(e) = store.leave(&instance).await {
        tracing::warn!(error = ?e, "Failed to remove this instance's heartbeat");
    }
}

/// The last flush, after the HTTP workers have stopped. Handlers run on the workers' own
/// runtimes, and pooled PostgreSQL connections they opened die with them; a failed attempt
/// discards such a connection, so a few attempts reach one opened here.
pub async fn final_flush(gate: &Gate, store: &dyn Usage) -> anyhow::Result<usize> {
    let mut attempt = 0;
    loop {
        match gate.flush(store, unix_now(), true).await {
            Err(e) if attempt < 10 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "Shutdown flush failed; trying another connection");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}
