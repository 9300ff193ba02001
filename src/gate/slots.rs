//! A map the hot path reads without taking any lock: values live in chunks that never move
//! (so a reference to one stays good), and the index from key to place is an immutable table
//! swapped whole. A key not yet in the table goes to a small pending table behind a mutex,
//! which [`Slots::publish`] (the flusher, about once a second) folds into the next table: so a
//! lock is taken only in the first second of a key's life, never for one in use.

use std::hash::Hash;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use arc_swap::ArcSwap;

use super::FastMap;

/// Values per chunk, and chunks at most: room for 64 million values.
const CHUNK: usize = 1 << 14;
const CHUNKS: usize = 1 << 12;
/// Room the pending table keeps after its keys are published; more is given back.
const PENDING_KEPT: usize = 1 << 10;

pub struct Slots<K, V> {
    index: ArcSwap<FastMap<K, u32>>,
    pending: Mutex<FastMap<K, u32>>,
    chunks: Box<[OnceLock<Box<[V]>>]>,
    len: AtomicU32,
}

impl<K, V> Default for Slots<K, V> {
    fn default() -> Self {
        Self {
            index: ArcSwap::from_pointee(FastMap::default()),
            pending: Mutex::new(FastMap::default()),
            chunks: (0..CHUNKS).map(|_| OnceLock::new()).collect(),
            len: AtomicU32::new(0),
        }
    }
}

impl<K: Hash + Eq + Copy, V: Default> Slots<K, V> {
    /// The value of `key`, if it has one.
    pub fn get(&self, key: &K) -> Option<&V> {
        if let Some(&at) = self.index.load().get(key) {
            return Some(self.at(at));
        }
        let pending = self.pending.lock().expect("slots lock poisoned");
        Some(self.at(self.place(&pending, key)?))
    }

    /// The value of `key`, made (`V::default()`) if it has none.
    pub fn get_or_insert(&self, key: K) -> &V {
        if let Some(&at) = self.index.load().get(&key) {
            return self.at(at);
        }
        let mut pending = self.pending.lock().expect("slots lock poisoned");
        let at = match self.place(&pending, &key) {
            Some(at) => at,
            None => {
                let at = self.len.load(Ordering::Acquire);
                let chunk = at as usize / CHUNK;
                assert!(chunk < CHUNKS, "more than {} values", CHUNK * CHUNKS);
                self.chunks[chunk].get_or_init(|| (0..CHUNK).map(|_| V::default()).collect());
                self.len.store(at + 1, Ordering::Release);
                pending.insert(key, at);
                at
            }
        };
        self.at(at)
    }

    /// Where `key`'s value is, looked up with the pending table locked: there, or in the
    /// table if it was published meanwhile (the table is swapped before the pending entries go).
    fn place(&self, pending: &FastMap<K, u32>, key: &K) -> Option<u32> {
        pending
            .get(key)
            .copied()
            .or_else(|| self.index.load().get(key).copied())
    }

    /// Holds the one lock of these slots, as a thread making a new key would.
    #[cfg(test)]
    pub fn lock_pending(&self) -> std::sync::MutexGuard<'_, FastMap<K, u32>> {
        self.pending.lock().expect("slots lock poisoned")
    }

    /// Folds the keys made since the last call into the table the hot path reads.
    pub fn publish(&self) {
        let mut pending = self.pending.lock().expect("slots lock poisoned");
        if pending.is_empty() {
            return;
        }
        let current = self.index.load_full();
        let mut next =
            FastMap::with_capacity_and_hasher(current.len() + pending.len(), Default::default());
        next.extend(current.iter().map(|(k, at)| (*k, *at)));
        next.extend(pending.iter().map(|(k, at)| (*k, *at)));
        self.index.store(std::sync::Arc::new(next));
        // A burst of new keys (a load's first seconds) grew the pending table; kept, its room
        // would stay for the process's life, beside the table that now holds those keys.
        if pending.capacity() > PENDING_KEPT {
            *pending = FastMap::default();
        } else {
            pending.clear();
        }
    }

    /// Every key with its value, published or not.
    pub fn for_each(&self, mut f: impl FnMut(K, &V)) {
        let pending: Vec<(K, u32)> = self
            .pending
            .lock()
            .expect("slots lock poisoned")
            .iter()
            .map(|(k, at)| (*k, *at))
            .collect();
        for (k, at) in self.index.load().iter() {
            f(*k, self.at(*at));
        }
        for (k, at) in pending {
            f(k, self.at(at));
        }
    }

    /// Bytes held: the chunks made, and the table.
    pub fn heap_bytes(&self) -> usize {
        let chunks = (self.len.load(Ordering::Acquire) as usize).div_ceil(CHUNK);
        let entry = size_of::<(K, u32)>() + 1;
        chunks * CHUNK * size_of::<V>()
            + self.index.load().capacity() * entry
            + self.chunks.len() * size_of::<OnceLock<Box<[V]>>>()
    }

    fn at(&self, at: u32) -> &V {
        let at = at as usize;
        &self.chunks[at / CHUNK]
            .get()
            .expect("a value's chunk is made before its place is given out")[at % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn a_value_is_the_same_before_and_after_it_is_published() {
        let slots: Slots<u32, AtomicU64> = Slots::default();
        slots.get_or_insert(7).fetch_add(2, Ordering::Relaxed);
        assert!(slots.get(&8).is_none());
        assert_eq!(slots.get(&7).unwrap().load(Ordering::Relaxed), 2, "pending");
        slots.publish();
        slots.get_or_insert(7).fetch_add(3, Ordering::Relaxed);
        assert_eq!(
            slots.get(&7).unwrap().load(Ordering::Relaxed),
            5,
            "published"
        );
        let mut all = Vec::new();
        slots.for_each(|k, v| all.push((k, v.load(Ordering::Relaxed))));
        assert_eq!(all, [(7, 5)]);
    }

    #[test]
    fn a_burst_of_new_keys_leaves_no_room_behind_once_published() {
        let slots: Slots<u32, AtomicU64> = Slots::default();
        for key in 0..10_000 {
            slots
                .get_or_insert(key)
                .store(u64::from(key), Ordering::Relaxed);
        }
        assert!(slots.lock_pending().capacity() >= 10_000);
        slots.publish();
        assert!(slots.lock_pending().capacity() <= PENDING_KEPT);
        assert_eq!(
            slots.get(&9_999).map(|v| v.load(Ordering::Relaxed)),
            Some(9_999)
        );
    }

    #[test]
    fn keys_made_on_many_threads_each_get_one_value() {
        let slots: Slots<u32, AtomicU64> = Slots::default();
        std::thread::scope(|s| {
            for t in 0..4 {
                let slots = &slots;
                s.spawn(move || {
                    for n in 0..20_000u32 {
                        slots
                            .get_or_insert(n % 5_000)
                            .fetch_add(1, Ordering::Relaxed);
                        if t == 0 && n % 1_000 == 0 {
                            slots.publish();
                        }
                    }
                });
            }
        });
        slots.publish();
        let mut total = 0;
        let mut keys = 0;
        slots.for_each(|_, v| {
            keys += 1;
            total += v.load(Ordering::Relaxed);
        });
        assert_eq!((keys, total), (5_000, 80_000));
    }
}
