//! Writes counted use behind the hot path once per interval, and reads back what other
//! instances wrote, so a quota shared by several instances is overshot by at most what they
//! allow in about two intervals (docs/operations.md, "Several machines"). While writes fail,
//! what is pending is kept in the usage journal on local disk (`usage_journal.rs`).
//!
//! Alone on the database, an instance appends each interval's counts to the usage log (one
//! row) and adds them to the counters about once a minute, from the sums it keeps: random keys
//! touch counters all over their table, so adding to them every second rewrote most of its
//! pages every second. Once another instance is seen, the counters are written every interval
//! again (the others read them) and the log is folded at once.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, watch};

use super::Ticker;
use super::alerts::Touched;
use super::usage_journal::Journal;
use crate::clock::unix_now;
use crate::gate::{Gate, Unfolded};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::store::{Db, HourlyDelta, IdText, Usage, UsageBatch};

/// Read back a little further than the last read: other instances' clocks and commits lag.
const OVERLAP: i64 = 5;
/// Activity (hourly report counts, each key's last use) is written about this often: it needs
/// no exactness, and under load it is as many rows as the counters or more.
const ACTIVITY_EVERY: Duration = Duration::from_secs(60);
/// Alone on the database, logged counts are added to the counters about this often.
const FOLD_EVERY: Duration = Duration::from_secs(60);
/// An instance whose heartbeat is older than this is not running (`Usage::heartbeat`).
const ALIVE_FOR: i64 = 10;
/// Activity rows written in one transaction at most. A minute's activity is a row or two for
/// every key used in it, and SQLite has one writer: written in slices, each its own
/// transaction, a webhook waits for one slice rather than the whole minute's.
const ACTIVITY_SLICE: usize = 5_000;
/// Counters added to the stored counters in one transaction at most, when a fold adds a
/// minute's counts (as many as the customers whose use it holds).
const FOLD_SLICE: usize = 5_000;
/// The minute's slices are spread over about this long: each interval writes its share of
/// what waits, at least one slice, so another write (a webhook's several) meets about one
/// slice an interval rather than the minute's slices back to back, and what a minute queued
/// is written well before the next minute queues more.
const SPREAD_OVER: Duration = Duration::from_secs(30);

/// How many of `waiting` slices to write now: with `spread` (the interval), that interval's
/// share; without, all of them (the stop, or a fold another instance waits for).
fn this_time(waiting: usize, spread: Option<Duration>) -> usize {
    spread.map_or(usize::MAX, |every| share(waiting, every))
}

/// How many of `waiting` slices an interval of `every` writes: its share of [`SPREAD_OVER`],
/// at least one.
fn share(waiting: usize, every: Duration) -> usize {
    let intervals = (SPREAD_OVER.as_millis() / every.as_millis().max(1)).max(1);
    waiting
        .div_ceil(usize::try_from(intervals).unwrap_or(usize::MAX))
        .max(1)
}

/// What the flusher works with, besides its interval.
pub struct Flusher {
    pub gate: Arc<Gate>,
    pub store: Arc<Db>,
    pub journal: Arc<Mutex<Journal>>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// Where the customers whose limited use was written are told to the alerts, when on.
    pub touched: Option<Arc<Touched>>,
    /// This process's name among the instances on the database.
    pub instance: String,
}

/// Counts this instance logged and has not yet added to the counters.
struct Log {
    /// This process's name among the instances, which its rows carry.
    instance: String,
    unfolded: Unfolded,
    /// Rows appended to the usage log since the last fold.
    rows: usize,
    since: tokio::time::Instant,
    /// The last fold's slices not yet added to the counters, by seq.
    slices: VecDeque<i64>,
}

impl Log {
    fn new(instance: String) -> Self {
        Self {
            instance,
            unfolded: Unfolded::default(),
            rows: 0,
            since: tokio::time::Instant::now(),
            slices: VecDeque::new(),
        }
    }

    /// Whether a fold is due: slices are left, or rows were logged and it is time. Alone, it
    /// waits while the minute's activity is being written (`activity_waiting`), so the two
    /// heavy writes of a minute (the activity, the fold) never share an interval; with another
    /// instance, which reads the counters, it is due at once.
    fn due(&self, alone: bool, activity_waiting: bool) -> bool {
        let waiting = !self.slices.is_empty()
            || (self.rows > 0 && (!alone || self.since.elapsed() >= FOLD_EVERY));
        waiting && !(alone && activity_waiting)
    }

