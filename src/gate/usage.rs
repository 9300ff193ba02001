//! Use counted in memory and written behind in batches, so the hot path never waits on the
//! database. What a quota, credits or a Billing Meter rests on is written every flush, so a
//! crash loses at most one interval of it; the counts of unlimited plans and the per-hour
//! activity are reports, written with the activity (about once a minute).
//!
//! Everything is keyed by slots of the gate's [`Ids`] and held inline in the maps (no
//! allocation per counter or per hour of a key); ids become text again only when a batch is
//! taken for writing.

mod hourly;

use std::hash::BuildHasher as _;
use std::ops::Deref;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use hashbrown::HashTable;

use super::DenyReason;
use super::FastMap;
use super::names::Ids;
use super::slots::Slots;
use crate::per_thread::PerThread;
use crate::store::{
    CounterDelta, HourlyDelta, IdText, KeyRefusalDelta, MeterDelta, UsageBatch, UsageRow,
};
use hourly::Hourly;

/// An entitlement slot and the start of one of its periods, in Unix seconds as 32 bits
/// (periods start between 1970 and 2106; 0 is the lifetime of credits).
type CounterKey = (u32, u32);

fn counter_key(entitlement: u32, period_start: i64) -> CounterKey {
    (entitlement, u32::try_from(period_start).unwrap_or(u32::MAX))
}

/// What a count goes to besides its row: nothing (it only reports, so it waits for the
/// once-a-minute write), a cap (written every flush), or, for any other value, the slot of a
/// Billing Meter event name (written every flush and reported to Stripe).
const REPORT_ONLY: u32 = u32::MAX;
const CAPPED: u32 = u32::MAX - 1;

/// Counters that outlive view reloads, keyed by entitlement and period start.
#[derive(Default)]
pub struct UsageBook {
    /// Read without a lock on the hot path (`Slots`); a counter made in the last second is
    /// behind a mutex until the next flush publishes it.
    counters: Slots<CounterKey, Counter>,
    /// Per-hour activity, a shard per thread that records it: an allowed prediction touches
    /// only its own thread's shard, never a lock another worker takes (the flush takes each
    /// shard once a minute). `restored` holds what a failed write gave back.
    activity: Shards,
    /// Predictions in the current minute per customer slot, packed as `minute << 32 | count`
    /// for a lock-free update.
    windows: Slots<u32, AtomicU64>,
}

struct Counter {
    /// Best known total for the period: what the database held when last read plus what this
    /// process has counted since. Decreases only when a unit not yet flushed is given back.
    used: AtomicU64,
    /// Counted here and not yet written.
    unflushed: AtomicU32,
    /// `REPORT_ONLY`, `CAPPED` or a meter slot. A counter first made from the database learns
    /// it on its first counted use.
    rests_on: AtomicU32,
}

impl Default for Counter {
    fn default() -> Self {
        Self {
            used: AtomicU64::new(0),
            unflushed: AtomicU32::new(0),
            rests_on: AtomicU32::new(REPORT_ONLY),
        }
    }
}

/// Allowed predictions for the owner's reports, per key, hour and tag, since the last time
/// they were written. Hours and tags are numbered together per batch (a batch holds a few of
/// each), so an entry is 12 bytes ([`Hourly`]): a key used in a minute takes one for each tag
/// it ran.
#[derive(Default)]
struct Activity {
    columns: Columns,
    /// (key slot, column: an hour and a tag) -> (count, last use as seconds into the hour).
    hourly: Hourly,
    /// Refusals of known keys: (key slot, hour since the epoch, reason index) -> count.
    refused: FastMap<(u32, u32, u8), u32>,
}

/// The hours and tags of one batch, each pair numbered in the order it first came. Tags are
/// an owner's predictors, a few, and each allowed prediction finds its pair here: tags are
/// kept as text, so finding one is a hash of the hour and the text and a comparison (the ids'
/// packing, [`super::names`], would spell the text first).
#[derive(Default)]
struct Columns {
    index: HashTable<u32>,
    /// Each column's hour since the epoch and tag.
    pairs: Vec<(u32, IdText)>,
    state: foldhash::quality::RandomState,
}

