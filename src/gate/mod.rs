//! The hot path: an in-memory view of the ledger and the decision over it. Nothing here waits
//! on the database or on Stripe; the view is reloaded and usage written behind, elsewhere.

mod decision;
mod entitlement;
mod names;
mod reason;
mod slots;
mod terms;
mod usage;
mod view;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use crate::domain::{AccessKey, KeyCap, KeyHash, Owner, PredictorTag};
use crate::store::{
    GrantRow, ItemRow, KeyRow, LedgerChange, LedgerRows, LedgerSink, PriceRow, PurchaseRow,
    Snapshot, Usage, UsageBatch, UsageRow,
};

pub use decision::{Charge, decide};
pub use entitlement::{
    Entitlement, Limit, Period, Plan, QuotaPeriod, Source, Stamp, Status, SubscriptionState,
};
pub use names::{Ids, Names};
pub use reason::{DenyReason, Links};
pub use usage::{Unfolded, UsageBook};
use view::Part;
pub use view::View;

/// The hash map of the hot path (foldhash, seeded per process).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

/// The rules of the gate that come from configuration.
#[derive(Debug, Clone)]
pub struct GateRules {
    /// Tags of other owners are refused; `None` accepts every owner.
    pub owner: Option<Owner>,
    pub past_due_grace: i64,
}

/// Counted use taken for writing: the batch, and what gives it back to the counters.
pub struct PendingUse {
    taken: usage::Taken,
    pub batch: UsageBatch,
}

impl PendingUse {
    /// Predictions counted on the counters in the batch.
    pub fn predictions(&self) -> usize {
        self.batch.counters.iter().map(|c| c.used as usize).sum()
    }

    /// The batch's counters were logged: they are added to the stored counters later, from
    /// `unfolded`.
    pub fn logged_into(&self, unfolded: &mut Unfolded) {
        unfolded.add(&self.taken);
    }
}

/// A plan with a quota or credits and its use in its current period.
#[derive(Debug, Clone)]
pub struct LimitUse {
    pub entitlement_id: String,
    pub plan: String,
    /// Credits (for the plan's life) rather than a quota (per period).
    pub credits: bool,
    pub limit: u64,
    pub used: u64,
    pub period_start: i64,
    pub alert_at: crate::domain::Thresholds,
    /// Credits left under which an alert fires.
    pub alert_credits_below: Option<u64>,
    /// Whether the plan can be used now (not ended, not unpaid).
    pub in_force: bool,
}

/// A prediction that may run, and whose use has been counted.
#[derive(Debug)]
pub struct Allowed {
    /// The key's slot in the gate's ids.
    pub key: u32,
}

/// Beyond this many changed customers, reading the whole ledger is as cheap as patching.
const PATCH_AT_MOST: usize = 1_000;

/// The customers to read again for these changes, or `None` when the whole ledger must be
/// (a change that may touch many customers, or too many customers).
fn patchable(changes: Vec<LedgerChange>) -> Option<HashSet<String>> {
    let mut customers = HashSet::new();
    for change in changes {
        customers.insert(change.customer_id?);
        if customers.len() > PATCH_AT_MOST {
            return None;
        }
    }
    Some(customers)
}

/// The whole ledger going into a new view as it is read: rows are turned into the view's
/// arrays one by one (the ids lock taken per row, never across a read), and stored counts are
/// folded into the counters, so the ledger is never held as rows.
struct Loading<'g> {
    part: Part,
    ids: &'g RwLock<Ids>,
    usage: &'g UsageBook,
}

