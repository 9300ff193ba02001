//! Use counted in memory and written behind in batches, so the hot path never waits on the
//! database. A crash loses at most what was counted since the last flush (one interval).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::FastMap;
use super::id::Id;
use crate::store::{CounterDelta, HourlyDelta, MeterDelta, UsageBatch, UsageRow};

/// An entitlement id and the start of one of its periods.
type CounterKey = (Id, i64);
/// One key's use in one hour.
struct HourSlot {
    customer_id: Arc<str>,
    /// The count per tag (a few tags: a list beats a map).
    tags: Vec<(Box<str>, u64)>,
    /// The last use in this hour (0: not known; a restored batch sets it).
    last: i64,
}

impl HourSlot {
    fn new(customer_id: Arc<str>) -> Self {
        Self {
            customer_id,
            tags: Vec::new(),
            last: 0,
        }
    }
}

/// Counters that outlive view reloads, keyed by entitlement and period start.
#[derive(Default)]
pub struct UsageBook {
    counters: RwLock<FastMap<CounterKey, Arc<Counter>>>,
    activity: Mutex<Activity>,
    windows: RwLock<FastMap<Id, Arc<RateWindow>>>,
}

struct Counter {
    customer_id: Arc<str>,
    /// The Billing Meter event name, for use of a metered price.
    meter: OnceLock<Arc<str>>,
    /// Best known total for the period: what the database held when last read plus what this
    /// process has counted since. Never decreases.
    used: AtomicU64,
    /// Counted here and not yet written.
    unflushed: AtomicU64,
}

#[derive(Default)]
struct Activity {
    /// Per key and hour; each key's last use is the latest of its slots.
    hourly: FastMap<(Id, i64), HourSlot>,
}

/// Predictions in the current minute, packed as `minute << 32 | count` for a lock-free update.
struct RateWindow(AtomicU64);

impl UsageBook {
    pub fn used(&self, entitlement: &Id, period_start: i64) -> u64 {
        self.counters
            .read()
            .expect("usage lock poisoned")
            .get(&(entitlement.clone(), period_start))
            .map_or(0, |c| c.used.load(Ordering::Acquire))
    }