impl Columns {
    /// The number of the pair `hour` and `tag`, given it if it is new.
    fn intern(&mut self, hour: u32, tag: &str) -> u32 {
        let Self {
            index,
            pairs,
            state,
        } = self;
        let hash = state.hash_one((hour, tag));
        let same = |&column: &u32| {
            let (h, t) = &pairs[column as usize];
            *h == hour && t == tag
        };
        if let Some(&column) = index.find(hash, same) {
            return column;
        }
        let column = pairs.len() as u32;
        pairs.push((hour, IdText::from(tag)));
        index.insert_unique(hash, column, |&column| {
            let (h, t) = &pairs[column as usize];
            state.hash_one((*h, t.as_str()))
        });
        column
    }

    fn get(&self, column: u32) -> &(u32, IdText) {
        &self.pairs[column as usize]
    }
}

/// Use taken from the book for one flush, still by slot: written out as text by
/// [`Taken::batch`], and given back whole by [`UsageBook::restore`] if the write fails.
pub struct Taken {
    /// Each counter with what was counted on it, and what that count rests on.
    counters: Vec<(CounterKey, u32, u32)>,
    activity: Activity,
}

impl Taken {
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.activity.hourly.is_empty()
            && self.activity.refused.is_empty()
    }

    /// What the store writes, with ids as text, at `now`. `ids` gives read access to the
    /// ids, taken again for every [`ROWS_PER_READ`] rows (see [`with_text`]).
    pub fn batch<G: Deref<Target = Ids>>(&self, ids: impl Fn() -> G, now: i64) -> UsageBatch {
        let mut meters = Vec::new();
        let counters = with_text(&ids, &self.counters, |ids, &(key, n, rests_on)| {
            let delta = counter_delta(ids, key, u64::from(n));
            if rests_on != REPORT_ONLY && rests_on != CAPPED {
                meters.push(MeterDelta {
                    customer_id: delta.customer_id.clone(),
                    event_name: ids.meters.get(rests_on),
                    value: i64::from(n),
                });
            }
            delta
        });
        let mut last_used: FastMap<u32, i64> = FastMap::default();
        let columns = &self.activity.columns;
        let hourly = with_text(
            &ids,
            self.activity.hourly.iter(),
            |ids, ((key, column), (count, into_hour))| {
                let (hour, tag) = columns.get(column);
                let hour = i64::from(*hour) * 3_600;
                let last = last_used.entry(key).or_default();
                *last = (*last).max(hour + i64::from(into_hour));
                HourlyDelta {
                    hour,
                    tag: tag.clone(),
                    key_id: ids.keys.get(key),
                    customer_id: ids.key_customer(key),
                    count: i64::from(count),
                }
            },
        );
        let last_used = with_text(&ids, &last_used, |ids, (&key, &at)| (ids.keys.get(key), at));
        let refused = with_text(
            &ids,
            &self.activity.refused,
            |ids, (&(key, hour, reason), &count)| KeyRefusalDelta {
                hour: i64::from(hour) * 3_600,
                key_id: ids.keys.get(key),
                customer_id: ids.key_customer(key),
                reason: IdText::new_static(DenyReason::LABELS[usize::from(reason)]),
                count: i64::from(count),
            },
        );
        UsageBatch {
            at: now,
            journal: None,
            counters,
            hourly,
            last_used,
            meters,
            refused,
        }
    }
}

/// Counts logged but not yet added to the stored counters, by counter: what an instance alone
/// on the database folds into them about once a minute (`usage_flusher.rs`). Held off the hot
/// path, by the flusher.
#[derive(Default)]
pub struct Unfolded {
    counts: FastMap<CounterKey, u64>,
}

impl Unfolded {
    /// Adds the counters of a batch that was logged.
    pub fn add(&mut self, taken: &Taken) {
        for &(key, n, _) in &taken.counters {
            *self.counts.entry(key).or_default() += u64::from(n);
        }
    }

