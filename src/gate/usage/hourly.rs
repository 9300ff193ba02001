//! The per-hour activity's table ([`super`]): a key's allowed predictions and last use
//! under one column (an hour and a tag, numbered per batch), 12 bytes an entry where a map of
//! the same pairs took 16. At 100,000 keys under load the table holds 131,072 entries or more:
//! about 5 bytes a key (bench/results/2026-12-07-pg-rows.md).

use std::hash::BuildHasher as _;

use hashbrown::HashTable;

use super::FastMap;

/// One key's use of one column: 12 bytes, the column in 16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    key: u32,
    count: u32,
    column: u16,
    /// The last use, as seconds into the column's hour.
    last: u16,
}

/// (key slot, column) -> (count, last use as seconds into the hour). A batch's columns past
/// 16 bits (an owner's many predictors over a day and more of failed writes) go to `wide`, a
/// map of the same pairs: nothing is lost, the common case is small.
#[derive(Default)]
pub(super) struct Hourly {
    narrow: HashTable<Entry>,
    wide: FastMap<(u32, u32), (u32, u16)>,
    state: foldhash::quality::RandomState,
}

impl Hourly {
    /// Room for `entries` without growing.
    pub(super) fn with_capacity(entries: usize) -> Self {
        Self {
            narrow: HashTable::with_capacity(entries),
            ..Self::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.narrow.len() + self.wide.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds `count` uses of `column` by `key`, the last `last` seconds into the hour.
    pub(super) fn add(&mut self, key: u32, column: u32, count: u32, last: u16) {
        let Ok(column) = u16::try_from(column) else {
            let (total, latest) = self.wide.entry((key, column)).or_default();
            *total += count;
            *latest = (*latest).max(last);
            return;
        };
        let Self { narrow, state, .. } = self;
        let hash = state.hash_one((key, column));
        let same = |e: &Entry| e.key == key && e.column == column;
        if let Some(entry) = narrow.find_mut(hash, same) {
            entry.count += count;
            entry.last = entry.last.max(last);
            return;
        }
        let entry = Entry {
            key,
            count,
            column,
            last,
        };
        narrow.insert_unique(hash, entry, |e| state.hash_one((e.key, e.column)));
    }

    /// The count and last use of `column` by `key`, if it was used.
    pub(super) fn get(&self, key: u32, column: u32) -> Option<(u32, u16)> {
        let Ok(narrow) = u16::try_from(column) else {
            return self.wide.get(&(key, column)).copied();
        };
        let hash = self.state.hash_one((key, narrow));
        self.narrow
            .find(hash, |e| e.key == key && e.column == narrow)
            .map(|e| (e.count, e.last))
    }

    /// Every (key, column) with its (count, last use), in no particular order.
    pub(super) fn iter(&self) -> impl ExactSizeIterator<Item = ((u32, u32), (u32, u16))> + use<'_> {
        let narrow = self
            .narrow
            .iter()
            .map(|e| ((e.key, u32::from(e.column)), (e.count, e.last)));
        let wide = self.wide.iter().map(|(&at, &counted)| (at, counted));
        Counted {
            left: self.len(),
            pairs: narrow.chain(wide),
        }
    }
}

/// An iterator that knows how many items it has left.
struct Counted<I> {
    left: usize,
    pairs: I,
}

impl<I: Iterator> Iterator for Counted<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let next = self.pairs.next()?;
        self.left -= 1;
        Some(next)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl<I: Iterator> ExactSizeIterator for Counted<I> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_takes_12_bytes() {
        assert_eq!(size_of::<Entry>(), 12);
    }

    #[test]
    fn uses_add_up_per_key_and_column_past_16_bits_too() {
        let mut hourly = Hourly::default();
        let wide = u32::from(u16::MAX) + 1;
        for column in [0, 7, u32::from(u16::MAX), wide, wide + 9] {
            hourly.add(1, column, 2, 10);
            hourly.add(1, column, 3, 5);
            hourly.add(2, column, 1, 20);
        }
        assert_eq!(hourly.len(), 10);
        assert_eq!(hourly.iter().len(), 10);
        for column in [0, 7, u32::from(u16::MAX), wide, wide + 9] {
            assert_eq!(hourly.get(1, column), Some((5, 10)), "column {column}");
            assert_eq!(hourly.get(2, column), Some((1, 20)), "column {column}");
            assert_eq!(hourly.get(3, column), None);
        }
        assert_eq!(hourly.get(1, 8), None);
        let mut all: Vec<_> = hourly.iter().collect();
        all.sort();
        assert_eq!(all[0], ((1, 0), (5, 10)));
        assert_eq!(all[9], ((2, wide + 9), (1, 20)));
        assert!(Hourly::with_capacity(100).is_empty());
    }
}