    /// Counts one use unless that would pass `cap`; exact under any concurrency.
    pub fn try_take(
        &self,
        entitlement: &Id,
        period_start: i64,
        customer_id: &Arc<str>,
        cap: Option<u64>,
        meter: Option<&Arc<str>>,
    ) -> bool {
        let counter = self.counter(entitlement, period_start, customer_id, meter);
        let taken = match cap {
            None => {
                counter.used.fetch_add(1, Ordering::AcqRel);
                true
            }
            Some(cap) => counter
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    (u < cap).then_some(u + 1)
                })
                .is_ok(),
        };
        if taken {
            counter.unflushed.fetch_add(1, Ordering::AcqRel);
        }
        taken
    }

    /// Takes a slot in the customer's current minute, or says there is none left.
    pub fn try_rate(&self, customer_id: &Id, per_minute: u32, now: i64) -> bool {
        let window = {
            let read = self.windows.read().expect("rate lock poisoned");
            read.get(customer_id).cloned()
        };
        let window = window.unwrap_or_else(|| {
            let mut write = self.windows.write().expect("rate lock poisoned");
            Arc::clone(
                write
                    .entry(customer_id.clone())
                    .or_insert_with(|| Arc::new(RateWindow(AtomicU64::new(0)))),
            )
        });
        let minute = (now.max(0) / 60) as u64;
        window
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                let count = if packed >> 32 == minute {
                    packed & 0xFFFF_FFFF
                } else {
                    0
                };
                (count < u64::from(per_minute)).then_some(minute << 32 | (count + 1))
            })
            .is_ok()
    }

    /// Records an allowed prediction for the owner's reports (per hour, tag and key).
    pub fn record(&self, key_id: &Id, customer_id: &Arc<str>, tag: &str, now: i64) {
        let hour = now - now.rem_euclid(3_600);
        let mut activity = self.activity.lock().expect("activity lock poisoned");
        let slot = activity
            .hourly
            .entry((key_id.clone(), hour))
            .or_insert_with(|| HourSlot::new(Arc::clone(customer_id)));
        add_to_tag(&mut slot.tags, tag, 1);
        slot.last = slot.last.max(now);
    }

    /// Takes everything counted since the last flush (the per-hour activity only when
    /// `with_activity`). Give it back with [`Self::restore`] if it could not be written.
    pub fn take_batch(&self, now: i64, with_activity: bool) -> UsageBatch {
        let mut meters = Vec::new();
        let counters = self
            .counters
            .read()
            .expect("usage lock poisoned")
            .iter()
            .filter_map(|((entitlement, period_start), counter)| {
                let n = counter.unflushed.swap(0, Ordering::AcqRel);
                if n > 0
                    && let Some(event_name) = counter.meter.get()
                {
                    meters.push(MeterDelta {
                        customer_id: counter.customer_id.to_string(),
                        event_name: event_name.to_string(),
                        value: n as i64,
                    });
                }
                (n > 0).then(|| CounterDelta {
                    entitlement: entitlement.to_string(),
                    period_start: *period_start,
                    customer_id: counter.customer_id.to_string(),
                    used: n as i64,
                })
            })
            .collect();
        let activity = if with_activity {
            std::mem::take(&mut *self.activity.lock().expect("activity lock poisoned"))
        } else {
            Activity::default()
        };
        let mut last_used: FastMap<Id, i64> = FastMap::default();
        let mut hourly = Vec::with_capacity(activity.hourly.len());
        for ((key_id, hour), slot) in activity.hourly {
            if slot.last > 0 {
                let last = last_used.entry(key_id.clone()).or_insert(slot.last);
                *last = (*last).max(slot.last);
            }
            hourly.extend(slot.tags.into_iter().map(|(tag, count)| HourlyDelta {
                hour,
                tag: tag.into(),
                key_id: key_id.to_string(),
                customer_id: slot.customer_id.to_string(),
                count: count as i64,
            }));
        }
        let last_used = last_used
            .into_iter()
            .map(|(key_id, at)| (key_id.to_string(), at))
            .collect();
        UsageBatch {
            at: now,
            counters,
            hourly,
            last_used,
            meters,
        }
    }

    /// Puts back a batch that failed to be written, so the next flush tries again (meter
    /// reports are derived from the counters again then).
    pub fn restore(&self, batch: UsageBatch) {
        for delta in batch.counters {
            let counter = self.counter(
                &Id::from(delta.entitlement),
                delta.period_start,
                &Arc::from(delta.customer_id),
                None,
            );
            counter
                .unflushed
                .fetch_add(delta.used as u64, Ordering::AcqRel);
        }
        let mut activity = self.activity.lock().expect("activity lock poisoned");
        for h in batch.hourly {
            let slot = activity
                .hourly
                .entry((Id::from(h.key_id), h.hour))
                .or_insert_with(|| HourSlot::new(Arc::from(h.customer_id)));
            add_to_tag(&mut slot.tags, &h.tag, h.count as u64);
        }
        // A key's last use was counted in that hour's slot, restored just above.
        for (key_id, at) in batch.last_used {
            if let Some(slot) = activity
                .hourly
                .get_mut(&(Id::from(key_id), at - at.rem_euclid(3_600)))
            {
                slot.last = slot.last.max(at);
            }
        }
    }

    /// Folds in totals read from the database (which include other processes' flushed use).
    pub fn merge(&self, rows: &[UsageRow]) {
        for row in rows {
            let counter = self.counter(
                &Id::new(&row.entitlement),
                row.period_start,
                &Arc::from(row.customer_id.as_str()),
                None,
            );
            let stored = row.used.max(0) as u64;
            let pending = counter.unflushed.load(Ordering::Acquire);
            counter.used.fetch_max(stored + pending, Ordering::AcqRel);
        }
    }

    /// The counter of an entitlement's period, created on first use. A counter first made
    /// from the database learns its meter (if any) on its first counted use.
    fn counter(
        &self,
        entitlement: &Id,
        period_start: i64,
        customer_id: &Arc<str>,
        meter: Option<&Arc<str>>,
    ) -> Arc<Counter> {
        let key = (entitlement.clone(), period_start);
        let found = self
            .counters
            .read()
            .expect("usage lock poisoned")
            .get(&key)
            .cloned();
        let counter = found.unwrap_or_else(|| {
            let mut counters = self.counters.write().expect("usage lock poisoned");
            Arc::clone(counters.entry(key).or_insert_with(|| {
                Arc::new(Counter {
                    customer_id: Arc::clone(customer_id),
                    meter: OnceLock::new(),
                    used: AtomicU64::new(0),
                    unflushed: AtomicU64::new(0),
                })
            }))
        });
        if let Some(meter) = meter {
            counter.meter.get_or_init(|| Arc::clone(meter));
        }
        counter
    }
}