    /// The counts with ids as text, as the store adds them (`ids` as for [`Taken::batch`]).
    pub fn rows<G: Deref<Target = Ids>>(&self, ids: impl Fn() -> G) -> Vec<CounterDelta> {
        with_text(&ids, &self.counts, |ids, (&key, &n)| {
            counter_delta(ids, key, n)
        })
    }
}

/// Rows given their ids' text under one read of the ids at most. A minute's rows are a few
/// for every key used in it, and a view patch, which adds ids, waits for the read: taken
/// again for each of these, the patch waits for one of them, not for the minute's rows.
const ROWS_PER_READ: usize = 4_096;

/// `items` made rows by `row`, which reads their ids' text from `ids`, read again every
/// [`ROWS_PER_READ`] rows. Slots never change meaning, so rows made under different reads
/// agree.
fn with_text<I: IntoIterator, T, G: Deref<Target = Ids>>(
    ids: &impl Fn() -> G,
    items: I,
    mut row: impl FnMut(&Ids, I::Item) -> T,
) -> Vec<T>
where
    I::IntoIter: ExactSizeIterator,
{
    let mut items = items.into_iter();
    let mut rows = Vec::with_capacity(items.len());
    while items.len() > 0 {
        let ids = ids();
        rows.extend(
            items
                .by_ref()
                .take(ROWS_PER_READ)
                .map(|item| row(&ids, item)),
        );
    }
    rows
}

/// A counter's count with ids as text, as the store writes it.
fn counter_delta(ids: &Ids, (entitlement, period_start): CounterKey, n: u64) -> CounterDelta {
    CounterDelta {
        entitlement: ids.entitlements.get(entitlement),
        period_start: i64::from(period_start),
        customer_id: ids.entitlement_customer(entitlement),
        used: i64::try_from(n).unwrap_or(i64::MAX),
    }
}

/// Per-hour activity, recorded by each thread in its own shard and merged by the flush.
#[derive(Default)]
struct Shards {
    mine: PerThread<Mutex<Activity>>,
    /// What a failed write gave back, merged into the next take.
    restored: Mutex<Activity>,
}

impl Shards {
    /// Runs `f` on this thread's shard, made on its first use.
    fn with_mine<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        self.mine
            .with_mine(|shard| f(&mut shard.lock().expect("activity lock poisoned")))
    }

    /// Everything recorded since the last take, from every shard; each starts again with room
    /// for as many entries as it had, so the hot path does not grow its table step by step
    /// every minute.
    fn take(&self) -> Activity {
        let mut all = std::mem::take(&mut *self.restored.lock().expect("activity lock poisoned"));
        for shard in self.mine.all() {
            let taken = {
                let mut activity = shard.lock().expect("activity lock poisoned");
                let room = activity.hourly.len();
                let refused_room = activity.refused.len();
                std::mem::replace(
                    &mut *activity,
                    Activity {
                        columns: Columns::default(),
                        hourly: Hourly::with_capacity(room),
                        refused: FastMap::with_capacity_and_hasher(
                            refused_room,
                            Default::default(),
                        ),
                    },
                )
            };
            all.absorb(taken);
        }
        all
    }
}

impl Activity {
    fn add(&mut self, key: u32, hour: u32, tag: &str, count: u32, into_hour: u16) {
        let column = self.columns.intern(hour, tag);
        self.add_to(key, column, count, into_hour);
    }

    fn add_to(&mut self, key: u32, column: u32, count: u32, into_hour: u16) {
        self.hourly.add(key, column, count, into_hour);
    }

    fn absorb(&mut self, other: Activity) {
        // The other's columns as this one numbers them, each found once.
        let columns: Vec<u32> = (other.columns.pairs.iter())
            .map(|(hour, tag)| self.columns.intern(*hour, tag))
            .collect();
        for ((key, column), (count, last)) in other.hourly.iter() {
            self.add_to(key, columns[column as usize], count, last);
        }
        for (entry, count) in other.refused {
            *self.refused.entry(entry).or_default() += count;
        }
    }
}

impl UsageBook {
    pub fn used(&self, entitlement: u32, period_start: i64) -> u64 {
        self.counters
            .get(&counter_key(entitlement, period_start))
            .map_or(0, |c| c.used.load(Ordering::Acquire))
    }

