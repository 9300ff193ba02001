//! What the service counts for the owner's metrics: authorizations by outcome and reason with
//! their latency, webhook events by type and result, the usage flush. Read by the metrics
//! listener (`http/metrics.rs`), which adds what it reads at scrape time (the view, the inbox,
//! Stripe's calls).
//!
//! Authorizations are counted on the hot path, so each worker thread counts into its own copy
//! ([`PerThread`]): a relaxed add to a cache line no other worker writes, no lock, no
//! allocation. The scrape sums the copies.

mod exposition;

pub use exposition::{Exposition, Histogram};

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::gate::DenyReason;
use crate::per_thread::PerThread;

/// Upper bounds of the authorization latency buckets, in seconds: from a warm answer (tens of
/// microseconds) to a cold one read from the database.
pub const LATENCY_BOUNDS: [f64; 10] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01, 0.05, 0.25, 1.0,
];
/// Upper bounds of the usage flush's duration buckets, in seconds.
pub const FLUSH_BOUNDS: [f64; 9] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Outcomes counted: allowed, each [`DenyReason`], a body that could not be read, and an
/// answer that failed (the database could not be read before the view was loaded).
const OUTCOMES: usize = DenyReason::LABELS.len() + 3;

/// How an authorization ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome(usize);

impl Outcome {
    pub const ALLOWED: Self = Self(0);
    /// The body was not Function's two strings (refused before any decision).
    pub const BAD_REQUEST: Self = Self(OUTCOMES - 2);
    /// No answer could be made (a 500).
    pub const FAILED: Self = Self(OUTCOMES - 1);

    pub fn refused(reason: &DenyReason) -> Self {
        Self(reason.index() + 1)
    }
}

/// One worker thread's authorization counts.
struct Authorizations {
    outcomes: [AtomicU64; OUTCOMES],
    /// Per latency bucket (not cumulative), the last one past every bound.
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    nanos: AtomicU64,
}

impl Default for Authorizations {
    fn default() -> Self {
        Self {
            outcomes: std::array::from_fn(|_| AtomicU64::new(0)),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            nanos: AtomicU64::new(0),
        }
    }
}

#[derive(Default)]
pub struct Metrics {
    authorizations: PerThread<Authorizations>,
    /// Webhook events worked, by type and result.
    webhook_events: Mutex<BTreeMap<(String, &'static str), u64>>,
    flush: Mutex<Histogram>,
    flush_failures: AtomicU64,
}

impl Metrics {
    /// Counts one authorization answered in `took`.
    pub fn authorization(&self, outcome: Outcome, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let seconds = took.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.authorizations.with_mine(|mine| {
            mine.outcomes[outcome.0].fetch_add(1, Ordering::Relaxed);
            mine.buckets[bucket].fetch_add(1, Ordering::Relaxed);
            mine.nanos.fetch_add(nanos, Ordering::Relaxed);
        });
    }

    /// A webhook event worked: `processed` or not (it will be retried).
    pub fn webhook_event(&self, event_type: &str, processed: bool) {
        let result = if processed { "processed" } else { "failed" };
        *self
            .webhook_events
            .lock()
            .expect("webhook metrics lock poisoned")
            .entry((event_type.to_owned(), result))
            .or_default() += 1;
    }

