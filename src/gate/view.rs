//! The in-memory view of the ledger that the hot path reads: keys by hash, each pointing at
//! its customer's entitlements. Built whole from a [`LedgerRows`] read, or patched from the
//! last one with a few customers' rows; either way a new view is swapped in at once.
//!
//! It is a few large arrays rather than an allocation per key: ids are slots of the gate's
//! [`Ids`], a customer is a span of one array of entitlements, and the terms of a plan are
//! shared by all its entitlements. Less memory, and fewer places a lookup has to visit. How a
//! row becomes an entitlement (what a plan's metadata means) is `terms.rs`'s business.

mod key_table;

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::Arc;

use super::FastMap;
use super::names::Ids;
use key_table::{KeyRef, KeyTable, KeyTag};

use crate::domain::{KeyCap, KeyHash};
use crate::store::{GrantRow, ItemRow, KeyRow, LedgerRows, PriceRow, PurchaseRow};

use super::entitlement::{Entitlement, Plan};
use super::terms::{Prices, Terms, add_price};

/// No position: a customer slot whose customer is not in the view.
const NONE: u32 = u32::MAX;

/// A view at one ledger version: the whole ledger as of the last full read or fold (`base`),
/// and the customers changed since (`recent`), which stand in for their entries in `base`.
/// A change costs what the recent customers take, not a copy of the whole view: at a million
/// keys a copy took longer than the webhooks arriving at 200 a second left it. Once more than
/// [`FOLD_AT`] customers changed, they are folded into a new base.
#[derive(Default, Clone)]
pub struct View {
    pub version: i64,
    base: Arc<Tables>,
    recent: Option<Arc<Recent>>,
}

/// Customers changed since the base was made.
struct Recent {
    tables: Tables,
    /// Every customer changed since: their entries in the base are out of date (a customer
    /// whose last key was revoked is here, and in no table).
    masked: HashSet<u32, foldhash::fast::FixedState>,
    /// Keys in the base that belong to masked customers.
    hidden_keys: usize,
}

/// Changed customers kept beside the base before they are folded into it.
const FOLD_AT: usize = 4096;

#[derive(Default, Clone)]
struct Tables {
    /// Keys by the first half of their hash ([`KeyHash::head`]): 16 bytes a key, not 32.
    keys: KeyTable,
    /// Customers that hold a key, each a span of `entitlements`.
    customers: Vec<Span>,
    /// Where each customer of the view is in `customers`, indexed by customer slot (`NONE`:
    /// not in the view).
    by_customer: Vec<u32>,
    entitlements: Vec<Entitlement>,
    /// One copy of each plan's terms (found by a fast hash: every entitlement loaded looks
    /// its plan up here).
    plans: HashSet<Arc<Plan>, foldhash::fast::FixedState>,
    /// Customers patched out whose span is still in the arrays (until compacted).
    dead: usize,
    /// What the few keys that carry terms of their own (a roll's end, a cap) carry, by key
    /// slot. Most keys carry none, so this stays empty and a lookup never reads it.
    key_terms: FastMap<u32, KeyTerms>,
}

/// What one key carries of its own, beside its customer's plans.
#[derive(Clone, Copy, Debug)]
pub struct KeyTerms {
    /// The customer's slot (the terms go when the customer's keys do).
    customer: u32,
    /// When a rolled key stops.
    pub expires_at: Option<i64>,
    /// The key's own cap, and the slot its use is counted under.
    pub cap: Option<(KeyCap, u32)>,
}

#[derive(Clone, Copy)]
struct Span {
    slot: u32,
    first: u32,
    len: u32,
    /// The customer's keys.
    keys: u32,
}

/// One customer as the view holds it.
#[derive(Clone, Copy)]
pub struct Customer<'a> {
    pub slot: u32,
    pub entitlements: &'a [Entitlement],
}

/// A key found in the view: its slot, its customer, and its own terms, if any.
pub struct Found<'a> {
    pub key: u32,
    pub customer: Customer<'a>,
    pub terms: Option<KeyTerms>,
}

impl View {
    pub fn build(rows: LedgerRows, ids: &mut Ids) -> Self {
        Self {
            version: rows.version,
            base: Arc::new(Tables::build(rows, ids)),
            recent: None,
        }
    }