    /// Makes the counters and rate windows made since the last call readable without a lock
    /// (the flush does it every interval; a whole ledger's load too).
    pub fn publish(&self) {
        self.counters.publish();
        self.windows.publish();
    }

    /// Holds every lock the book has, as the flush, a new key and a failed write take them.
    #[cfg(test)]
    pub fn hold_locks(&self) -> impl Sized + '_ {
        (
            self.counters.lock_pending(),
            self.windows.lock_pending(),
            self.activity.mine.list(),
            self.activity
                .restored
                .lock()
                .expect("activity lock poisoned"),
        )
    }

    /// Counts one use unless that would pass `cap`; exact under any concurrency.
    pub fn try_take(
        &self,
        entitlement: u32,
        period_start: i64,
        cap: Option<u64>,
        meter: Option<u32>,
    ) -> bool {
        let rests_on = match (meter, cap) {
            (Some(meter), _) => meter,
            (None, Some(_)) => CAPPED,
            (None, None) => REPORT_ONLY,
        };
        self.with_counter(counter_key(entitlement, period_start), |counter| {
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
                if counter.rests_on.load(Ordering::Relaxed) != rests_on {
                    counter.rests_on.store(rests_on, Ordering::Release);
                }
            }
            taken
        })
    }

    /// Gives back one use taken by [`Self::try_take`] for a prediction that was then refused.
    /// Exact unless a flush took the count in between; then the count stays one too high,
    /// which errs only towards refusing.
    pub fn give_back(&self, entitlement: u32, period_start: i64) {
        self.with_counter(counter_key(entitlement, period_start), |counter| {
            if counter
                .unflushed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                counter.used.fetch_sub(1, Ordering::AcqRel);
            }
        });
    }

    /// Takes a slot in the customer's current minute, or says there is none left.
    pub fn try_rate(&self, customer: u32, per_minute: u32, now: i64) -> bool {
        let minute = (now.max(0) / 60) as u64;
        let take = |window: &AtomicU64| {
            window
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                    let count = if packed >> 32 == minute {
                        packed & 0xFFFF_FFFF
                    } else {
                        0
                    };
                    (count < u64::from(per_minute)).then_some(minute << 32 | (count + 1))
                })
                .is_ok()
        };
        take(self.windows.get_or_insert(customer))
    }

    /// Records an allowed prediction for the owner's reports (per hour, tag and key).
    pub fn record(&self, key: u32, tag: &str, now: i64) {
        let now = now.max(0);
        let hour = (now / 3_600) as u32;
        let into_hour = (now % 3_600) as u16;
        self.activity
            .with_mine(|activity| activity.add(key, hour, tag, 1, into_hour));
    }

    /// Records a refusal of a known key, for the owner's view of that customer (per hour, key
    /// and reason). Only refusals take this path; an allowed prediction never does.
    pub fn record_refusal(&self, key: u32, reason: &DenyReason, now: i64) {
        let hour = (now.max(0) / 3_600) as u32;
        let reason = u8::try_from(reason.index()).unwrap_or(u8::MAX);
        self.activity.with_mine(|activity| {
            *activity.refused.entry((key, hour, reason)).or_default() += 1;
        });
    }

    /// When each of `keys` was last used as the per-hour activity not yet written holds it
    /// (written about once a minute, so the account page's "last used" can agree with counts
    /// that are live). Each shard is locked for a few lookups (keys × its columns of the last
    /// three hours), never scanned.
    pub fn unwritten_last_use(&self, keys: &[u32], now: i64) -> Vec<Option<i64>> {
        let hour = (now.max(0) / 3_600) as u32;
        let mut last = vec![None; keys.len()];
        let mut look = |activity: &Activity| {
            for (column, (h, _)) in activity.columns.pairs.iter().enumerate() {
                if !(hour.saturating_sub(2)..=hour).contains(h) {
                    continue;
                }
                for (i, &key) in keys.iter().enumerate() {
                    if let Some((_, into)) = activity.hourly.get(key, column as u32) {
                        let at = i64::from(*h) * 3_600 + i64::from(into);
                        last[i] = last[i].max(Some(at));
                    }
                }
            }
        };
        look(
            &self
                .activity
                .restored
                .lock()
                .expect("activity lock poisoned"),
        );
        for shard in self.activity.mine.all() {
            look(&shard.lock().expect("activity lock poisoned"));
        }
        last
    }

    /// Takes what was counted since the last flush: the counts a cap or a meter rests on
    /// always, the rest (unlimited plans' counts, per-hour activity) only `with_activity`.
    /// Give it back with [`Self::restore`] if it could not be written.
    pub fn take(&self, with_activity: bool) -> Taken {
        self.publish();
        let mut counters = Vec::new();
        self.counters.for_each(|key, counter| {
            let rests_on = counter.rests_on.load(Ordering::Acquire);
            if !with_activity && rests_on == REPORT_ONLY {
                return;
            }
            let n = counter.unflushed.swap(0, Ordering::AcqRel);
            if n > 0 {
                counters.push((key, n, rests_on));
            }
        });
        let activity = if with_activity {
            self.activity.take()
        } else {
            Activity::default()
        };
        Taken { counters, activity }
    }

    /// Puts back use that could not be written, so the next flush tries again.
    pub fn restore(&self, taken: Taken) {
        for (key, n, _) in taken.counters {
            self.with_counter(key, |counter| {
                counter.unflushed.fetch_add(n, Ordering::AcqRel);
            });
        }
        self.activity
            .restored
            .lock()
            .expect("activity lock poisoned")
            .absorb(taken.activity);
    }

    /// Folds in totals read from the database (which include other processes' flushed use).
    /// Rows of entitlements the gate has never seen are left out: nothing can spend them,
    /// and reading that customer again brings them back with the rest.
    pub fn merge(&self, ids: &Ids, rows: &[UsageRow]) {
        for row in rows {
            let Some(entitlement) = ids.entitlements.find(&row.entitlement) else {
                continue;
            };
            let stored = row.used.max(0) as u64;
            self.with_counter(counter_key(entitlement, row.period_start), |counter| {
                let pending = u64::from(counter.unflushed.load(Ordering::Acquire));
                counter.used.fetch_max(stored + pending, Ordering::AcqRel);
            });
        }
    }

    /// Bytes the counters and rate windows hold.
    pub fn heap_bytes(&self) -> usize {
        self.counters.heap_bytes() + self.windows.heap_bytes()
    }

    /// Runs `f` on the counter of an entitlement's period, made on first use.
    fn with_counter<T>(&self, key: CounterKey, f: impl FnOnce(&Counter) -> T) -> T {
        f(self.counters.get_or_insert(key))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn rows_read_the_ids_again_for_every_rows_per_read() {
        let ids = Ids::default();
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            &ids
        };
        let items: Vec<usize> = (0..2 * ROWS_PER_READ + 1).collect();
        let rows = with_text(&read, &items, |_, &i| i);
        assert_eq!(rows, items, "every item, in order");
        assert_eq!(reads.get(), 3, "so a view patch waits for one read's rows");
        assert!(with_text(&read, &Vec::<usize>::new(), |_, &i| i).is_empty());
        assert_eq!(reads.get(), 3, "nothing to write reads nothing");
    }

    /// Ids with one customer, one entitlement ("g1") and one key ("key_1").
    fn ids() -> (Ids, u32, u32) {
        let mut ids = Ids::default();
        let customer = ids.customers.intern("cus_1");
        let entitlement = ids.entitlement("g1", customer);
        let key = ids.key("key_1", customer);
        (ids, entitlement, key)
    }

    #[test]
    fn the_last_unwritten_use_of_a_key_is_read_from_every_shard() {
        let (_, _, key) = ids();
        let book = Arc::new(UsageBook::default());
        let now = 1_795_996_800 + 1_234;
        book.record(key, "@acme/a", now - 3_600);
        let other = Arc::clone(&book);
        std::thread::spawn(move || other.record(key, "@acme/b", now))
            .join()
            .unwrap();
        assert_eq!(
            book.unwritten_last_use(&[key, key + 1], now),
            [Some(now), None]
        );
        book.take(true);
        assert_eq!(
            book.unwritten_last_use(&[key], now),
            [None],
            "written: the database has it"
        );
    }

    #[test]
    fn a_unit_given_back_can_be_taken_again_but_not_once_a_flush_took_it() {
        let (_, e, _) = ids();
        let book = UsageBook::default();
        assert!(book.try_take(e, 0, Some(1), None));
        book.give_back(e, 0);
        assert_eq!(book.used(e, 0), 0);
        assert!(book.try_take(e, 0, Some(1), None));
        let taken = book.take(false);
        assert_eq!(taken.counters.len(), 1);
        book.give_back(e, 0);
        assert_eq!(book.used(e, 0), 1, "a written unit stays counted");
        assert!(!book.try_take(e, 0, Some(1), None));
    }

    #[test]
    fn taking_stops_exactly_at_the_cap_across_threads() {
        let (ids, e, _) = ids();
        let book = Arc::new(UsageBook::default());
        let allowed: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let book = Arc::clone(&book);
                    s.spawn(move || {
                        (0..100)
                            .filter(|_| book.try_take(e, 0, Some(250), None))
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(allowed, 250);
        let batch = book.take(true).batch(|| &ids, 0);
        assert_eq!(batch.counters.len(), 1);
        assert_eq!(batch.counters[0].used, 250);
        assert_eq!(batch.counters[0].entitlement, "g1");
        assert_eq!(batch.counters[0].customer_id, "cus_1");
    }

    #[test]
    fn a_restored_batch_is_flushed_again_and_merging_never_lowers_a_count() {
        let (ids, e, key) = ids();
        let book = UsageBook::default();
        for _ in 0..3 {
            assert!(book.try_take(e, 7, None, None));
        }
        book.record(key, "@acme/a", 3_700);
        book.record(key, "@acme/b", 7_300);
        book.record(key, "@acme/b", 7_200);
        let taken = book.take(true);
        let batch = taken.batch(|| &ids, 10);
        assert_eq!(batch.hourly.len(), 2, "one row per key, hour and tag");
        assert_eq!(
            batch.last_used,
            [("key_1".into(), 7_300)],
            "the last use is the latest over the hours"
        );
        assert!(book.take(true).is_empty(), "a batch is taken once");
        book.restore(taken);
        let again = book.take(true).batch(|| &ids, 12);
        assert_eq!(again.counters, batch.counters);
        let sorted = |b: &UsageBatch| {
            let mut rows: Vec<_> = b
                .hourly
                .iter()
                .map(|h| {
                    (
                        h.hour,
                        h.tag.clone(),
                        h.key_id.clone(),
                        h.customer_id.clone(),
                        h.count,
                    )
                })
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
        book.merge(&ids, &[row(1)]);
        assert_eq!(
            book.used(e, 7),
            3,
            "a stale database total does not lower the count"
        );
        book.merge(&ids, &[row(10)]);
        assert_eq!(book.used(e, 7), 10, "other processes' use is folded in");
    }

    #[test]
    fn unlimited_counts_wait_for_the_activity_flush_and_capped_ones_do_not() {
        let (mut ids, capped, _) = ids();
        let customer = ids.customers.intern("cus_1");
        let unlimited = ids.entitlement("si_unlimited", customer);
        let book = UsageBook::default();
        assert!(book.try_take(capped, 0, Some(10), None));
        assert!(book.try_take(unlimited, 7, None, None));
        let every_interval = book.take(false).batch(|| &ids, 10);
        let names = |b: &UsageBatch| -> Vec<String> {
            b.counters
                .iter()
                .map(|c| c.entitlement.to_string())
                .collect()
        };
        assert_eq!(names(&every_interval), ["g1"]);
        let with_activity = book.take(true).batch(|| &ids, 11);
        assert_eq!(names(&with_activity), ["si_unlimited"]);
        assert_eq!(with_activity.counters[0].used, 1);
    }

    #[test]
    fn use_of_a_metered_price_is_reported_to_its_meter() {
        let (mut ids, e, _) = ids();
        let meter = ids.meters.intern("predictions");
        let book = UsageBook::default();
        assert!(book.try_take(e, 7, None, Some(meter)));
        assert!(book.try_take(e, 7, None, Some(meter)));
        let batch = book.take(false).batch(|| &ids, 10);
        assert_eq!(
            batch.meters,
            [MeterDelta {
                customer_id: "cus_1".into(),
                event_name: "predictions".into(),
                value: 2,
            }]
        );
    }

    #[test]
    fn refusals_of_a_known_key_are_taken_per_hour_and_reason_and_given_back_on_failure() {
        let (ids, _, key) = ids();
        let book = UsageBook::default();
        let quota = DenyReason::QuotaUsed {
            limit: 5,
            resets_on: 86_400,
            unit: None,
        };
        for _ in 0..3 {
            book.record_refusal(key, &quota, 7_300);
        }
        book.record_refusal(key, &DenyReason::NoPlan, 7_300);
        book.record(key, "@acme/a", 7_300);
        let taken = book.take(true);
        let batch = taken.batch(|| &ids, 7_400);
        let mut rows: Vec<_> = batch
            .refused
            .iter()
            .map(|r| (r.reason.as_str(), r.count, r.hour, r.key_id.as_str()))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("no_plan", 1, 7_200, "key_1"),
                ("quota_used", 3, 7_200, "key_1")
            ]
        );
        assert_eq!(
            batch.last_used,
            [("key_1".into(), 7_300)],
            "refusals are not use"
        );
        book.restore(taken);
        assert_eq!(
            book.take(true).batch(|| &ids, 7_500).refused.len(),
            2,
            "kept"
        );
    }

    #[test]
    fn activity_recorded_on_many_threads_is_taken_whole_once() {
        let (ids, _, key) = ids();
        let book = Arc::new(UsageBook::default());
        std::thread::scope(|s| {
            for _ in 0..4 {
                let book = Arc::clone(&book);
                s.spawn(move || {
                    for n in 0..100 {
                        book.record(key, if n % 2 == 0 { "@acme/a" } else { "@acme/b" }, 3_600);
                    }
                });
            }
        });
        let batch = book.take(true).batch(|| &ids, 10);
        let mut rows: Vec<_> = batch
            .hourly
            .iter()
            .map(|h| (h.tag.to_string(), h.count))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            [("@acme/a".to_owned(), 200), ("@acme/b".to_owned(), 200)]
        );
        assert!(book.take(true).is_empty(), "taken once");
    }

    /// One per entitlement and period: with the view, most of the gate's memory. A counter
    /// takes 16 bytes where it lives and 12 in the table that finds it.
    #[test]
    fn a_counter_takes_16_bytes_and_12_in_its_index() {
        assert_eq!(size_of::<Counter>(), 16);
        assert_eq!(size_of::<(CounterKey, u32)>(), 12);
    }

    #[test]
    fn activity_across_an_hour_is_kept_per_hour_and_tag() {
        let (ids, _, key) = ids();
        let book = UsageBook::default();
        let hour = 1_796_000_400; // on the hour
        book.record(key, "@acme/a", hour - 1);
        book.record(key, "@acme/a", hour + 5);
        book.record(key, "@acme/b", hour + 7);
        book.record(key, "@acme/a", hour + 9);
        assert_eq!(
            book.unwritten_last_use(&[key], hour + 10),
            vec![Some(hour + 9)]
        );
        let batch = book.take(true).batch(|| &ids, hour + 10);
        let mut rows: Vec<_> = (batch.hourly.iter())
            .map(|h| (h.hour, h.tag.to_string(), h.count))
            .collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![
                (hour - 3_600, "@acme/a".to_owned(), 1),
                (hour, "@acme/a".to_owned(), 2),
                (hour, "@acme/b".to_owned(), 1),
            ]
        );
        assert_eq!(batch.last_used, vec![(ids.keys.get(key), hour + 9)]);
    }

    #[test]
    fn the_rate_window_allows_the_limit_per_minute() {
        let book = UsageBook::default();
        let allowed = (0..5).filter(|_| book.try_rate(1, 3, 600)).count();
        assert_eq!(allowed, 3);
        assert!(book.try_rate(1, 3, 660), "a new minute opens a new window");
    }
}
