//! A small in-process cache of values by text key, each trusted for a fixed time after it
//! was read. It only saves queries: a lost or cleared entry is read again, so past its
//! capacity it simply starts afresh. Time is a parameter (the caller's [`Clock`]).
//!
//! [`Clock`]: crate::clock::Clock

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    entries: Mutex<HashMap<String, (V, DateTime<Utc>)>>,
    ttl: TimeDelta,
    capacity: usize,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new(ttl: TimeDelta, capacity: usize) -> TtlCache<V> {
        TtlCache {
            entries: Mutex::new(HashMap::new()),
            ttl,
            capacity,
        }
    }

    /// The value stored under `key` less than the TTL before `now` for which `usable` holds;
    /// any other entry under `key` is dropped.
    pub(crate) fn get(
        &self,
        key: &str,
        now: DateTime<Utc>,
        usable: impl Fn(&V) -> bool,
    ) -> Option<V> {
        let mut entries = self.lock();
        let fresh = entries
            .get(key)
            .filter(|(value, at)| now >= *at && now - *at < self.ttl && usable(value))
            .map(|(value, _)| value.clone());
        if fresh.is_none() {
            entries.remove(key);
        }
        fresh
    }

    /// Stores `value` under `key`, as read at `now`.
    pub(crate) fn put(&self, key: String, value: V, now: DateTime<Utc>) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (value, now));
    }

    pub(crate) fn remove(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Keeps only the entries for which `keep` holds.
    pub(crate) fn retain(&self, keep: impl Fn(&V) -> bool) {
        self.lock().retain(|_, (value, _)| keep(value));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, (V, DateTime<Utc>)>> {
        // A cache only: a panic elsewhere cannot make it wrong, at worst stale for the TTL.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