    pub fn find(&self, hash: &KeyHash) -> Option<Found<'_>> {
        self.find_tag(&KeyTag(hash.head()))
    }

    fn find_tag(&self, tag: &KeyTag) -> Option<Found<'_>> {
        let Some(recent) = &self.recent else {
            return self.base.find(tag);
        };
        if let Some(found) = recent.tables.find(tag) {
            return Some(found);
        }
        let found = self.base.find(tag)?;
        (!recent.masked.contains(&found.customer.slot)).then_some(found)
    }

    pub fn customer(&self, slot: u32) -> Option<Customer<'_>> {
        match &self.recent {
            Some(recent) if recent.masked.contains(&slot) => recent.tables.customer(slot),
            _ => self.base.customer(slot),
        }
    }

    pub fn key_count(&self) -> usize {
        match &self.recent {
            Some(r) => self.base.keys.len() + r.tables.keys.len() - r.hidden_keys,
            None => self.base.keys.len(),
        }
    }

    /// Customers in the view (those holding at least one key).
    pub fn customer_count(&self) -> usize {
        let live = |tables: &Tables| tables.customers.len() - tables.dead;
        match &self.recent {
            Some(r) => {
                let replaced = r
                    .masked
                    .iter()
                    .filter(|&&slot| self.base.customer(slot).is_some())
                    .count();
                live(&self.base) - replaced + live(&r.tables)
            }
            None => live(&self.base),
        }
    }

    /// Bytes the view's tables hold (what the memory figures of docs/performance.md are made of).
    pub fn heap_bytes(&self) -> usize {
        let recent = self.recent.as_ref().map_or(0, |r| {
            r.tables.heap_bytes() + r.masked.capacity() * (size_of::<u32>() + 1)
        });
        self.base.heap_bytes() + recent
    }

    /// This view with the named customers replaced by their rows as now stored (a customer
    /// left without rows, say whose last key was revoked, drops out), at `version`. The base is
    /// shared with this view, not copied, until the changed customers are folded into it.
    pub fn patched(&self, version: i64, changed: Vec<(String, LedgerRows)>, ids: &mut Ids) -> Self {
        let names: Vec<String> = changed.iter().map(|(id, _)| id.clone()).collect();
        let before = self.recent.as_deref();
        let mut recent = Recent {
            tables: before
                .map_or_else(Tables::default, |r| r.tables.clone())
                .patched(changed, ids),
            masked: before.map(|r| r.masked.clone()).unwrap_or_default(),
            hidden_keys: before.map_or(0, |r| r.hidden_keys),
        };
        // After the patch: a customer new to the process has a slot only now.
        for slot in names.iter().filter_map(|id| ids.customers.find(id)) {
            if recent.masked.insert(slot)
                && let Some(span) = self.base.span(slot)
            {
                recent.hidden_keys += span.keys as usize;
            }
        }
        if recent.masked.len() > FOLD_AT {
            return Self {
                version,
                base: Arc::new(self.base.folded(&recent)),
                recent: None,
            };
        }
        Self {
            version,
            base: Arc::clone(&self.base),
            recent: Some(Arc::new(recent)),
        }
    }
}

impl Tables {
    fn build(rows: LedgerRows, ids: &mut Ids) -> Self {
        let mut tables = Self::default();
        tables.keys.reserve(rows.keys.len());
        tables.add(rows, ids);
        tables
    }

    fn add(&mut self, rows: LedgerRows, ids: &mut Ids) {
        let mut part = Part::over(std::mem::take(self));
        for row in rows.keys {
            part.key(row, ids);
        }
        for row in rows.key_terms {
            part.key_terms(row, ids);
        }
        for row in rows.prices {
            part.price(row);
        }
        for row in rows.grants {
            part.grant(row, ids);
        }
        for row in rows.items {
            part.item(row, ids);
        }
        for row in rows.purchases {
            part.purchase(row, ids);
        }
        *self = part.finish_tables(|| &*ids);
    }

