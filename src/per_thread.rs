//! A value per thread that a background reader can still see: the hot path writes only its own
//! thread's copy (no lock or cache line shared with other workers), and a flush or a scrape
//! reads every thread's copy through a list kept beside them.

use std::any::Any;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Numbers the sets, so a thread's copies of different sets are told apart.
static NEXT_SET: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's copy of each set it has used.
    static MINE: RefCell<Vec<(u64, Arc<dyn Any + Send + Sync>)>> = const { RefCell::new(Vec::new()) };
}

/// One `T` per thread that used it, each made on its thread's first use.
pub struct PerThread<T> {
    id: u64,
    /// Every thread's copy, for the readers.
    all: Mutex<Vec<Arc<T>>>,
}

impl<T: Default + Send + Sync + 'static> Default for PerThread<T> {
    fn default() -> Self {
        Self {
            id: NEXT_SET.fetch_add(1, Ordering::Relaxed),
            all: Mutex::default(),
        }
    }
}

impl<T: Default + Send + Sync + 'static> PerThread<T> {
    /// Runs `f` on this thread's copy. Only a thread's first use takes the list's lock. `f`
    /// must not use another `PerThread` for the first time on this thread (it would find this
    /// thread's list borrowed).
    pub fn with_mine<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        MINE.with(|mine| {
            let found = mine.borrow().iter().position(|(id, _)| *id == self.id);
            let at = found.unwrap_or_else(|| {
                let copy = Arc::new(T::default());
                self.list().push(Arc::clone(&copy));
                let mut mine = mine.borrow_mut();
                mine.push((self.id, copy));
                mine.len() - 1
            });
            let mine = mine.borrow();
            let copy = mine[at]
                .1
                .downcast_ref::<T>()
                .expect("a set's copies are all of its type");
            f(copy)
        })
    }

    /// Every thread's copy, as it is now.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.list().clone()
    }

    /// The list of copies, locked: held, no thread can make its first copy.
    pub fn list(&self) -> MutexGuard<'_, Vec<Arc<T>>> {
        self.all.lock().expect("per-thread list lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_thread_writes_its_own_copy_and_the_reader_sees_them_all() {
        let counts: Arc<PerThread<AtomicU64>> = Arc::default();
        let other: PerThread<AtomicU64> = PerThread::default();
        let threads: Vec<_> = (0..3)
            .map(|n| {
                let counts = Arc::clone(&counts);
                std::thread::spawn(move || {
                    for _ in 0..=n {
                        counts.with_mine(|c| c.fetch_add(1, Ordering::Relaxed));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        other.with_mine(|c| c.fetch_add(100, Ordering::Relaxed));
        let copies: Vec<u64> = counts
            .all()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(copies.len(), 3, "one copy per thread that used it");
        assert_eq!(copies.iter().sum::<u64>(), 1 + 2 + 3);
        assert_eq!(other.all().len(), 1, "sets are apart");
    }
}
