//! What the background jobs last managed, for `/readyz`: the usage flusher and the ledger
//! poller record each round's success or failure here, and the readiness check reads it
//! without waiting on anything.

use std::sync::atomic::{AtomicI64, Ordering};

/// The state of the parts that run behind the hot path. Times are Unix seconds; 0 is never.
#[derive(Default)]
pub struct Health {
    usage: Part,
    view: Part,
}

#[derive(Default)]
struct Part {
    last_ok: AtomicI64,
    failing_since: AtomicI64,
}

impl Part {
    fn ok(&self, now: i64) {
        self.last_ok.store(now, Ordering::Release);
        self.failing_since.store(0, Ordering::Release);
    }

    fn failed(&self, now: i64) {
        let _ = self
            .failing_since
            .compare_exchange(0, now, Ordering::AcqRel, Ordering::Acquire);
    }

    fn read(&self) -> PartState {
        PartState {
            last_ok: Some(self.last_ok.load(Ordering::Acquire)).filter(|t| *t > 0),
            failing_since: Some(self.failing_since.load(Ordering::Acquire)).filter(|t| *t > 0),
        }
    }
}

/// One part as last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartState {
    /// The last round that succeeded.
    pub last_ok: Option<i64>,
    /// Since when every round has failed (`None`: the last one succeeded).
    pub failing_since: Option<i64>,
}

impl Health {
    /// Counted use was written (or there was nothing to write).
    pub fn usage_written(&self, now: i64) {
        self.usage.ok(now);
    }

    pub fn usage_write_failed(&self, now: i64) {
        self.usage.failed(now);
    }

    /// The view was brought up to the ledger's version (or found current).
    pub fn view_refreshed(&self, now: i64) {
        self.view.ok(now);
    }

    pub fn view_refresh_failed(&self, now: i64) {
        self.view.failed(now);
    }

    pub fn usage(&self) -> PartState {
        self.usage.read()
    }

    pub fn view(&self) -> PartState {
        self.view.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_part_says_since_when_until_it_succeeds_again() {
        let health = Health::default();
        assert_eq!(health.usage().last_ok, None);
        health.usage_written(10);
        health.usage_write_failed(11);
        health.usage_write_failed(12);
        assert_eq!(
            health.usage(),
            PartState {
                last_ok: Some(10),
                failing_since: Some(11)
            }
        );
        health.usage_written(13);
        assert_eq!(health.usage().failing_since, None);
        assert_eq!(health.view().last_ok, None, "parts are apart");
    }
}
