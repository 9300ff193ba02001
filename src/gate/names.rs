//! The ids the gate knows (keys, customers, entitlements, meters) as small numbers. The view
//! and the usage counters hold a `u32` slot instead of a string per id; the strings live once,
//! packed in one buffer, and are read back only off the hot path (writing usage, the account
//! page). A slot never changes meaning while the process runs, so counts keyed by slot outlive
//! every view; ids are only added, so one that leaves the ledger keeps its few bytes until the
//! process restarts.
//!
//! Ids are Stripe's and the service's (`cus_…`, `si_…`, `key_…`): letters, digits and `_`,
//! which take 6 bits a character here rather than 8 (see [`spell`]); any other text is kept as
//! it is. Each name is its length and its spelling, one after another, and only every
//! [`GROUP`]th name's place is kept: a name is found from the place of its group by stepping
//! over the few before it. At a hundred thousand customers (each with a key, a customer and
//! an entitlement id) the ids took 6.7 MB, not 8.7 (the `id_bytes` a load logs at debug level).

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::store::IdText;

/// One hash for the process: slots are found again from text read back from the database.
const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7f4a_7c15);

/// Names per kept place: a name is read after stepping over at most `GROUP - 1` others.
const GROUP: usize = 8;

/// An append-only set of strings, each numbered by the order it first came in.
#[derive(Default)]
pub struct Names {
    spelled: Spelled,
    /// Slots, found by the hash of their text (not of their spelling: a name's text was
    /// written long before, where its spelling was just written on the stack a few bytes at a
    /// time, and reading those back in wider words waits for every store before them).
    index: HashTable<u32>,
}

/// The names themselves, by slot.
#[derive(Default)]
struct Spelled {
    /// Every name as its length (a varint) then its spelling, end to end.
    bytes: Vec<u8>,
    /// Where every [`GROUP`]th name starts in `bytes`.
    starts: Vec<u32>,
    len: u32,
    /// Each slot's hash, kept only until [`Names::shrink_to_fit`] (the end of a whole-ledger
    /// load): while the index grows, every slot is placed again, and reading its hash here
    /// costs one memory access where reading its text back and hashing it cost more.
    hashes: Vec<u64>,
}

impl Names {
    /// The slot of `name`, added if it is new.
    pub fn intern(&mut self, name: &str) -> u32 {
        let hash = SEED.hash_one(name);
        spell(name, |spelling| {
            let Self { spelled, index } = self;
            if let Some(&slot) = index.find(hash, |&slot| spelled.spelling(slot) == spelling) {
                return slot;
            }
            let slot = spelled.push(spelling, hash);
            index.insert_unique(hash, slot, |&slot| spelled.hash(slot));
            slot
        })
    }

    /// The slot of `name`, if it was ever added.
    pub fn find(&self, name: &str) -> Option<u32> {
        let hash = SEED.hash_one(name);
        spell(name, |spelling| {
            self.index
                .find(hash, |&slot| self.spelled.spelling(slot) == spelling)
                .copied()
        })
    }

    /// The name in `slot`. Slots come only from [`Self::intern`], so one is always there.
    pub fn get(&self, slot: u32) -> IdText {
        unspell(self.spelled.spelling(slot))
    }

    /// Gives back what growing by doubling reserved (after a whole ledger was read).
    /// The slots' hashes are let go.
    pub fn shrink_to_fit(&mut self) {
        let Self { spelled, index } = self;
        index.shrink_to_fit(|&slot| spelled.hash(slot));
        spelled.bytes.shrink_to_fit();
        spelled.starts.shrink_to_fit();
        spelled.hashes = Vec::new();
    }

    pub fn len(&self) -> usize {
        self.spelled.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.spelled.len == 0
    }

    /// Bytes held, for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        let Spelled {
            bytes,
            starts,
            hashes,
            ..
        } = &self.spelled;
        bytes.capacity() + starts.capacity() * 4 + hashes.capacity() * 8 + self.index.capacity() * 5
    }
}