    /// Adds the logged rows to the counters: their sum replaces them in the log, in slices
    /// (`FOLD_SLICE`), and each slice is added in a transaction of its own: this interval's
    /// share of them with `spread` (counted once the rows are cut into slices), else all. What
    /// fails or is left is kept for the next time: the rows, or the slices left.
    async fn fold(
        &mut self,
        gate: &Gate,
        store: &dyn Usage,
        spread: Option<Duration>,
    ) -> anyhow::Result<()> {
        if self.slices.is_empty() && self.rows > 0 {
            let counts = gate.unfolded_rows(&self.unfolded);
            let slices = store
                .compact_log(&self.instance, self.rows, &counts, FOLD_SLICE, unix_now())
                .await?;
            *self = Self {
                slices: slices.into(),
                ..Self::new(std::mem::take(&mut self.instance))
            };
        }
        for _ in 0..this_time(self.slices.len(), spread) {
            let Some(&seq) = self.slices.front() else {
                break;
            };
            // A slice another process folded first (a start folds every row) counts once, by it.
            store.fold_logged_row(seq, unix_now()).await?;
            self.slices.pop_front();
        }
        Ok(())
    }
}

pub async fn run(flusher: Flusher, every: Duration, stop: watch::Receiver<bool>) {
    let Flusher {
        gate,
        store,
        journal,
        health,
        metrics,
        touched,
        instance,
    } = flusher;
    let mut ticker = Ticker::every(every, stop);
    let mut refusals = Refusals::default();
    let mut last_read = unix_now();
    let mut activity_written = tokio::time::Instant::now();
    let mut log = Log::new(instance.clone());
    let mut activity = Slices::default();
    // Others seen at the last heartbeat; until one succeeds, not alone (writing the counters
    // themselves is right either way).
    let mut others = heartbeat(store.as_ref(), &instance).await;
    while ticker.next().await {
        let alone = others == Some(0);
        let with_activity = activity_written.elapsed() >= ACTIVITY_EVERY;
        if with_activity {
            activity_written = tokio::time::Instant::now();
        }
        let started = std::time::Instant::now();
        let mut journal = journal.lock().await;
        let flushed = flush(
            &gate,
            store.as_ref(),
            &mut journal,
            with_activity,
            touched.as_deref(),
            alone.then_some(&mut log),
            Some(&mut activity),
        )
        .await;
        drop(journal);
        let flushed = flushed.and(activity.write(store.as_ref(), Some(every)).await);
        let folded = if log.due(alone, !activity.waiting.is_empty()) {
            // With another instance, which reads the counters, the log is folded at once.
            log.fold(&gate, store.as_ref(), alone.then_some(every))
                .await
        } else {
            Ok(())
        };
        metrics.usage_flush(started.elapsed(), flushed.is_ok() && folded.is_ok());
        if let Err(e) = refusals.write(&metrics, store.as_ref(), unix_now()).await {
            tracing::warn!(error = ?e, "Failed to write refusal counts; will retry");
        }
        match flushed.and(folded) {
            Ok(_) => health.usage_written(unix_now()),
            Err(e) => {
                health.usage_write_failed(unix_now());
                tracing::warn!(error = ?e, "Failed to flush usage; will retry");
            }
        }
        let now = unix_now();
        others = heartbeat(store.as_ref(), &instance).await;
        // Alone, this instance's counts are the whole truth: nothing to read back.
        if others == Some(0) {
            last_read = now;
            continue;
        }
        // Rows an instance that stopped without folding them left in the log (about once a
        // minute: only a crash leaves any).
        if with_activity {
            match store
                .fold_left_behind(&instance, now - ALIVE_FOR, now)
                .await
            {
                Ok(rows) => gate.merge_usage(&rows),
                Err(e) => tracing::warn!(error = ?e, "Failed to fold use other instances left"),
            }
        }
        match store.usage_since(last_read - OVERLAP).await {
            Ok(rows) => {
                gate.merge_usage(&rows);
                last_read = now;
            }
            Err(e) => tracing::warn!(error = ?e, "Failed to read other instances' usage"),
        }
    }
    // The workers have stopped: what they refused last is counted, and what was logged is
    // added to the counters (if that fails, the next start does it).
    if let Err(e) = refusals.write(&metrics, store.as_ref(), unix_now()).await {
        tracing::warn!(error = ?e, "Failed to write the last refusal counts");
    }
    if let Err(e) = log.fold(&gate, store.as_ref(), None).await {
        tracing::warn!(error = ?e, "Failed to fold logged use; the next start will");
    }
    if let Err(e) = activity.write(store.as_ref(), None).await {
        tracing::warn!(error = ?e, "Failed to write the last activity; its reports lose it");
    }
    if let Err(e) = store.leave(&instance).await {
        tracing::warn!(error = ?e, "Failed to remove this instance's heartbeat");
    }
}

