//! Attempts counted per client (or per anything) in a fixed window, for the forms and tokens
//! that must not be tried at speed, and who the client is behind a proxy.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderMap, HeaderName};

/// Windows remembered at once; beyond it the ended ones are dropped first.
const KEPT: usize = 10_000;

/// Up to `allowed` attempts per key in each `window`.
pub struct Windows<K> {
    allowed: u32,
    window: Duration,
    seen: Mutex<HashMap<K, (Instant, u32)>>,
}

impl<K: Hash + Eq> Windows<K> {
    pub fn new(allowed: u32, window: Duration) -> Self {
        Self {
            allowed,
            window,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Seconds until `key` may try again, when it has used up its window at `now`.
    pub fn locked_for(&self, key: &K, now: Instant) -> Option<u64> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (since, count) = seen.get(key)?;
        let left = self
            .window
            .checked_sub(now.duration_since(*since))
            .filter(|left| !left.is_zero())?;
        (*count >= self.allowed).then(|| left.as_secs().max(1))
    }

    /// Counts one attempt of `key` at `now`.
    pub fn count(&self, key: K, now: Instant) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= KEPT {
            seen.retain(|_, (since, _)| now.duration_since(*since) < self.window);
        }
        let entry = seen.entry(key).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }

    /// Counts one attempt unless the window is used up; `Err` holds the seconds to wait.
    pub fn try_count(&self, key: K, now: Instant) -> Result<(), u64> {
        if let Some(wait) = self.locked_for(&key, now) {
            return Err(wait);
        }
        self.count(key, now);
        Ok(())
    }
}

/// The client's address: from the proxy's header when `CLIENT_IP_HEADER` names one, else the
/// connection's.
pub struct ClientAddress {
    header: Option<HeaderName>,
}

impl ClientAddress {
    pub fn new(header: Option<&str>) -> Self {
        Self {
            header: header.and_then(|h| HeaderName::try_from(h).ok()),
        }
    }

    pub fn of(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        if let Some(name) = &self.header {
            return headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|v| v.trim().parse().ok());
        }
        peer.map(|a| a.ip())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_locked_once_its_window_is_used_until_the_window_ends() {
        let windows = Windows::new(2, Duration::from_secs(60));
        let start = Instant::now();
        assert_eq!(windows.try_count("a", start), Ok(()));
        assert_eq!(windows.try_count("a", start), Ok(()));
        assert_eq!(windows.try_count("a", start), Err(60));
        assert_eq!(windows.try_count("b", start), Ok(()), "per key");
        let later = start + Duration::from_secs(60);
        assert_eq!(windows.try_count("a", later), Ok(()), "a new window");
    }
}
