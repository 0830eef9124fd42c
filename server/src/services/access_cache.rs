//! A short-lived, bounded cache of access records (username → account,
//! access key hash, stranger policy), so that an unidentified send does not
//! cost a database read; the authenticated path reads nothing per send
//! either (its device is read once per connection).
//!
//! An entry lives [`TTL`]. This process forgets an account's entry when it
//! sets the account's access key and when it applies the account's
//! revocation, and a read that began before such a forget is not kept;
//! another process's change is seen here within `TTL` at most
//! (`docs/decisions.md` 48). Names with no account are cached apart, so
//! that a refusal takes as long whether the account exists or not, and
//! made-up names cannot push accounts out; a map at [`CAPACITY`] entries
//! is emptied.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::AccessRecord;

/// How long an entry is used.
pub const TTL: Duration = Duration::from_secs(30);
/// Entries held at most, of accounts that exist and, apart, of names
/// that do not.
pub const CAPACITY: usize = 100_000;

/// See the module doc.
#[derive(Default)]
pub struct AccessCache {
    /// Accounts that exist.
    present: Mutex<HashMap<String, (Instant, AccessRecord)>>,
    /// Names with no enabled account: cached too, so that a lookup takes
    /// as long whether the account exists or not; made-up names fill only
    /// this map.
    absent: Mutex<HashMap<String, Instant>>,
    /// Counts forgets: a record read before one is not kept.
    generation: AtomicU64,
}

impl std::fmt::Debug for AccessCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessCache").finish_non_exhaustive()
    }
}

/// What the cache knows of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cached {
    /// An enabled account with this record.
    Present(AccessRecord),
    /// No enabled account has the name.
    Absent,
}

impl AccessCache {
    /// What was read of `username` less than [`TTL`] ago, if anything.
    pub fn get(&self, username: &str, now: Instant) -> Option<Cached> {
        let fresh = |at: &Instant| now.saturating_duration_since(*at) < TTL;
        let present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, record)) = present.get(username).filter(|(at, _)| fresh(at)) {
            return Some(Cached::Present(record.clone()));
        }
        drop(present);
        let absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        absent
            .get(username)
            .filter(|at| fresh(at))
            .map(|_| Cached::Absent)
    }

    /// The current generation, taken before reading the database for
    /// [`AccessCache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps what was read of `username` at `now`, unless something was
    /// forgotten since `generation` (the read may predate the change). A
    /// full map is emptied, which costs one pass per [`CAPACITY`] inserts.
    pub fn put(&self, username: &str, found: Option<AccessRecord>, now: Instant, generation: u64) {
        match found {
            Some(record) => {
                let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
                if self.generation() != generation {
                    return;
                }
                if present.len() >= CAPACITY {
                    present.clear();
                }
                present.insert(username.to_owned(), (now, record));
            }
            None => {
                let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
                if self.generation() != generation {
                    return;
                }
                if absent.len() >= CAPACITY {
                    absent.clear();
                }
                absent.insert(username.to_owned(), now);
            }
        }
    }

    /// Forgets `username`'s entries (its key or policy changed, or the
    /// account was just registered).
    pub fn forget(&self, username: &str) {
        let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        present.remove(username);
        drop(present);
        let mut absent = self.absent.lock().unwrap_or_else(|e| e.into_inner());
        absent.remove(username);
    }

    /// Forgets `account`'s entry (it was disabled): one pass, as rare as
    /// disabling an account.
    pub fn forget_account(&self, account: i64) {
        let mut present = self.present.lock().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        present.retain(|_, (_, record)| record.account_id != account);
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

    fn put(cache: &AccessCache, name: &str, found: Option<AccessRecord>, now: Instant) {
        cache.put(name, found, now, cache.generation());
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = AccessCache::default();
        let start = Instant::now();
        put(&cache, "bob", Some(record(2)), start);
        put(&cache, "nobody", None, start);
        let present = Some(Cached::Present(record(2)));
        assert_eq!(cache.get("bob", start + TTL / 2), present);
        assert_eq!(cache.get("nobody", start + TTL / 2), Some(Cached::Absent));
        assert_eq!(cache.get("bob", start + TTL), None);
        assert_eq!(cache.get("nobody", start + TTL), None);
        assert_eq!(cache.get("carol", start), None);
    }

    #[test]
    fn forgetting_drops_entries_and_reads_made_before() {
        let cache = AccessCache::default();
        let now = Instant::now();
        put(&cache, "bob", Some(record(2)), now);
        put(&cache, "carol", Some(record(3)), now);
        cache.forget_account(2);
        assert_eq!(cache.get("bob", now), None);
        cache.forget("carol");
        assert_eq!(cache.get("carol", now), None);
        // A read that began before a forget is not kept.
        let before = cache.generation();
        cache.forget("dave");
        cache.put("carol", Some(record(3)), now, before);
        assert_eq!(cache.get("carol", now), None);
    }

    #[test]
    fn made_up_names_do_not_push_out_accounts() {
        let cache = AccessCache::default();
        let now = Instant::now();
        put(&cache, "bob", Some(record(2)), now);
        for i in 0..=CAPACITY {
            put(&cache, &format!("x{i}"), None, now);
        }
        assert_eq!(cache.get("bob", now), Some(Cached::Present(record(2))));
        // The full map of absent names was emptied once.
        assert_eq!(cache.get("x0", now), None);
        assert_eq!(
            cache.get(&format!("x{CAPACITY}"), now),
            Some(Cached::Absent)
        );
    }
}
