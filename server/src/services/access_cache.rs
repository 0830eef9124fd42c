//! A short-lived, bounded cache of access records (username → account,
//! access key hash, stranger policy), so that an unidentified send does not
//! cost a database read; the authenticated path reads nothing per send
//! either (its device is read once per connection).
//!
//! An entry lives [`TTL`]. This process forgets an account's entry when it
//! sets the account's access key and when it applies the account's
//! revocation; another process's change is seen here within `TTL` at
//! most (`docs/decisions.md` 48). Accounts that do not exist are not
//! cached, so that made-up names cannot fill the cache; at [`CAPACITY`]
//! entries, expired ones are dropped, and if none was, everything is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::AccessRecord;

/// How long an entry is used.
pub const TTL: Duration = Duration::from_secs(30);
/// Entries held at most.
pub const CAPACITY: usize = 100_000;

/// See the module doc.
#[derive(Debug, Default)]
pub struct AccessCache {
    entries: Mutex<HashMap<String, (Instant, AccessRecord)>>,
}

impl AccessCache {
    /// `username`'s record, if cached less than [`TTL`] ago.
    pub fn get(&self, username: &str, now: Instant) -> Option<AccessRecord> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(username)
            .filter(|(at, _)| now.saturating_duration_since(*at) < TTL)
            .map(|(_, record)| record.clone())
    }

    /// Keeps `record` for `username`, read from the database at `now`.
    pub fn put(&self, username: &str, record: AccessRecord, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CAPACITY && !entries.contains_key(username) {
            entries.retain(|_, (at, _)| now.saturating_duration_since(*at) < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(username.to_owned(), (now, record));
    }

    /// Forgets `account`'s entry (its key or policy changed, or it was
    /// disabled).
    pub fn forget_account(&self, account: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (_, record)| record.account_id != account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(account_id: i64) -> AccessRecord {
        AccessRecord {
            account_id,
            key_hash: Some([account_id.to_le_bytes()[0]; 32]),
            sealed_from_strangers: false,
        }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = AccessCache::default();
        let start = Instant::now();
        cache.put("bob", record(2), start);
        assert_eq!(cache.get("bob", start + TTL / 2), Some(record(2)));
        assert_eq!(cache.get("bob", start + TTL), None);
        assert_eq!(cache.get("carol", start), None);
    }

    #[test]
    fn an_account_is_forgotten_by_id() {
        let cache = AccessCache::default();
        let now = Instant::now();
        cache.put("bob", record(2), now);
        cache.put("carol", record(3), now);
        cache.forget_account(2);
        assert_eq!(cache.get("bob", now), None);
        assert_eq!(cache.get("carol", now), Some(record(3)));
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_everything() {
        let cache = AccessCache::default();
        let start = Instant::now();
        for i in 0..CAPACITY {
            cache.put(&format!("u{i}"), record(i64::try_from(i).unwrap()), start);
        }
        // Nothing expired: room is made by dropping everything.
        cache.put("late", record(-1), start);
        assert_eq!(cache.get("u0", start), None);
        assert_eq!(cache.get("late", start), Some(record(-1)));
        // Expired entries go first.
        let later = start + TTL;
        for i in 0..CAPACITY - 1 {
            cache.put(&format!("v{i}"), record(i64::try_from(i).unwrap()), later);
        }
        cache.put("last", record(-2), later);
        assert_eq!(cache.get("v0", later), Some(record(0)));
        assert_eq!(cache.get("last", later), Some(record(-2)));
    }
}