    fn find(&self, tag: &KeyTag) -> Option<Found<'_>> {
        let key = self.keys.get(tag)?;
        let terms = match self.key_terms.is_empty() {
            true => None,
            false => self.key_terms.get(&key.key).copied(),
        };
        Some(Found {
            key: key.key,
            customer: self.customer_at(key.customer),
            terms,
        })
    }

    /// Where a customer slot's span is in `customers`, if the customer is here.
    fn position(&self, slot: u32) -> Option<u32> {
        let at = *self.by_customer.get(slot as usize)?;
        (at != NONE).then_some(at)
    }

    fn span(&self, slot: u32) -> Option<&Span> {
        Some(&self.customers[self.position(slot)? as usize])
    }

    fn customer(&self, slot: u32) -> Option<Customer<'_>> {
        Some(self.customer_at(self.position(slot)?))
    }

    fn heap_bytes(&self) -> usize {
        let map = |capacity: usize, entry: usize| capacity * (entry + 1);
        self.keys.heap_bytes()
            + self.by_customer.capacity() * size_of::<u32>()
            + self.customers.capacity() * size_of::<Span>()
            + self.entitlements.capacity() * size_of::<Entitlement>()
            + map(self.key_terms.capacity(), size_of::<(u32, KeyTerms)>())
    }

    fn customer_at(&self, at: u32) -> Customer<'_> {
        let span = self.customers[at as usize];
        let first = span.first as usize;
        Customer {
            slot: span.slot,
            entitlements: &self.entitlements[first..first + span.len as usize],
        }
    }

    /// These tables with the named customers replaced by their rows as now stored (a customer
    /// left without rows, say whose last key was revoked, drops out).
    fn patched(mut self, changed: Vec<(String, LedgerRows)>, ids: &mut Ids) -> Self {
        let gone: HashSet<u32> = changed
            .iter()
            .filter_map(|(id, _)| ids.customers.find(id))
            .collect();
        self.drop_customers(&gone);
        for (_, rows) in changed {
            self.add(rows, ids);
        }
        self.compact_if_sparse();
        self
    }

    /// The base with the recent customers in place of their old entries.
    fn folded(&self, recent: &Recent) -> Self {
        let mut tables = self.clone();
        tables.drop_customers(&recent.masked);
        let new = &recent.tables;
        let mut moved = vec![NONE; new.customers.len()];
        for (at, span) in new.customers.iter().enumerate() {
            if new.by_customer[span.slot as usize] != at as u32 {
                continue; // patched out of the recent tables
            }
            moved[at] = tables.customers.len() as u32;
            if tables.by_customer.len() <= span.slot as usize {
                tables.by_customer.resize(span.slot as usize + 1, NONE);
            }
            tables.by_customer[span.slot as usize] = moved[at];
            let first = span.first as usize;
            tables.customers.push(Span {
                first: tables.entitlements.len() as u32,
                ..*span
            });
            tables
                .entitlements
                .extend_from_slice(&new.entitlements[first..first + span.len as usize]);
        }
        for (tag, key) in new.keys.iter() {
            let customer = moved[key.customer as usize];
            tables.keys.push(*tag, KeyRef { customer, ..*key });
            if let Some(terms) = new.key_terms.get(&key.key) {
                tables.key_terms.insert(key.key, *terms);
            }
        }
        tables.plans.extend(new.plans.iter().cloned());
        tables.keys.seal();
        tables.compact_if_sparse();
        tables
    }

    fn drop_customers<S: std::hash::BuildHasher>(&mut self, slots: &HashSet<u32, S>) {
        for &slot in slots {
            if let Some(at) = self.by_customer.get_mut(slot as usize)
                && *at != NONE
            {
                *at = NONE;
                self.dead += 1;
            }
        }
        let customers = &self.customers;
        self.keys
            .retain(|key| !slots.contains(&customers[key.customer as usize].slot));
        self.key_terms
            .retain(|_, terms| !slots.contains(&terms.customer));
    }

    fn compact_if_sparse(&mut self) {
        if self.dead > self.customers.len() / 4 {
            self.compact();
        }
    }

    /// The same view without the spans of customers patched out.
    fn compact(&mut self) {
        let mut customers = Vec::with_capacity(self.customers.len() - self.dead);
        let mut entitlements = Vec::with_capacity(self.entitlements.len());
        let mut moved = vec![NONE; self.customers.len()];
        for at in self.by_customer.iter_mut().filter(|at| **at != NONE) {
            let span = self.customers[*at as usize];
            let first = span.first as usize;
            moved[*at as usize] = customers.len() as u32;
            *at = customers.len() as u32;
            customers.push(Span {
                first: entitlements.len() as u32,
                ..span
            });
            entitlements.extend_from_slice(&self.entitlements[first..first + span.len as usize]);
        }
        for key in self.keys.refs_mut() {
            key.customer = moved[key.customer as usize];
        }
        self.customers = customers;
        self.entitlements = entitlements;
        self.dead = 0;
    }
}

/// The name a key's own cap is counted under, beside the entitlements' counters.
pub fn key_cap_counter(key_id: &str) -> String {
    format!("key:{key_id}")
}

