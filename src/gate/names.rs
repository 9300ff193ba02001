//! The ids the gate knows (keys, customers, entitlements, meters) as small numbers. The view
//! and the usage counters hold a `u32` slot instead of a string per id; the strings live once,
//! packed in one buffer, and are read back only off the hot path (writing usage, the account
//! page). A slot never changes meaning while the process runs, so counts keyed by slot outlive
//! every view; ids are only added, so one that leaves the ledger keeps its few bytes until the
//! process restarts.

use std::hash::BuildHasher;

use hashbrown::HashTable;

/// One hash for the process: slots are found again from text read back from the database.
const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7f4a_7c15);

/// An append-only set of strings, each numbered by the order it first came in.
#[derive(Default)]
pub struct Names {
    spelled: Spelled,
    /// Slots, found by the hash of their text.
    index: HashTable<u32>,
}

/// The names themselves, by slot.
#[derive(Default)]
struct Spelled {
    /// Every name, end to end.
    text: String,
    /// Where each name ends in `text`; a name starts where the one before it ends.
    ends: Vec<u32>,
    /// Each slot's hash, kept only until [`Names::shrink_to_fit`] (the end of a whole-ledger
    /// load): while the index grows, every slot is placed again, and reading its hash here
    /// costs one memory access where hashing its text again cost two (its end, then its text).
    hashes: Vec<u64>,
}

impl Names {
    /// The slot of `name`, added if it is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = SEED.hash_one(name);
        let Self { spelled, index } = self;
        if let Some(&slot) = index.find(hash, |&slot| spelled.name(slot) == name) {
            return slot;
        }
        let slot = spelled.push(name, hash);
        index.insert_unique(hash, slot, |&slot| spelled.hash(slot));
        slot
    }

    /// The slot of `name`, if it was ever added.
    pub fn find(&self, name: &str) -> Option<u32> {
        let hash = SEED.hash_one(name);
        self.index
            .find(hash, |&slot| self.spelled.name(slot) == name)
            .copied()
    }

    /// The name in `slot`. Slots come only from [`Self::intern`], so one is always there.
    pub fn get(&self, slot: u32) -> &str {
        self.spelled.name(slot)
    }

    /// Gives back what growing by doubling reserved (after a whole ledger was read).
    /// The slots' hashes are let go.
    pub fn shrink_to_fit(&mut self) {
        let Self { spelled, index } = self;
        index.shrink_to_fit(|&slot| spelled.hash(slot));
        spelled.text.shrink_to_fit();
        spelled.ends.shrink_to_fit();
        spelled.hashes = Vec::new();
    }

    pub fn len(&self) -> usize {
        self.spelled.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spelled.ends.is_empty()
    }

    /// Bytes held, for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        let Spelled { text, ends, hashes } = &self.spelled;
        text.capacity() + ends.capacity() * 4 + hashes.capacity() * 8 + self.index.capacity() * 5
    }
}

impl Spelled {
    /// Adds `name`, whose hash is `hash`, in the next slot. The hash is kept while every slot
    /// before it has its own (from the first, until they are let go).
    fn push(&mut self, name: &str, hash: u64) -> u32 {
        let slot = u32::try_from(self.ends.len()).expect("fewer than 2^32 ids");
        self.text.push_str(name);
        self.ends
            .push(u32::try_from(self.text.len()).expect("ids fit in 4 GiB"));
        if self.hashes.len() == slot as usize {
            self.hashes.push(hash);
        }
        slot
    }

    fn name(&self, slot: u32) -> &str {
        let slot = slot as usize;
        let start = if slot == 0 {
            0
        } else {
            self.ends[slot - 1] as usize
        };
        &self.text[start..self.ends[slot] as usize]
    }

    /// The hash of the name in `slot`: the one kept, or its text hashed again.
    fn hash(&self, slot: u32) -> u64 {
        match self.hashes.get(slot as usize) {
            Some(&hash) => hash,
            None => SEED.hash_one(self.name(slot)),
        }
    }
}

/// Every id the gate has seen, by kind (a key id and an entitlement id may be the same text),
/// with the customer each key and each entitlement belongs to, which never changes.
#[derive(Default)]
pub struct Ids {
    pub keys: Names,
    pub customers: Names,
    pub entitlements: Names,
    /// Billing Meter event names.
    pub meters: Names,
    key_customer: Vec<u32>,
    entitlement_customer: Vec<u32>,
}

impl Ids {
    pub fn key(&mut self, id: &str, customer: u32) -> u32 {
        let slot = self.keys.intern(id);
        set_owner(&mut self.key_customer, slot, customer);
        slot
    }

    pub fn entitlement(&mut self, id: &str, customer: u32) -> u32 {
        let slot = self.entitlements.intern(id);
        set_owner(&mut self.entitlement_customer, slot, customer);
        slot
    }

    /// The customer id of a key slot.
    pub fn key_customer(&self, key: u32) -> &str {
        self.customers.get(self.key_customer[key as usize])
    }

    /// The customer id of an entitlement slot.
    pub fn entitlement_customer(&self, entitlement: u32) -> &str {
        self.customers
            .get(self.entitlement_customer[entitlement as usize])
    }

    pub fn shrink_to_fit(&mut self) {
        self.keys.shrink_to_fit();
        self.customers.shrink_to_fit();
        self.entitlements.shrink_to_fit();
        self.meters.shrink_to_fit();
        self.key_customer.shrink_to_fit();
        self.entitlement_customer.shrink_to_fit();
    }

    /// Bytes held, for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.keys.heap_bytes()
            + self.customers.heap_bytes()
            + self.entitlements.heap_bytes()
            + self.meters.heap_bytes()
            + (self.key_customer.capacity() + self.entitlement_customer.capacity()) * 4
    }
}

fn set_owner(owners: &mut Vec<u32>, slot: u32, customer: u32) {
    let slot = slot as usize;
    if slot == owners.len() {
        owners.push(customer);
    } else {
        owners[slot] = customer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_its_slot_and_reads_back() {
        let mut names = Names::default();
        let a = names.intern("si_1");
        let b = names.intern("cus_22");
        assert_ne!(a, b);
        assert_eq!(names.intern("si_1"), a, "the same text is the same slot");
        assert_eq!(names.find("cus_22"), Some(b));
        assert_eq!(names.find("si_2"), None);
        assert_eq!((names.get(a), names.get(b)), ("si_1", "cus_22"));
        for n in 0..10_000 {
            names.intern(&format!("id_{n}"));
        }
        assert_eq!(
            names.find("si_1"),
            Some(a),
            "slots survive the index growing"
        );
        assert_eq!(names.get(names.find("id_9999").unwrap()), "id_9999");
        // After a load the hashes kept for growing are let go; growing again hashes the text.
        names.shrink_to_fit();
        for n in 10_000..40_000 {
            names.intern(&format!("id_{n}"));
        }
        assert_eq!(names.find("si_1"), Some(a));
        assert_eq!(names.get(names.find("id_9999").unwrap()), "id_9999");
        assert_eq!(names.get(names.find("id_39999").unwrap()), "id_39999");
        assert_eq!(names.len(), 40_002);
    }

    #[test]
    fn keys_and_entitlements_know_their_customer() {
        let mut ids = Ids::default();
        let c1 = ids.customers.intern("cus_1");
        let c2 = ids.customers.intern("cus_2");
        let key = ids.key("key_1", c1);
        let same_text = ids.entitlement("key_1", c2);
        assert_eq!(ids.key_customer(key), "cus_1");
        assert_eq!(ids.entitlement_customer(same_text), "cus_2");
    }
}