impl LedgerSink for Loading<'_> {
    fn key(&mut self, row: KeyRow) {
        let mut ids = self.ids.write().expect("ids lock poisoned");
        self.part.key(row, &mut ids);
    }

    fn key_terms(&mut self, row: KeyRow) {
        let mut ids = self.ids.write().expect("ids lock poisoned");
        self.part.key_terms(row, &mut ids);
    }

    /// Needs no ids: a price's plan is made when an item or purchase first names it.
    fn price(&mut self, row: PriceRow) {
        self.part.price(row);
    }

    fn grant(&mut self, row: GrantRow) {
        let mut ids = self.ids.write().expect("ids lock poisoned");
        self.part.grant(row, &mut ids);
    }

    fn item(&mut self, row: ItemRow) {
        let mut ids = self.ids.write().expect("ids lock poisoned");
        self.part.item(row, &mut ids);
    }

    fn purchase(&mut self, row: PurchaseRow) {
        let mut ids = self.ids.write().expect("ids lock poisoned");
        self.part.purchase(row, &mut ids);
    }

    /// Counters come after every entitlement, so each finds its entitlement's slot.
    fn usage(&mut self, row: UsageRow) {
        let ids = self.ids.read().expect("ids lock poisoned");
        self.usage.merge(&ids, std::slice::from_ref(&row));
    }
}

pub struct Gate {
    rules: GateRules,
    /// Read off the hot path only: building views, writing usage, the account page.
    ids: RwLock<Ids>,
    view: ArcSwap<View>,
    loaded: AtomicBool,
    usage: UsageBook,
    reloading: tokio::sync::Mutex<()>,
}

impl Gate {
    pub fn new(rules: GateRules) -> Self {
        Self {
            rules,
            ids: RwLock::new(Ids::default()),
            view: ArcSwap::from_pointee(View::default()),
            loaded: AtomicBool::new(false),
            usage: UsageBook::default(),
            reloading: tokio::sync::Mutex::new(()),
        }
    }

    /// Decides on Function's two strings and, on allow, counts one use. The tag and its owner
    /// are checked first, then the key's form and checksum, and only then is anything looked
    /// up. Exact under concurrency: a quota or credit balance is never overspent here.
    pub fn authorize(&self, tag: &str, access_key: &str, now: i64) -> Result<Allowed, DenyReason> {
        let (tag, key) = self.parse(tag, access_key)?;
        self.decide_in(&self.view.load(), &tag, &key, now)
    }

    /// The same decision before the whole ledger is in memory (just after start): the key's
    /// customer is read from the database for this one request. Counts go to the same
    /// counters, so exactness holds across the switch to the full view.
    pub async fn authorize_cold(
        &self,
        store: &dyn Snapshot,
        tag: &str,
        access_key: &str,
        now: i64,
    ) -> anyhow::Result<Result<Allowed, DenyReason>> {
        let (tag, key) = match self.parse(tag, access_key) {
            Ok(parsed) => parsed,
            Err(reason) => return Ok(Err(reason)),
        };
        let rows = store.load_customer_of_key(&key.to_hex(), now).await?;
        let view = self.build(rows);
        Ok(self.decide_in(&view, &tag, &key, now))
    }