    /// One round of the usage flush, and whether it wrote what it had.
    pub fn usage_flush(&self, took: Duration, written: bool) {
        self.flush
            .lock()
            .expect("flush metrics lock poisoned")
            .observe(&FLUSH_BOUNDS, took.as_secs_f64());
        if !written {
            self.flush_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Refusals counted since the process started, by reason label (every reason, and
    /// `bad_request`), for the usage flush to keep per hour.
    pub fn refusals(&self) -> Vec<(&'static str, u64)> {
        let counts = self.outcomes();
        DenyReason::LABELS
            .iter()
            .enumerate()
            .map(|(i, reason)| (*reason, counts[i + 1]))
            .chain(std::iter::once((
                "bad_request",
                counts[Outcome::BAD_REQUEST.0],
            )))
            .collect()
    }

    /// Every thread's outcome counts, summed.
    fn outcomes(&self) -> [u64; OUTCOMES] {
        let mut outcomes = [0_u64; OUTCOMES];
        for copy in self.authorizations.all() {
            for (total, n) in outcomes.iter_mut().zip(&copy.outcomes) {
                *total += n.load(Ordering::Relaxed);
            }
        }
        outcomes
    }

    /// Writes everything counted here.
    pub fn write(&self, out: &mut Exposition) {
        let outcomes = self.outcomes();
        let mut latency = Histogram {
            counts: vec![0; LATENCY_BOUNDS.len() + 1],
            sum: 0.0,
        };
        let mut nanos = 0_u64;
        for copy in self.authorizations.all() {
            for (total, n) in latency.counts.iter_mut().zip(&copy.buckets) {
                *total += n.load(Ordering::Relaxed);
            }
            nanos = nanos.wrapping_add(copy.nanos.load(Ordering::Relaxed));
        }
        latency.sum = nanos as f64 / 1e9;
        out.counter(
            "tollbooth_authorizations_total",
            "Authorizations answered, by result (allowed, refused, error) and the refusal's reason.",
            std::iter::once((vec![("result", "allowed")], outcomes[Outcome::ALLOWED.0]))
                .chain(DenyReason::LABELS.iter().enumerate().map(|(i, reason)| {
                    (vec![("result", "refused"), ("reason", *reason)], outcomes[i + 1])
                }))
                .chain([
                    (
                        vec![("result", "refused"), ("reason", "bad_request")],
                        outcomes[Outcome::BAD_REQUEST.0],
                    ),
                    (vec![("result", "error")], outcomes[Outcome::FAILED.0]),
                ]),
        );
        out.histogram(
            "tollbooth_authorization_duration_seconds",
            "Time from the authorize handler's start to its answer.",
            &LATENCY_BOUNDS,
            &latency,
        );
        let events = self
            .webhook_events
            .lock()
            .expect("webhook metrics lock poisoned")
            .clone();
        out.counter(
            "tollbooth_webhook_events_total",
            "Webhook events worked, by event type and result (failed ones are retried).",
            events.iter().map(|((event_type, result), n)| {
                (vec![("type", event_type.as_str()), ("result", *result)], *n)
            }),
        );
        let flush = self
            .flush
            .lock()
            .expect("flush metrics lock poisoned")
            .clone();
        out.histogram(
            "tollbooth_usage_flush_duration_seconds",
            "Time each round of the usage flush took to write counted use.",
            &FLUSH_BOUNDS,
            &flush,
        );
        out.counter(
            "tollbooth_usage_flush_failures_total",
            "Rounds of the usage flush that could not write (the use is kept and written later).",
            [(vec![], self.flush_failures.load(Ordering::Relaxed))],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorizations_are_counted_by_outcome_and_latency_across_threads() {
        let metrics = std::sync::Arc::new(Metrics::default());
        let worker = {
            let metrics = std::sync::Arc::clone(&metrics);
            std::thread::spawn(move || {
                metrics.authorization(Outcome::ALLOWED, Duration::from_micros(30));
                metrics.authorization(
                    Outcome::refused(&DenyReason::UnknownKey),
                    Duration::from_micros(300),
                );
            })
        };
        worker.join().unwrap();
        metrics.authorization(Outcome::ALLOWED, Duration::from_secs(3));
        metrics.authorization(Outcome::BAD_REQUEST, Duration::from_micros(70));
        let mut out = Exposition::default();
        metrics.write(&mut out);
        let text = out.finish();
        assert!(text.contains("tollbooth_authorizations_total{result=\"allowed\"} 2\n"));
        assert!(text.contains(
            "tollbooth_authorizations_total{result=\"refused\",reason=\"unknown_key\"} 1\n"
        ));
        assert!(text.contains(
            "tollbooth_authorizations_total{result=\"refused\",reason=\"bad_request\"} 1\n"
        ));
        assert!(text.contains(
            "tollbooth_authorizations_total{result=\"refused\",reason=\"quota_used\"} 0\n"
        ));
        // 30 µs in the first bucket, 70 µs in the second, 300 µs in the fourth, 3 s past all.
        assert!(
            text.contains("tollbooth_authorization_duration_seconds_bucket{le=\"0.00005\"} 1\n")
        );
        assert!(
            text.contains("tollbooth_authorization_duration_seconds_bucket{le=\"0.0001\"} 2\n")
        );
        assert!(
            text.contains("tollbooth_authorization_duration_seconds_bucket{le=\"0.0005\"} 3\n")
        );
        assert!(text.contains("tollbooth_authorization_duration_seconds_bucket{le=\"1\"} 3\n"));
        assert!(text.contains("tollbooth_authorization_duration_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("tollbooth_authorization_duration_seconds_count 4\n"));
        assert!(text.contains("tollbooth_authorization_duration_seconds_sum 3.0004"));
    }

    /// The hot path's counting takes no lock once a thread has its copy: the list of copies is
    /// held here while a warm thread counts; a lock taken there would stall it.
    #[test]
    fn a_warm_thread_counts_without_a_lock_another_thread_holds() {
        use std::sync::mpsc;
        let metrics = std::sync::Arc::new(Metrics::default());
        let (warm_tx, warm_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let worker = {
            let metrics = std::sync::Arc::clone(&metrics);
            std::thread::spawn(move || {
                metrics.authorization(Outcome::ALLOWED, Duration::from_micros(20));
                warm_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                for _ in 0..1_000 {
                    metrics.authorization(Outcome::ALLOWED, Duration::from_micros(20));
                }
                done_tx.send(()).unwrap();
            })
        };
        warm_rx.recv().unwrap();
        let held = metrics.authorizations.list();
        go_tx.send(()).unwrap();
        let done = done_rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        assert_eq!(done, Ok(()), "the worker stalled on the list's lock");
        worker.join().unwrap();
        let mut out = Exposition::default();
        metrics.write(&mut out);
        assert!(
            out.finish()
                .contains("tollbooth_authorizations_total{result=\"allowed\"} 1001\n")
        );
    }

    #[test]
    fn webhook_events_and_flushes_are_counted_by_result() {
        let metrics = Metrics::default();
        metrics.webhook_event("invoice.paid", true);
        metrics.webhook_event("invoice.paid", true);
        metrics.webhook_event("invoice.paid", false);
        metrics.usage_flush(Duration::from_millis(3), true);
        metrics.usage_flush(Duration::from_millis(30), false);
        let mut out = Exposition::default();
        metrics.write(&mut out);
        let text = out.finish();
        assert!(text.contains(
            "tollbooth_webhook_events_total{type=\"invoice.paid\",result=\"processed\"} 2\n"
        ));
        assert!(text.contains(
            "tollbooth_webhook_events_total{type=\"invoice.paid\",result=\"failed\"} 1\n"
        ));
        assert!(text.contains("tollbooth_usage_flush_duration_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("tollbooth_usage_flush_duration_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("tollbooth_usage_flush_failures_total 1\n"));
    }
}
