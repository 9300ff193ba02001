//! Ids used as hash-map keys on the hot path. Their hash is computed once, when the view is
//! built, and two handles to one allocation compare equal without reading the text: a lookup
//! then touches the map and nothing else.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

/// One hash for the whole process, so ids made apart from each other (the view, rows read
/// back from the database) find the same entries.
const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x7f4a_7c15);

#[derive(Clone)]
pub struct Id {
    hash: u64,
    text: Arc<str>,
}

impl Id {
    pub fn new(text: &str) -> Self {
        Self::from(Arc::<str>::from(text))
    }

    /// The text, shared.
    pub fn text(&self) -> &Arc<str> {
        &self.text
    }
}

impl From<Arc<str>> for Id {
    fn from(text: Arc<str>) -> Self {
        Self {
            hash: SEED.hash_one(&*text),
            text,
        }
    }
}

impl From<String> for Id {
    fn from(text: String) -> Self {
        Self::from(Arc::<str>::from(text))
    }
}

impl Hash for Id {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for Id {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && (Arc::ptr_eq(&self.text, &other.text) || self.text == other.text)
    }
}

impl Eq for Id {}

impl Deref for Id {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.text, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_apart_from_the_same_text_are_one_key() {
        let mut map = std::collections::HashMap::new();
        map.insert(Id::new("si_1"), 1);
        assert_eq!(map.get(&Id::from("si_1".to_owned())), Some(&1));
        assert_eq!(map.get(&Id::new("si_2")), None);
    }
}