impl Spelled {
    /// Adds `spelling`, whose hash is `hash`, in the next slot. The hash is kept while every
    /// slot before it has its own (from the first, until they are let go).
    fn push(&mut self, spelling: &[u8], hash: u64) -> u32 {
        let slot = self.len;
        assert!(slot < u32::MAX, "fewer than 2^32 ids");
        if (slot as usize).is_multiple_of(GROUP) {
            let at = u32::try_from(self.bytes.len()).expect("ids fit in 4 GiB");
            self.starts.push(at);
        }
        let mut len = u32::try_from(spelling.len()).expect("an id under 4 GiB");
        while len >= 0x80 {
            self.bytes.push((len & 0x7f) as u8 | 0x80);
            len >>= 7;
        }
        self.bytes.push(len as u8);
        self.bytes.extend_from_slice(spelling);
        self.len += 1;
        if self.hashes.len() == slot as usize {
            self.hashes.push(hash);
        }
        slot
    }

    /// The spelling in `slot`: from its group's start, past the names before it.
    fn spelling(&self, slot: u32) -> &[u8] {
        let slot = slot as usize;
        let mut at = self.starts[slot / GROUP] as usize;
        for _ in 0..slot % GROUP {
            let (len, from) = self.length_at(at);
            at = from + len;
        }
        let (len, from) = self.length_at(at);
        &self.bytes[from..from + len]
    }

    /// The length written at `at`, and where the spelling after it starts.
    fn length_at(&self, mut at: usize) -> (usize, usize) {
        let mut len = 0;
        let mut shift = 0;
        loop {
            let byte = self.bytes[at];
            at += 1;
            len |= usize::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return (len, at);
            }
            shift += 7;
        }
    }

    /// The hash of the name in `slot`: the one kept, or its text read back and hashed again.
    fn hash(&self, slot: u32) -> u64 {
        match self.hashes.get(slot as usize) {
            Some(&hash) => hash,
            None => SEED.hash_one(&*unspell(self.spelling(slot))),
        }
    }
}

/// The first byte of a name kept as it is; a packed name never starts with it (its first
/// six bits are a character, at most 62).
const AS_IS: u8 = 0xff;
/// The six bits that end a packed name whose last byte has room for six more.
const END: u8 = 63;
/// Spellings up to this long are made on the stack.
const ON_STACK: usize = 96;

const CHARACTERS: &[u8; 63] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";

/// Each byte's 6-bit code (its place in `CHARACTERS`), or `NOT` for a byte an id's packing
/// does not take.
const NOT: u8 = 0xff;
const CODES: [u8; 256] = {
    let mut codes = [NOT; 256];
    let mut code = 0;
    while code < CHARACTERS.len() {
        codes[CHARACTERS[code] as usize] = code as u8;
        code += 1;
    }
    codes
};

/// Runs `f` on how `name` is kept: its characters' 6-bit codes, first bits first, four
/// characters to three bytes (the last byte filled out with `END` if it has room for a code,
/// else zeros), or, for a name with any other character, `AS_IS` then its text. One text has
/// one spelling and two texts never the same one, so spellings are compared in place of the
/// text.
fn spell<T>(name: &str, f: impl FnOnce(&[u8]) -> T) -> T {
    let text = name.as_bytes();
    let mut stack = [0u8; ON_STACK];
    let mut heap = Vec::new();
    // Room for either form: a packed name is never longer than its text.
    let out: &mut [u8] = if text.len() < ON_STACK {
        &mut stack
    } else {
        heap.resize(text.len() + 1, 0);
        &mut heap
    };
    let mut len = 0;
    let mut fours = text.chunks_exact(4);
    for four in &mut fours {
        let code = |at: usize| CODES[usize::from(four[at])];
        let (a, b, c, d) = (code(0), code(1), code(2), code(3));
        // A code is under 64; `NOT` has the top bits set.
        if (a | b | c | d) >= 64 {
            return f(as_is(text, out));
        }
        let word = u32::from(a) << 18 | u32::from(b) << 12 | u32::from(c) << 6 | u32::from(d);
        out[len..len + 3].copy_from_slice(&word.to_be_bytes()[1..]);
        len += 3;
    }
    let rest = fours.remainder();
    if rest.iter().any(|&c| CODES[usize::from(c)] == NOT) {
        return f(as_is(text, out));
    }
    let word = rest.iter().fold(0u32, |word, &c| {
        word << 6 | u32::from(CODES[usize::from(c)])
    });
    let (word, bytes) = match rest.len() {
        0 => (0, 0),
        1 => (word << 2, 1),
        2 => (word << 4, 2),
        _ => (word << 6 | u32::from(END), 3),
    };
    out[len..len + bytes].copy_from_slice(&word.to_be_bytes()[4 - bytes..]);
    f(&out[..len + bytes])
}