/// Where an entitlement goes in the view: its customer's place, then its kind, then its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Order {
    at: u32,
    kind: Kind,
    time: i64,
}

impl Order {
    fn new(at: u32, kind: Kind, time: i64) -> Self {
        Self { at, kind, time }
    }
}

/// The kinds of entitlement, in the order a customer's are tried in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Grant,
    Subscription,
    Purchase,
}

/// Customers going into a view, one row at a time: keys first, then entitlements (grants,
/// subscription items, purchases), in the order they are tried in. Only customers that hold a
/// key and came in through this part are added; a customer's rows all come in one part.
pub struct Part {
    view: Tables,
    first_new: u32,
    /// Entitlements with where they go in the view, until all are read.
    owned: Vec<(Order, Entitlement)>,
    /// The prices read, with the plans made of them.
    prices: Prices,
}

impl Part {
    /// A part that makes a whole view.
    pub fn new() -> Self {
        Self::over(Tables::default())
    }

    fn over(view: Tables) -> Self {
        Self {
            first_new: view.customers.len() as u32,
            view,
            owned: Vec::new(),
            prices: Prices::default(),
        }
    }

    pub fn key(&mut self, row: KeyRow, ids: &mut Ids) {
        let Some(hash) = KeyHash::from_hex(&row.key_hash) else {
            tracing::warn!(key_id = %row.id, "Skipping a key whose stored hash is not valid");
            return;
        };
        let view = &mut self.view;
        let slot = ids.customers.intern(&row.customer_id);
        if view.by_customer.len() <= slot as usize {
            view.by_customer.resize(slot as usize + 1, NONE);
        }
        let at = &mut view.by_customer[slot as usize];
        if *at == NONE {
            *at = view.customers.len() as u32;
            view.customers.push(Span {
                slot,
                first: 0,
                len: 0,
                keys: 0,
            });
        }
        let at = *at;
        view.customers[at as usize].keys += 1;
        let key = KeyRef {
            key: ids.key(&row.id, slot),
            customer: at,
        };
        view.keys.push(KeyTag(hash.head()), key);
        if row.expires_at.is_some() || row.cap.is_some() {
            self.key_terms(row, ids);
        }
    }

    /// A key's own terms, for a key of this part's customers.
    pub fn key_terms(&mut self, row: KeyRow, ids: &mut Ids) {
        let Some(slot) = ids.customers.find(&row.customer_id) else {
            return;
        };
        let key = ids.key(&row.id, slot);
        let cap = KeyCap::from_stored(row.cap, row.cap_period.as_deref())
            .map(|cap| (cap, ids.entitlement(&key_cap_counter(&row.id), slot)));
        if row.expires_at.is_some() || cap.is_some() {
            let terms = KeyTerms {
                customer: slot,
                expires_at: row.expires_at,
                cap,
            };
            self.view.key_terms.insert(key, terms);
        }
    }

    /// A price, before the items and purchases that name it.
    pub fn price(&mut self, row: PriceRow) {
        add_price(&mut self.prices, row);
    }

    pub fn grant(&mut self, row: GrantRow, ids: &mut Ids) {
        if let Some((slot, at)) = self.customer(ids, &row.customer_id) {
            let order = Order::new(at, Kind::Grant, row.created_at);
            if let Some(e) = self.terms(ids).grant(row, slot) {
                self.owned.push((order, e));
            }
        }
    }

    pub fn item(&mut self, row: ItemRow, ids: &mut Ids) {
        if let Some((slot, at)) = self.customer(ids, &row.customer_id) {
            let order = Order::new(at, Kind::Subscription, row.created);
            let e = self.terms(ids).item(row, slot);
            self.owned.push((order, e));
        }
    }

    pub fn purchase(&mut self, row: PurchaseRow, ids: &mut Ids) {
        if let Some((slot, at)) = self.customer(ids, &row.customer_id) {
            let order = Order::new(at, Kind::Purchase, row.paid_at);
            let e = self.terms(ids).purchase(row, slot);
            self.owned.push((order, e));
        }
    }

    /// The view, at `version`, with every entitlement read placed in its customer's span.
    /// `ids` is asked for only if some entitlements must be put in order by id.
    pub fn finish<G: Deref<Target = Ids>>(self, version: i64, ids: impl FnOnce() -> G) -> View {
        View {
            version,
            base: Arc::new(self.finish_tables(ids)),
            recent: None,
        }
    }