/// Says this instance is alive; returns how many others are (`None` if that failed).
async fn heartbeat(store: &dyn Usage, instance: &str) -> Option<i64> {
    match store.heartbeat(instance, unix_now()).await {
        Ok(others) => Some(others),
        Err(e) => {
            tracing::warn!(error = ?e, "Failed to record this instance's heartbeat");
            None
        }
    }
}

/// Refusals written so far, by reason, so each round writes only what was counted since (into
/// the hour it is written in). A round that fails leaves them for the next; a crash loses at
/// most one interval of them (they are reports, not limits).
#[derive(Default)]
struct Refusals {
    written: HashMap<&'static str, u64>,
}

impl Refusals {
    async fn write(
        &mut self,
        metrics: &Metrics,
        store: &dyn Usage,
        now: i64,
    ) -> anyhow::Result<()> {
        let counted = metrics.refusals();
        let new: Vec<(&'static str, i64)> = counted
            .iter()
            .filter_map(|&(reason, n)| {
                let since = n.saturating_sub(self.written.get(reason).copied().unwrap_or(0));
                (since > 0).then(|| (reason, i64::try_from(since).unwrap_or(i64::MAX)))
            })
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        store
            .add_refusals(now - now.rem_euclid(3_600), &new)
            .await?;
        self.written.extend(counted);
        Ok(())
    }
}

/// One flush: the batch is written marked with the journal it supersedes (its counters
/// appended to the usage log, when `log` is given); if the write fails, the batch goes back to
/// the counters and, whole, into the journal. With `slices`, the batch's per-hour activity and
/// last use are left out of that write and queued there once it succeeded.
async fn flush(
    gate: &Arc<Gate>,
    store: &dyn Usage,
    journal: &mut Journal,
    with_activity: bool,
    touched: Option<&Touched>,
    log: Option<&mut Log>,
    slices: Option<&mut Slices>,
) -> anyhow::Result<usize> {
    // A minute's use is a few rows for every key used in it, each given its ids' text: on the
    // runtime's thread, that long a stretch of work holds up the tasks queued behind it there
    // (a webhook's), so it runs on a thread of the blocking pool.
    let taken = {
        let gate = Arc::clone(gate);
        tokio::task::spawn_blocking(move || gate.take_use(unix_now(), with_activity)).await?
    };
    let Some(mut pending) = taken else {
        return Ok(0);
    };
    pending.batch.journal = journal.covering();
    let activity = slices.map(|slices| {
        (
            slices,
            std::mem::take(&mut pending.batch.hourly),
            std::mem::take(&mut pending.batch.last_used),
        )
    });
    let written = match &log {
        Some(log) => store.log_usage(&pending.batch, &log.instance).await,
        None => store.flush_usage(&pending.batch).await,
    };
    match written {
        Ok(true) => {
            journal.clear()?;
            if let Some((slices, hourly, last_used)) = activity {
                slices.queue(pending.batch.at, hourly, last_used).await;
            }
            if let Some(log) = log
                && !pending.batch.counters.is_empty()
            {
                pending.logged_into(&mut log.unfolded);
                log.rows += 1;
            }
            if let Some(touched) = touched {
                touched.add(
                    pending
                        .batch
                        .counters
                        .iter()
                        .map(|c| c.customer_id.as_str()),
                );
            }
            Ok(pending.predictions())
        }
        // The journal was applied already (it cannot be, in one process; if it ever is, the
        // counts go back and are written without it).
        Ok(false) => {
            journal.clear()?;
            gate.put_back(pending);
            anyhow::bail!("the usage journal was already applied; writing the counts again")
        }
        Err(e) => {
            // The batch goes into the journal whole, as the gate has it back.
            if let Some((_, hourly, last_used)) = activity {
                pending.batch.hourly = hourly;
                pending.batch.last_used = last_used;
            }
            if let Err(kept) = journal.keep(&pending.batch) {
                tracing::error!(error = ?kept, "Failed to keep pending use in the usage journal");
            }
            gate.put_back(pending);
            Err(e)
        }
    }
}

/// The last flush, after the HTTP workers have stopped. Handlers run on the workers' own
/// runtimes, and pooled PostgreSQL connections they opened die with them; a failed attempt
/// discards such a connection, so a few attempts reach one opened here. If the database still
/// cannot be written, the counts stay in the journal for the next start.
pub async fn final_flush(
    gate: &Arc<Gate>,
    store: &dyn Usage,
    journal: &mut Journal,
) -> anyhow::Result<usize> {
    let mut attempt = 0;
    loop {
        match flush(gate, store, journal, true, None, None, None).await {
            Err(e) if attempt < 10 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "Shutdown flush failed; trying another connection");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

/// Per-hour activity and last use already taken from the gate, waiting to be written one
/// slice per transaction (`ACTIVITY_SLICE`). They are reports: a slice that cannot be written
/// waits for the next interval, and a crash loses what waits, as it loses the activity the
/// gate holds between the once-a-minute writes.
#[derive(Default)]
struct Slices {
    waiting: VecDeque<UsageBatch>,
}

impl Slices {
    /// Queues a batch's activity in slices, each in the order of its table's key, so together
    /// the slices go through each table once. The sort runs on a thread of the blocking pool
    /// (a minute's activity is a row or two for every key used in it; see [`flush`]).
    async fn queue(&mut self, at: i64, hourly: Vec<HourlyDelta>, last_used: Vec<(IdText, i64)>) {
        let sorting = tokio::task::spawn_blocking(move || {
            let (mut hourly, mut last_used) = (hourly, last_used);
            hourly.sort_unstable_by(|a, b| a.table_key().cmp(&b.table_key()));
            last_used.sort_unstable();
            (hourly, last_used)
        });
        let (mut hourly, mut last_used) = sorting.await.expect("sorting the activity panicked");
        let slice = |hourly: Vec<HourlyDelta>, last_used: Vec<(IdText, i64)>| UsageBatch {
            at,
            hourly,
            last_used,
            ..UsageBatch::default()
        };
        while !hourly.is_empty() {
            let rest = hourly.split_off(hourly.len().min(ACTIVITY_SLICE));
            self.waiting
                .push_back(slice(std::mem::replace(&mut hourly, rest), Vec::new()));
        }
        while !last_used.is_empty() {
            let rest = last_used.split_off(last_used.len().min(ACTIVITY_SLICE));
            self.waiting
                .push_back(slice(Vec::new(), std::mem::replace(&mut last_used, rest)));
        }
    }

    /// Writes the waiting slices in order, each in its own transaction: this interval's share
    /// with `spread`, else all; stops at the first that fails, keeping it and the rest.
    async fn write(&mut self, store: &dyn Usage, spread: Option<Duration>) -> anyhow::Result<()> {
        for _ in 0..this_time(self.waiting.len(), spread) {
            let Some(slice) = self.waiting.front() else {
                break;
            };
            store.flush_usage(slice).await?;
            self.waiting.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::sql;

    /// One hour's activity of `n` keys, in the reverse of their order.
    fn hourly(n: usize) -> Vec<HourlyDelta> {
        (0..n)
            .rev()
            .map(|i| HourlyDelta {
                hour: 3_600,
                tag: "acme/model".into(),
                key_id: format!("key_{i:06}").into(),
                customer_id: "cus_1".into(),
                count: 1,
            })
            .collect()
    }

    #[tokio::test]
    async fn activity_is_queued_in_slices_in_the_order_of_each_table() {
        let mut slices = Slices::default();
        let last_used = vec![("key_b".into(), 2), ("key_a".into(), 1)];
        slices
            .queue(7, hourly(2 * ACTIVITY_SLICE + 1), last_used)
            .await;
        let sizes: Vec<_> = slices
            .waiting
            .iter()
            .map(|s| (s.hourly.len(), s.last_used.len(), s.at))
            .collect();
        assert_eq!(
            sizes,
            [
                (ACTIVITY_SLICE, 0, 7),
                (ACTIVITY_SLICE, 0, 7),
                (1, 0, 7),
                (0, 2, 7)
            ]
        );
        let keys: Vec<_> = slices
            .waiting
            .iter()
            .flat_map(|s| s.hourly.iter().map(|h| h.key_id.as_str()))
            .collect();
        assert!(keys.is_sorted(), "the slices go through the table once");
        assert_eq!(slices.waiting[3].last_used[0].0, "key_a");
    }

    #[test]
    fn alone_a_fold_waits_for_the_minutes_activity_to_be_written() {
        let mut log = Log::new("inst".into());
        assert!(!log.due(true, false), "nothing logged");
        log.rows = 3;
        assert!(!log.due(true, false), "logged less than a minute ago");
        assert!(
            log.due(false, true),
            "another instance reads the counters: at once"
        );
        log.since -= FOLD_EVERY;
        assert!(log.due(true, false));
        assert!(
            !log.due(true, true),
            "the activity's slices are written first"
        );
        log.rows = 0;
        log.slices.push_back(1);
        assert!(log.due(true, false), "slices left");
        assert!(!log.due(true, true));
    }

    /// A database of its own, and three slices of activity queued for it.
    async fn three_slices_queued() -> (tempfile::TempDir, Arc<Db>, Slices) {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        db.migrate().await.unwrap();
        let mut slices = Slices::default();
        slices
            .queue(7, hourly(3 * ACTIVITY_SLICE), Vec::new())
            .await;
        (dir, db, slices)
    }

    #[test]
    fn the_slices_are_spread_over_half_a_minute_of_intervals() {
        let second = Duration::from_secs(1);
        assert_eq!(share(30, second), 1, "one slice a second");
        assert_eq!(share(45, second), 2);
        assert_eq!(share(20, Duration::from_millis(100)), 1);
        assert_eq!(share(20, Duration::from_secs(10)), 7, "three intervals");
        assert_eq!(share(5, Duration::from_secs(3_600)), 5, "one interval");
    }

    /// An interval writes its share of the slices and leaves the rest, in order, for the next.
    #[tokio::test]
    async fn an_interval_writes_its_share_of_the_slices() {
        let (_dir, db, mut slices) = three_slices_queued().await;
        let rows = || async {
            let (n,): (i64,) = db
                .fetch_one(sql("SELECT COUNT(*) FROM usage_hourly"))
                .await
                .unwrap();
            n as usize
        };
        // Three slices waiting, one-second intervals: one slice each.
        let second = Some(Duration::from_secs(1));
        slices.write(db.as_ref(), second).await.unwrap();
        assert_eq!((rows().await, slices.waiting.len()), (ACTIVITY_SLICE, 2));
        slices.write(db.as_ref(), second).await.unwrap();
        assert_eq!(
            (rows().await, slices.waiting.len()),
            (2 * ACTIVITY_SLICE, 1)
        );
        slices.write(db.as_ref(), None).await.unwrap();
        assert_eq!(
            (rows().await, slices.waiting.len()),
            (3 * ACTIVITY_SLICE, 0)
        );
    }

    /// A write that comes while the activity is written (a webhook) takes its turn after one
    /// slice, not after all of them.
    #[tokio::test]
    async fn a_write_waiting_goes_between_slices() {
        let (_dir, db, mut slices) = three_slices_queued().await;

        // On this test's one thread, the slices take the turn first and the other write
        // queues behind the first slice.
        let store = Arc::clone(&db);
        let writing = tokio::spawn(async move {
            let written = slices.write(store.as_ref(), None).await;
            (written, slices.waiting.len())
        });
        let store = Arc::clone(&db);
        let other = tokio::spawn(async move {
            store
                .execute(sql(
                    "CREATE TABLE seen AS SELECT COUNT(*) AS n FROM usage_hourly",
                ))
                .await
        });
        other.await.unwrap().unwrap();
        let (written, waiting) = writing.await.unwrap();
        written.unwrap();
        assert_eq!(waiting, 0, "every slice written");

        let (seen,): (i64,) = db.fetch_one(sql("SELECT n FROM seen")).await.unwrap();
        assert_eq!(
            seen, ACTIVITY_SLICE as i64,
            "the other write came after one slice"
        );
        let (all,): (i64,) = db
            .fetch_one(sql("SELECT COUNT(*) FROM usage_hourly"))
            .await
            .unwrap();
        assert_eq!(all, 3 * ACTIVITY_SLICE as i64);
    }
}