/// `text` kept as it is, after `AS_IS`, in `out`.
fn as_is<'o>(text: &[u8], out: &'o mut [u8]) -> &'o [u8] {
    out[0] = AS_IS;
    out[1..=text.len()].copy_from_slice(text);
    &out[..=text.len()]
}

/// The text a spelling was made from.
fn unspell(spelling: &[u8]) -> IdText {
    if let Some((&AS_IS, text)) = spelling.split_first() {
        return IdText::new(std::str::from_utf8(text).expect("kept from a str"));
    }
    let count = spelling.len() * 8 / 6;
    let mut stack = [0u8; ON_STACK];
    let mut heap = Vec::new();
    let out: &mut [u8] = if count <= ON_STACK {
        &mut stack
    } else {
        heap.resize(count, 0);
        &mut heap
    };
    let (mut bits, mut held, mut len) = (0u32, 0u32, 0);
    for &byte in spelling {
        bits = bits << 8 | u32::from(byte);
        held += 8;
        while held >= 6 && len < count {
            held -= 6;
            let code = (bits >> held) & 63;
            if code == u32::from(END) {
                break;
            }
            out[len] = CHARACTERS[code as usize];
            len += 1;
        }
        bits &= (1 << held) - 1;
    }
    IdText::new(std::str::from_utf8(&out[..len]).expect("ids' characters are ASCII"))
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
    pub fn key_customer(&self, key: u32) -> IdText {
        self.customers.get(self.key_customer[key as usize])
    }

    /// The customer id of an entitlement slot.
    pub fn entitlement_customer(&self, entitlement: u32) -> IdText {
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
        assert_eq!((&*names.get(a), &*names.get(b)), ("si_1", "cus_22"));
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
    fn every_name_reads_back_as_it_came_in() {
        let long = "cus_".to_owned() + &"Ab9_".repeat(40);
        let other = "@acme/".to_owned() + &"é".repeat(60);
        let names_in = [
            "",
            "a",
            "_",
            "ab",
            "abc",
            "abcd",
            "abcde",
            "abcdefg",
            "z9",
            "cus_NffrFeUfNV2Hib",
            "si_bench0000001_0",
            "key_Zz09zZ90aAbB1234",
            "@acme/model",
            "key:key_1",
            "ÿ",
            "sub_1MowQVLkdIwHu7ixeRlqHVzs",
            long.as_str(),
            other.as_str(),
        ];
        let mut names = Names::default();
        let slots: Vec<u32> = names_in.iter().map(|n| names.intern(n)).collect();
        for (name, slot) in names_in.iter().zip(&slots) {
            assert_eq!(&*names.get(*slot), *name);
            assert_eq!(names.find(name), Some(*slot), "{name:?}");
        }
        // Names that differ only past a packed name's end, or in how they are kept, differ.
        for near in [
            "abc_",
            "ab_",
            "abcdef",
            "a0",
            "cus_NffrFeUfNV2Hi",
            "@acme/mode",
        ] {
            assert_eq!(names.find(near), None, "{near:?}");
        }
        assert_eq!(names.len(), names_in.len());
    }

    #[test]
    fn an_id_takes_six_bits_a_character() {
        let mut bytes = 0;
        spell("cus_NffrFeUfNV2Hib", |s| bytes = s.len());
        assert_eq!(bytes, 14, "18 characters in 108 bits");
        spell("@acme/model", |s| bytes = s.len());
        assert_eq!(bytes, 12, "other text as it is, after one byte");
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
