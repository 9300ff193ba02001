//! The view's keys, by the first half of their hash: one sorted array and a small directory
//! into it, instead of a hash map. A key hash is uniform, so the array is cut into buckets of
//! about two keys each by the hash's top bits, and the directory says where each bucket
//! starts: a lookup reads the directory, then a bucket of adjacent entries (about what a hash
//! map's control bytes and slot cost). What it saves is the map's empty slots: a map grows by
//! doubling, so at a million keys half of its slots were empty (52 bytes a key against 26).
//!
//! Keys are pushed in any order and the table is sealed (sorted, its directory built) before
//! it is read; every way tables are made ends in [`KeyTable::seal`].

/// Keys per bucket of the directory, on average.
const PER_BUCKET: usize = 2;

/// The first 128 bits of a key's SHA-256, as the view's key table holds them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct KeyTag(pub [u64; 2]);

/// A key's slot and where its customer is in the view.
#[derive(Clone, Copy, Debug)]
pub struct KeyRef {
    pub key: u32,
    pub customer: u32,
}

#[derive(Clone, Default)]
pub struct KeyTable {
    /// Sorted by tag once sealed; keys pushed since are at the end.
    entries: Vec<(KeyTag, KeyRef)>,
    /// Where each bucket starts in `entries`, and one more entry: where the last one ends.
    /// Empty while keys pushed since the last seal are not yet in place.
    starts: Vec<u32>,
}

impl KeyTable {
    /// Adds a key; it can be found once the table is sealed. A tag is a key's hash, which the
    /// ledger holds once: pushed twice, one of the two is kept.
    pub fn push(&mut self, tag: KeyTag, key: KeyRef) {
        self.entries.push((tag, key));
        self.starts.clear();
    }

    pub fn reserve(&mut self, additional: usize) {
        self.entries.reserve_exact(additional);
    }

    /// Puts the keys pushed in place: sorted by tag, then the directory built over them.
    pub fn seal(&mut self) {
        if !self.starts.is_empty() {
            return;
        }
        self.entries.sort_unstable_by_key(|(tag, _)| *tag);
        self.entries.dedup_by_key(|(tag, _)| *tag);
        self.entries.shrink_to_fit();
        self.index();
    }

    /// Builds the directory over entries already in order.
    fn index(&mut self) {
        let buckets = self.entries.len() / PER_BUCKET + 1;
        let mut starts = Vec::with_capacity(buckets + 1);
        let mut at = 0;
        for bucket in 0..buckets {
            while at < self.entries.len() && bucket_of(&self.entries[at].0, buckets) < bucket {
                at += 1;
            }
            starts.push(at as u32);
        }
        starts.push(self.entries.len() as u32);
        self.starts = starts;
    }

    /// The key with this tag. The table must be sealed.
    pub fn get(&self, tag: &KeyTag) -> Option<&KeyRef> {
        debug_assert!(
            !self.starts.is_empty() || self.entries.is_empty(),
            "a key table is read only sealed"
        );
        let buckets = self.starts.len().checked_sub(1)?;
        let bucket = bucket_of(tag, buckets);
        let (start, end) = (
            self.starts[bucket] as usize,
            self.starts[bucket + 1] as usize,
        );
        self.entries[start..end]
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, key)| key)
    }

    /// Keeps the keys `keep` says to, and seals the table.
    pub fn retain(&mut self, mut keep: impl FnMut(&KeyRef) -> bool) {
        self.entries.retain(|(_, key)| keep(key));
        // Keeping some of a sealed table's entries leaves them in order: only the directory
        // changes.
        if self.starts.is_empty() {
            self.seal();
        } else {
            self.index();
        }
    }

    /// Every key, for changing where its customer is (the tags stay as they are).
    pub fn refs_mut(&mut self) -> impl Iterator<Item = &mut KeyRef> {
        self.entries.iter_mut().map(|(_, key)| key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(KeyTag, KeyRef)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes held, for the memory figures.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<(KeyTag, KeyRef)>()
            + self.starts.capacity() * size_of::<u32>()
    }
}

/// The bucket of `tag` among `buckets`: its hash's top bits scaled to the count, so buckets
/// follow the tags' order.
fn bucket_of(tag: &KeyTag, buckets: usize) -> usize {
    ((u128::from(tag.0[0]) * buckets as u128) >> 64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tag spread over the range as a key hash's first bits are.
    fn tag(n: u64) -> KeyTag {
        KeyTag([n.wrapping_mul(0x9e37_79b9_7f4a_7c15), n])
    }

    fn key(n: u32) -> KeyRef {
        KeyRef {
            key: n,
            customer: n / 2,
        }
    }

    #[test]
    fn every_key_pushed_is_found_and_no_other() {
        for count in [0_u64, 1, 2, 3, 10, 1000, 10_007] {
            let mut table = KeyTable::default();
            for n in (0..count).rev() {
                table.push(tag(n), key(n as u32));
            }
            table.seal();
            assert_eq!(table.len(), count as usize);
            for n in 0..count {
                assert_eq!(table.get(&tag(n)).map(|k| k.key), Some(n as u32));
            }
            for n in count..count + 100 {
                assert!(
                    table.get(&tag(n)).is_none(),
                    "{n} of {count} was never pushed"
                );
            }
        }
    }

    #[test]
    fn the_ends_of_the_range_are_found() {
        let mut table = KeyTable::default();
        let ends = [
            KeyTag([0, 0]),
            KeyTag([u64::MAX, u64::MAX]),
            KeyTag([u64::MAX, 0]),
        ];
        for (n, t) in ends.iter().enumerate() {
            table.push(*t, key(n as u32));
        }
        table.seal();
        for (n, t) in ends.iter().enumerate() {
            assert_eq!(table.get(t).map(|k| k.key), Some(n as u32));
        }
        assert!(table.get(&KeyTag([u64::MAX, 1])).is_none());
    }

    #[test]
    fn a_tag_pushed_again_is_kept_once() {
        let mut table = KeyTable::default();
        table.push(tag(1), key(1));
        table.push(tag(2), key(2));
        table.push(tag(1), key(1));
        table.seal();
        assert_eq!(table.len(), 2);
        assert_eq!(table.get(&tag(1)).map(|k| k.key), Some(1));
    }

    #[test]
    fn keys_pushed_after_a_seal_are_found_after_the_next() {
        let mut table = KeyTable::default();
        for n in 0..500 {
            table.push(tag(n), key(n as u32));
        }
        table.seal();
        for n in 500..600 {
            table.push(tag(n), key(n as u32));
        }
        table.seal();
        table.retain(|k| k.key % 3 != 0);
        for n in 0..600 {
            let found = table.get(&tag(n)).map(|k| k.key);
            assert_eq!(found, (n % 3 != 0).then_some(n as u32), "key {n}");
        }
        for k in table.refs_mut() {
            k.customer = 0;
        }
        assert!(table.iter().all(|(_, k)| k.customer == 0));
    }
}