fn add_to_tag(tags: &mut Vec<(Box<str>, u64)>, tag: &str, n: u64) {
    match tags.iter_mut().find(|(t, _)| **t == *tag) {
        Some((_, count)) => *count += n,
        None => tags.push((tag.into(), n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Id, Arc<str>) {
        (Id::new("g1"), Arc::from("cus_1"))
    }

    #[test]
    fn taking_stops_exactly_at_the_cap_across_threads() {
        let book = Arc::new(UsageBook::default());
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let book = Arc::clone(&book);
                    s.spawn(move || {
                        let (e, c) = ids();
                        (0..100)
                            .filter(|_| book.try_take(&e, 0, &c, Some(250), None))
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 250);
        let batch = book.take_batch(0, true);
        assert_eq!(batch.counters.len(), 1);
        assert_eq!(batch.counters[0].used, 250);
    }

    #[test]
    fn a_restored_batch_is_flushed_again_and_merging_never_lowers_a_count() {
        let book = UsageBook::default();
        let (e, c) = ids();
        for _ in 0..3 {
            assert!(book.try_take(&e, 7, &c, None, None));
        }
        let key = Id::new("key_1");
        book.record(&key, &c, "@acme/a", 3_700);
        book.record(&key, &c, "@acme/b", 7_300);
        book.record(&key, &c, "@acme/b", 7_200);
        let batch = book.take_batch(10, true);
        assert_eq!(batch.hourly.len(), 2, "one row per key, hour and tag");
        assert_eq!(
            batch.last_used,
            [("key_1".to_owned(), 7_300)],
            "the last use is the latest over the hours"
        );
        assert!(
            book.take_batch(11, true).is_empty(),
            "a batch is taken once"
        );
        book.restore(batch.clone());
        let again = book.take_batch(12, true);
        assert_eq!(again.counters, batch.counters);
        let sorted = |b: &UsageBatch| {
            let mut rows: Vec<_> = b
                .hourly
                .iter()
                .map(|h| (h.hour, h.tag.clone(), h.count))
                .collect();
            rows.sort();
            rows
        };
        assert_eq!(sorted(&again), sorted(&batch));
        assert_eq!(again.last_used, batch.last_used);
        let row = |used| UsageRow {
            entitlement: "g1".into(),
            period_start: 7,
            customer_id: "cus_1".into(),
            used,
        };
        book.merge(&[row(1)]);
        assert_eq!(
            book.used(&e, 7),
            3,
            "a stale database total does not lower the count"
        );
        book.merge(&[row(10)]);
        assert_eq!(book.used(&e, 7), 10, "other processes' use is folded in");
    }

    #[test]
    fn the_rate_window_allows_the_limit_per_minute() {
        let book = UsageBook::default();
        let c = Id::new("cus_1");
        let allowed = (0..5).filter(|_| book.try_rate(&c, 3, 600)).count();
        assert_eq!(allowed, 3);
        assert!(book.try_rate(&c, 3, 660), "a new minute opens a new window");
    }
}