    /// Places each customer's entitlements in the order they are tried in: grants, then
    /// subscriptions, then purchases, each kind oldest first and then by id (the rows come in
    /// no particular order). Sorted without the ids, which only the few ties need: a whole
    /// ledger's sort took long enough that a request interning its ids, waiting for the ids'
    /// lock meanwhile, showed in the answers given during a load.
    fn finish_tables<G: Deref<Target = Ids>>(mut self, ids: impl FnOnce() -> G) -> Tables {
        self.owned.sort_unstable_by_key(|(order, _)| *order);
        let tied: Vec<&mut [(Order, Entitlement)]> = self
            .owned
            .chunk_by_mut(|(a, _), (b, _)| a == b)
            .filter(|run| run.len() > 1)
            .collect();
        if !tied.is_empty() {
            let ids = ids();
            let names = &ids.entitlements;
            for run in tied {
                run.sort_unstable_by_key(|(_, e)| names.get(e.slot));
            }
        }
        let view = &mut self.view;
        view.keys.seal();
        view.entitlements.reserve_exact(self.owned.len());
        for (Order { at, .. }, entitlement) in self.owned {
            let span = &mut view.customers[at as usize];
            if span.len == 0 {
                span.first = view.entitlements.len() as u32;
            }
            span.len += 1;
            view.entitlements.push(entitlement);
        }
        view.customers.shrink_to_fit();
        self.view
    }

    /// The slot of a customer added through this part, and where it is in the view.
    fn customer(&self, ids: &Ids, customer_id: &str) -> Option<(u32, u32)> {
        let slot = ids.customers.find(customer_id)?;
        let at = *self.view.by_customer.get(slot as usize)?;
        (at != NONE && at >= self.first_new).then_some((slot, at))
    }