    /// Tag and owner first, then the key's form and checksum: nothing is looked up for input
    /// that cannot be right.
    fn parse<'a>(
        &self,
        tag: &'a str,
        access_key: &str,
    ) -> Result<(PredictorTag<'a>, KeyHash), DenyReason> {
        let tag = PredictorTag::parse(tag).map_err(DenyReason::Tag)?;
        if let Some(owner) = &self.rules.owner
            && !owner.is(tag.owner())
        {
            return Err(DenyReason::OtherOwner {
                owner: owner.as_ref().to_owned(),
            });
        }
        let key = AccessKey::hash_of(access_key).map_err(DenyReason::Key)?;
        Ok((tag, key))
    }

    fn decide_in(
        &self,
        view: &View,
        tag: &PredictorTag<'_>,
        key: &KeyHash,
        now: i64,
    ) -> Result<Allowed, DenyReason> {
        let found = view.find(key).ok_or(DenyReason::UnknownKey)?;
        let decided = self.decide_for(&found, tag, now);
        if let Err(reason) = &decided {
            self.usage.record_refusal(found.key, reason, now);
        }
        decided
    }

    /// The decision for a key found in the view.
    fn decide_for(
        &self,
        found: &view::Found<'_>,
        tag: &PredictorTag<'_>,
        now: i64,
    ) -> Result<Allowed, DenyReason> {
        let Some(terms) = found.terms else {
            return self.decide_plans(found, tag, now, None);
        };
        if let Some(on) = terms.expires_at
            && now >= on
        {
            return Err(DenyReason::KeyRolled { on });
        }
        self.decide_plans(found, tag, now, terms.cap)
    }

    /// The decision on the customer's plans, and on the key's own cap when it has one: the
    /// cap is counted once a plan would allow, so a key at its cap is told the account still
    /// has access. A cap's unit taken for a prediction that then finds its plan spent (another
    /// request took the plan's last unit) is given back.
    fn decide_plans(
        &self,
        found: &view::Found<'_>,
        tag: &PredictorTag<'_>,
        now: i64,
        cap: Option<(KeyCap, u32)>,
    ) -> Result<Allowed, DenyReason> {
        let customer = found.customer;
        let mut rate_checked = false;
        let mut cap_taken = None;
        let decided = loop {
            let charge = match decide(
                customer.entitlements,
                tag,
                now,
                self.rules.past_due_grace,
                |e, period_start| self.usage.used(e.slot, period_start),
            ) {
                Ok(charge) => charge,
                Err(reason) => break Err(reason),
            };
            let entitlement = &customer.entitlements[charge.index];
            if let Some(per_minute) = entitlement.plan.rate_limit
                && !rate_checked
            {
                if !self.usage.try_rate(customer.slot, per_minute, now) {
                    break Err(DenyReason::RateLimited { per_minute });
                }
                rate_checked = true;
            }
            if let Some((cap, counter)) = cap
                && cap_taken.is_none()
            {
                let start = cap.period_start(now);
                if !self.usage.try_take(counter, start, Some(cap.limit), None) {
                    break Err(DenyReason::KeyCapReached {
                        cap,
                        resets_at: cap.resets_at(now),
                    });
                }
                cap_taken = Some((counter, start));
            }
            if self.usage.try_take(
                entitlement.slot,
                charge.period.start,
                charge.cap,
                entitlement.plan.meter,
            ) {
                self.usage.record(found.key, tag.as_ref(), now);
                break Ok(Allowed { key: found.key });
            }
            // Another request took the last unit first; decide again with the new count.
        };
        if decided.is_err()
            && let Some((counter, start)) = cap_taken
        {
            self.usage.give_back(counter, start);
        }
        decided
    }

    /// Brings the view up to the ledger's version; returns whether it changed. Usually only
    /// the customers changed since the view was built are read again and patched in; the whole
    /// ledger is read at the start, after a catalog change, or when too much changed.
    /// Refreshes run one at a time, and the version is checked again once it is this caller's
    /// turn, so a burst of changes costs back-to-back refreshes, not one per caller at once.
    pub async fn refresh(&self, store: &dyn Snapshot, now: i64) -> anyhow::Result<bool> {
        if self.is_loaded() && store.ledger_version().await? == self.view.load().version {
            return Ok(false);
        }
        let _turn = self.reloading.lock().await;
        let current = self.view.load_full();
        // `None`: nothing loaded yet, or the changes since this view are no longer kept.
        let changes = match self.is_loaded() {
            true => store.ledger_changes(current.version).await?,
            false => None,
        };
        let Some(changes) = changes else {
            self.reload(store, now).await?;
            return Ok(true);
        };
        let Some(last) = changes.last().map(|c| c.version) else {
            return Ok(false);
        };
        let Some(customers) = patchable(changes) else {
            self.reload(store, now).await?;
            return Ok(true);
        };
        let mut changed = Vec::with_capacity(customers.len());
        for id in customers {
            let rows = store.load_customer(&id, now).await?;
            changed.push((id, rows));
        }
        let view = {
            let mut ids = self.ids.write().expect("ids lock poisoned");
            let usage: Vec<_> = changed
                .iter_mut()
                .flat_map(|(_, rows)| std::mem::take(&mut rows.usage))
                .collect();
            let view = current.patched(last, changed, &mut ids);
            self.usage.merge(&ids, &usage);
            self.usage.publish();
            view
        };
        tracing::debug!(version = view.version, "Ledger view patched");
        self.swap_in(Arc::new(view));
        Ok(true)
    }

    /// Rebuilds the view from the database, keeping this process's unflushed counts.
    pub async fn reload(&self, store: &dyn Snapshot, now: i64) -> anyhow::Result<()> {
        let mut loading = Loading {
            part: Part::new(),
            ids: &self.ids,
            usage: &self.usage,
        };
        let version = store.load_ledger_into(now, &mut loading).await?;
        let view = loading
            .part
            .finish(version, || self.ids.read().expect("ids lock poisoned"));
        // The counters just read are looked up from the first request on.
        self.usage.publish();
        self.ids.write().expect("ids lock poisoned").shrink_to_fit();
        let view = Arc::new(view);
        tracing::debug!(
            version = view.version,
            keys = view.key_count(),
            view_bytes = view.heap_bytes(),
            id_bytes = self.ids.read().expect("ids lock poisoned").heap_bytes(),
            counter_bytes = self.usage.heap_bytes(),
            "Ledger view loaded"
        );
        self.swap_in(view);
        self.loaded.store(true, Ordering::Release);
        Ok(())
    }

    /// A view of `rows`, with their usage folded into the counters (after the view, which
    /// gives the entitlements their slots).
    fn build(&self, mut rows: LedgerRows) -> View {
        let usage = std::mem::take(&mut rows.usage);
        let mut ids = self.ids.write().expect("ids lock poisoned");
        let view = View::build(rows, &mut ids);
        self.usage.merge(&ids, &usage);
        view
    }

    /// Two reloads may race (the poller and a write of this process); the view must never go
    /// back to an older version of the ledger.
    fn swap_in(&self, view: Arc<View>) {
        self.view.rcu(|current| {
            if view.version >= current.version {
                Arc::clone(&view)
            } else {
                Arc::clone(current)
            }
        });
    }

    /// Folds in counters other instances wrote, so quotas and credits hold across instances.
    pub fn merge_usage(&self, rows: &[crate::store::UsageRow]) {
        self.usage
            .merge(&self.ids.read().expect("ids lock poisoned"), rows);
    }

    /// Writes counted use; on failure the counts are kept for the next attempt. The per-hour
    /// activity (reports, last used) is written only `with_activity`: it needs no exactness,
    /// so it can go less often than the counters that quotas and credits rest on.
    pub async fn flush(
        &self,
        store: &dyn Usage,
        now: i64,
        with_activity: bool,
    ) -> anyhow::Result<usize> {
        let Some(pending) = self.take_use(now, with_activity) else {
            return Ok(0);
        };
        let written = pending.predictions();
        if let Err(e) = store.flush_usage(&pending.batch).await {
            self.put_back(pending);
            return Err(e);
        }
        Ok(written)
    }

    /// What [`Self::flush`] would write, taken from the counters (`None`: nothing counted);
    /// for a caller that does more around the write (the usage journal). Give it back with
    /// [`Self::put_back`] if it is not written.
    pub fn take_use(&self, now: i64, with_activity: bool) -> Option<PendingUse> {
        let taken = self.usage.take(with_activity);
        if taken.is_empty() {
            return None;
        }
        let batch = taken.batch(|| self.ids.read().expect("ids lock poisoned"), now);
        Some(PendingUse { taken, batch })
    }

    /// Logged counts as the store adds them to its counters, with ids as text.
    pub fn unfolded_rows(&self, unfolded: &Unfolded) -> Vec<crate::store::CounterDelta> {
        unfolded.rows(|| self.ids.read().expect("ids lock poisoned"))
    }

    /// Puts back use that could not be written, for the next flush.
    pub fn put_back(&self, pending: PendingUse) {
        self.usage.restore(pending.taken);
    }

    /// The key's id and customer, for signing in with it: a key that works at `now`.
    pub fn key_owner(&self, key: &AccessKey, now: i64) -> Option<(String, String)> {
        let view = self.view.load();
        let found = view.find(&key.hash())?;
        if found
            .terms
            .and_then(|t| t.expires_at)
            .is_some_and(|on| now >= on)
        {
            return None;
        }
        let ids = self.ids.read().expect("ids lock poisoned");
        Some((
            ids.keys.get(found.key).to_string(),
            ids.customers.get(found.customer.slot).to_string(),
        ))
    }

    /// A customer's entitlements as the hot path sees them, with what each has used in its
    /// period at `now`.
    pub fn customer(&self, id: &str, now: i64) -> Vec<(Entitlement, u64)> {
        let Some(slot) = self
            .ids
            .read()
            .expect("ids lock poisoned")
            .customers
            .find(id)
        else {
            return Vec::new();
        };
        let view = self.view.load();
        let Some(customer) = view.customer(slot) else {
            return Vec::new();
        };
        customer
            .entitlements
            .iter()
            .map(|e| (e.clone(), self.usage.used(e.slot, e.period(now).start)))
            .collect()
    }

    /// When each key (by id) was last used, from the use not yet written (`None`: none since
    /// the last write, so the database's figure stands).
    pub fn unwritten_last_use(&self, key_ids: &[&str], now: i64) -> Vec<Option<i64>> {
        let slots: Vec<u32> = {
            let ids = self.ids.read().expect("ids lock poisoned");
            key_ids
                .iter()
                .map(|id| ids.keys.find(id).unwrap_or(u32::MAX))
                .collect()
        };
        self.usage.unwritten_last_use(&slots, now)
    }

    /// Each of a customer's plans with a quota or credits, with its use in its period at `now`
    /// (what alerts are decided on).
    pub fn limits(&self, id: &str, now: i64) -> Vec<LimitUse> {
        let limited: Vec<(Entitlement, u64)> = self
            .customer(id, now)
            .into_iter()
            .filter(|(e, _)| !matches!(e.limit.get(), Limit::Unlimited))
            .collect();
        let ids = self.ids.read().expect("ids lock poisoned");
        limited
            .into_iter()
            .map(|(e, used)| {
                let (limit, credits) = match e.limit.get() {
                    Limit::Quota { per_period, .. } => (per_period, false),
                    Limit::Credits { total } => (total, true),
                    Limit::Unlimited => (0, false),
                };
                LimitUse {
                    entitlement_id: ids.entitlements.get(e.slot).to_string(),
                    plan: e.plan.name.to_string(),
                    credits,
                    limit,
                    used,
                    period_start: e.period(now).start,
                    alert_at: e.plan.alert_at,
                    alert_credits_below: e.plan.alert_credits_below,
                    in_force: e.in_force(now, self.rules.past_due_grace).is_ok(),
                }
            })
            .collect()
    }

    /// A customer's subscription items with their state (what payment alerts are decided on).
    pub fn subscriptions(&self, id: &str, now: i64) -> Vec<(String, String, SubscriptionState)> {
        let items: Vec<Entitlement> = self.customer(id, now).into_iter().map(|(e, _)| e).collect();
        let ids = self.ids.read().expect("ids lock poisoned");
        items
            .into_iter()
            .filter_map(|e| match &e.source {
                Source::Subscription(s) => Some((
                    ids.entitlements.get(e.slot).to_string(),
                    e.plan.name.to_string(),
                    *s,
                )),
                _ => None,
            })
            .collect()
    }

    /// What the key has used against its own cap in the cap's period at `now`.
    pub fn key_cap_used(&self, key_id: &str, cap: KeyCap, now: i64) -> u64 {
        let counter = self
            .ids
            .read()
            .expect("ids lock poisoned")
            .entitlements
            .find(&view::key_cap_counter(key_id));
        counter.map_or(0, |slot| self.usage.used(slot, cap.period_start(now)))
    }

    pub fn past_due_grace(&self) -> i64 {
        self.rules.past_due_grace
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn key_count(&self) -> usize {
        self.view.load().key_count()
    }

    /// Customers holding a key, in the view now.
    pub fn customer_count(&self) -> usize {
        self.view.load().customer_count()
    }

    /// The ledger version the view was built at (0 before the first load).
    pub fn version(&self) -> i64 {
        self.view.load().version
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::domain::KeyPrefix;

    const NOW: i64 = 1_795_996_800;

    /// A worker answering with warm keys takes no lock another thread can hold: not the ids,
    /// not the counters' or rate windows' tables, not the activity shards' list, not a reload.
    /// Every one is held here while another thread authorizes; a lock taken there would stall
    /// it, and the test fails after ten seconds instead of hanging.
    #[test]
    fn a_warm_authorization_takes_no_lock_another_thread_holds() {
        let gate = Arc::new(Gate::new(GateRules {
            owner: None,
            past_due_grace: 0,
        }));
        let prefix = KeyPrefix::parse("tb").unwrap();
        let keys: Vec<AccessKey> = (0..3).map(|_| AccessKey::generate(&prefix)).collect();
        let mut rows = LedgerRows {
            version: 1,
            ..LedgerRows::default()
        };
        for (n, key) in keys.iter().enumerate() {
            rows.keys.push(KeyRow {
                id: format!("key_{n}"),
                customer_id: format!("cus_{n}"),
                key_hash: key.hash().to_hex(),
                ..KeyRow::default()
            });
            rows.grants.push(GrantRow {
                id: format!("grant_{n}"),
                customer_id: format!("cus_{n}"),
                note: None,
                predictors: "*".into(),
                // Unlimited, a quota, credits: each kind of counter.
                quota: (n == 1).then_some(1_000_000),
                quota_period: (n == 1).then(|| "month".into()),
                credits: (n == 2).then_some(1_000_000),
                expires_at: None,
                created_at: 0,
            });
        }
        let view = gate.build(rows);
        gate.swap_in(Arc::new(view));
        gate.loaded.store(true, Ordering::Release);

        let (warm_tx, warm_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let (done_tx, done_rx) = mpsc::channel();
        let worker = {
            let gate = Arc::clone(&gate);
            let keys: Vec<String> = keys.iter().map(|k| k.as_ref().to_owned()).collect();
            std::thread::spawn(move || {
                let run = || {
                    keys.iter()
                        .filter(|k| gate.authorize("@acme/sdxl", k, NOW).is_ok())
                        .count()
                };
                // The first use makes this thread's shard and each key's counters.
                warm_tx.send(run()).unwrap();
                go_rx.recv().unwrap();
                let allowed: usize = (0..1_000).map(|_| run()).sum();
                done_tx.send(allowed).unwrap();
            })
        };
        assert_eq!(warm_rx.recv().unwrap(), 3);
        // What the flush does every second: made counters become readable without a lock.
        gate.usage.publish();

        let ids = gate.ids.write().unwrap();
        let usage = gate.usage.hold_locks();
        let reloading = gate.reloading.try_lock().unwrap();
        go_tx.send(()).unwrap();
        let allowed = done_rx.recv_timeout(Duration::from_secs(10));
        drop((ids, usage, reloading));
        assert_eq!(
            allowed,
            Ok(3_000),
            "the worker stalled on a lock held elsewhere"
        );
        worker.join().unwrap();
    }
}
