//! The background jobs, one file each, all driven by one small run loop ([`Ticker`]): a round
//! every period (and at once when a bell rings), until the service stops.

pub mod alerts;
pub mod ledger_poller;
pub mod meter_reporter;
pub mod priority;
pub mod reconcile;
pub mod usage_flusher;
pub mod usage_journal;
pub mod webhook_worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

/// When a job's next round is due.
pub struct Ticker {
    interval: Interval,
    bell: Option<Arc<Notify>>,
    stop: watch::Receiver<bool>,
}

impl Ticker {
    /// A round every `period`, the first at once. A round that runs late delays the next one
    /// rather than bunching them.
    pub fn every(period: Duration, stop: watch::Receiver<bool>) -> Self {
        Self::starting(Instant::now(), period, stop)
    }

    /// A round every `period`, the first after one period.
    pub fn after(period: Duration, stop: watch::Receiver<bool>) -> Self {
        Self::first_in(period, period, stop)
    }

    /// A round every `period`, the first after `first`.
    pub fn first_in(first: Duration, period: Duration, stop: watch::Receiver<bool>) -> Self {
        Self::starting(Instant::now() + first, period, stop)
    }

    fn starting(start: Instant, period: Duration, stop: watch::Receiver<bool>) -> Self {
        let mut interval = tokio::time::interval_at(start, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            interval,
            bell: None,
            stop,
        }
    }

    /// Also a round as soon as `bell` rings.
    pub fn or_when(mut self, bell: Option<Arc<Notify>>) -> Self {
        self.bell = bell;
        self
    }

    /// Waits for the next round; `false` once the service is stopping.
    pub async fn next(&mut self) -> bool {
        let bell = self.bell.clone();
        tokio::select! {
            _ = self.interval.tick() => true,
            _ = async { bell.as_ref().expect("guarded").notified().await }, if bell.is_some() => true,
            _ = self.stop.changed() => false,
        }
    }
}