    fn terms<'a>(&'a mut self, ids: &'a mut Ids) -> Terms<'a> {
        Terms::new(ids, &mut self.view.plans, &mut self.prices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyRow;

    /// A key hash whose first 128 bits (what the view keeps) tell `n` apart.
    fn hash(n: u32) -> String {
        format!("{n:032x}").repeat(2)
    }

    /// Customer `c` with keys `keys` and one grant named after the customer and `note`.
    fn rows(c: &str, keys: &[u32], note: &str) -> LedgerRows {
        LedgerRows {
            keys: keys
                .iter()
                .map(|&n| KeyRow {
                    id: format!("key_{n}"),
                    customer_id: c.into(),
                    key_hash: hash(n),
                    ..KeyRow::default()
                })
                .collect(),
            grants: vec![GrantRow {
                id: format!("g_{c}"),
                customer_id: c.into(),
                note: Some(note.into()),
                predictors: "*".into(),
                quota: None,
                quota_period: None,
                credits: None,
                expires_at: None,
                created_at: 0,
            }],
            ..LedgerRows::default()
        }
    }

    fn merged(parts: Vec<LedgerRows>, version: i64) -> LedgerRows {
        let mut all = LedgerRows {
            version,
            ..LedgerRows::default()
        };
        for part in parts {
            all.keys.extend(part.keys);
            all.grants.extend(part.grants);
        }
        all
    }

    #[test]
    fn changes_beyond_the_fold_are_folded_into_a_base_equal_to_a_whole_build() {
        let mut ids = Ids::default();
        let n = FOLD_AT as u32 + 1;
        let name = |c: u32| format!("c{c}");
        let all = |note: &str| merged((0..n).map(|c| rows(&name(c), &[c], note)).collect(), 1);
        let mut view = View::build(all("v0"), &mut ids);
        // Customer 0 loses its key (its customer drops out); the others change their grant.
        view = view.patched(2, vec![(name(0), LedgerRows::default())], &mut ids);
        assert_eq!(
            view.key_count(),
            n as usize - 1,
            "the revoked key is not counted"
        );
        for c in 1..n {
            view = view.patched(
                2 + i64::from(c),
                vec![(name(c), rows(&name(c), &[c], "v1"))],
                &mut ids,
            );
            if c == 1 {
                assert!(
                    view.recent.is_some(),
                    "a few changes are kept beside the base"
                );
            }
        }
        assert!(
            view.recent.is_none(),
            "more than FOLD_AT changes are folded in"
        );
        let mut expected = all("v1");
        expected.keys.remove(0);
        expected.grants.remove(0);
        let expected = View::build(expected, &mut ids);
        assert_eq!(summary(&view, &ids), summary(&expected, &ids));
        assert_eq!(view.key_count(), n as usize - 1);
        assert_eq!(customers(&view, &ids).len(), n as usize - 1);
        assert_eq!(view.customer_count(), n as usize - 1);
    }

    #[test]
    fn a_key_takes_24_bytes_in_its_table() {
        assert_eq!(size_of::<(KeyTag, KeyRef)>(), 24);
    }

    /// Keys with their customer and that customer's first entitlement's name.
    fn summary(view: &View, ids: &Ids) -> Vec<(String, String, String)> {
        let recent = view.recent.iter().flat_map(|r| r.tables.keys.iter());
        let tags: HashSet<&KeyTag> = view
            .base
            .keys
            .iter()
            .chain(recent)
            .map(|(tag, _)| tag)
            .collect();
        let mut out: Vec<_> = tags
            .into_iter()
            // Through the view's own lookup: a key of the base whose customer changed since
            // is found only if it is still theirs.
            .filter_map(|tag| Some((tag, view.find_tag(tag)?.customer)))
            .map(|(tag, customer)| {
                (
                    format!("{:016x}{:016x}", tag.0[0], tag.0[1]),
                    ids.customers.get(customer.slot).to_string(),
                    customer.entitlements[0].plan.name.to_string(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn customers(view: &View, ids: &Ids) -> Vec<String> {
        let slots = view.base.by_customer.len().max(
            view.recent
                .as_ref()
                .map_or(0, |r| r.tables.by_customer.len()),
        );
        let mut out: Vec<_> = (0..slots as u32)
            .filter(|&slot| view.customer(slot).is_some())
            .map(|slot| ids.customers.get(slot).to_string())
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_patched_view_equals_one_built_whole_from_the_same_rows() {
        let mut ids = Ids::default();
        let before = View::build(
            merged(vec![rows("a", &[1], "old"), rows("b", &[2, 3], "old")], 5),
            &mut ids,
        );
        // a is gone (deleted, or its last key revoked), b lost key 2 and changed its grant,
        // c is new; d was untouched.
        let before = before.patched(6, vec![("d".into(), rows("d", &[9], "same"))], &mut ids);
        let patched = before.patched(
            9,
            vec![
                ("a".into(), LedgerRows::default()),
                ("b".into(), rows("b", &[3, 4], "new")),
                ("c".into(), rows("c", &[5], "new")),
            ],
            &mut ids,
        );
        let whole = View::build(
            merged(
                vec![
                    rows("b", &[3, 4], "new"),
                    rows("c", &[5], "new"),
                    rows("d", &[9], "same"),
                ],
                9,
            ),
            &mut ids,
        );
        assert_eq!(patched.version, 9);
        assert_eq!(summary(&patched, &ids), summary(&whole, &ids));
        assert_eq!(customers(&patched, &ids), ["b", "c", "d"]);
        assert_eq!(patched.customer_count(), 3);
        assert_eq!(whole.customer_count(), 3);
        assert_eq!(
            before.key_count(),
            4,
            "the view patched from is left as it was"
        );
        assert_eq!(summary(&before, &ids).len(), 4);
    }

    #[test]
    fn a_view_patched_many_times_is_compacted_and_stays_the_same() {
        let mut ids = Ids::default();
        let mut view = View::build(
            merged(
                (0..8).map(|n| rows(&format!("c{n}"), &[n], "v0")).collect(),
                1,
            ),
            &mut ids,
        );
        for round in 1..=20u32 {
            let n = round % 8;
            view = view.patched(
                1 + i64::from(round),
                vec![(
                    format!("c{n}"),
                    rows(&format!("c{n}"), &[n], &format!("v{round}")),
                )],
                &mut ids,
            );
        }
        let patched = &view
            .recent
            .as_ref()
            .expect("patched beside the base")
            .tables;
        assert!(
            patched.customers.len() < 8 + 8 / 4 + 1,
            "dead spans are dropped once they are a quarter of the view ({} spans)",
            patched.customers.len()
        );
        let expected = View::build(
            merged(
                (0..8u32)
                    .map(|n| {
                        let last = (1..=20u32).filter(|r| r % 8 == n).max().unwrap_or(0);
                        rows(&format!("c{n}"), &[n], &format!("v{last}"))
                    })
                    .collect(),
                21,
            ),
            &mut ids,
        );
        assert_eq!(summary(&view, &ids), summary(&expected, &ids));
        assert_eq!(view.customer_count(), 8, "dead spans are not counted");
    }
}
