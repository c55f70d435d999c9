//! Bounded, TTL-expiring in-process replay store.
//!
//! Design: `SHARDS` mutex-protected shards, each a `HashMap<digest, expiry>` plus a min-heap of
//! `(expiry, digest)` so expired entries are reclaimed in expiry order, O(log n) each, on every
//! insert into that shard. A global atomic counter bounds the number of live map entries to
//! `capacity` exactly: a slot is reserved with `fetch_add` before inserting. When no slot is left,
//! every shard is swept once for expired entries; if the table is still full of live entries,
//! the check is refused (`StoreError::Full` → 503): a live key is never forgotten to make room.
//!
//! Check-and-set of one key happens under its shard's lock, so it is exactly-once under
//! concurrency. No lock is held while taking another one (the full sweep drops the shard
//! lock first), so there is no lock-order deadlock.

use std::cmp::Reverse;
use std::collections::hash_map::RandomState;
use std::collections::{BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use crate::backend::{ReplayBackend, StoreError};
use crate::key::{ReplayKey, KEY_HASH_LEN};

type Digest = [u8; KEY_HASH_LEN];

/// Number of shards (a power of two).
const SHARDS: usize = 64;

#[derive(Default)]
struct Shard {
    /// digest -> expiry (ms since the backend's epoch); an entry is live while expiry > now.
    map: HashMap<Digest, u64>,
    /// Min-heap of (expiry, digest). Every map entry has exactly one heap entry with the same
    /// expiry; a heap entry whose expiry differs from the map's is stale and is dropped.
    heap: BinaryHeap<Reverse<(u64, Digest)>>,
}

impl Shard {
    /// Removes every entry that has expired at `now`; returns how many map entries went.
    fn reclaim(&mut self, now: u64) -> usize {
        let mut removed = 0;
        while let Some(Reverse((expiry, _))) = self.heap.peek() {
            if *expiry > now {
                break;
            }
            let Some(Reverse((expiry, digest))) = self.heap.pop() else {
                break;
            };
            if self.map.get(&digest) == Some(&expiry) {
                self.map.remove(&digest);
                removed += 1;
            }
        }
        if removed > 0 {
            // Give memory back after a burst (amortised: only when 3/4 of the table is unused).
            let cap = self.map.capacity();
            if cap > 4096 && self.map.len() < cap / 4 {
                self.map.shrink_to(self.map.len() * 2);
                self.heap.shrink_to(self.heap.len() * 2);
            }
        }
        removed
    }
}

/// The `memory` backend. See the module docs.
pub struct MemoryBackend {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    len: AtomicUsize,
    capacity: usize,
    epoch: Instant,
}

impl MemoryBackend {
    /// A store holding at most `capacity` live keys (at least 1).
    pub fn new(capacity: usize) -> Self {
        let shards = (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect();
        Self {
            shards,
            hasher: RandomState::new(),
            len: AtomicUsize::new(0),
            capacity: capacity.max(1),
            epoch: Instant::now(),
        }
    }

    /// Maximum number of live keys.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of entries currently held (live, or expired but not yet reclaimed).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Milliseconds since this store was created (its clock).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn lock(&self, idx: usize) -> Option<MutexGuard<'_, Shard>> {
        // A poisoned shard is still consistent (no code path panics mid-update).
        self.shards
            .get(idx)
            .map(|m| m.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    fn try_reserve(&self) -> bool {
        let prev = self.len.fetch_add(1, Ordering::AcqRel);
        if prev < self.capacity {
            true
        } else {
            self.len.fetch_sub(1, Ordering::AcqRel);
            false
        }
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.len.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Sweeps every shard for expired entries.
    fn reclaim_all(&self, now: u64) {
        for idx in 0..self.shards.len() {
            if let Some(mut shard) = self.lock(idx) {
                let n = shard.reclaim(now);
                drop(shard);
                self.release(n);
            }
        }
    }

    /// [`ReplayBackend::check_and_set`] with an explicit clock (`now_ms`, same epoch as
    /// [`Self::now_ms`]) and a TTL in milliseconds: lets tests drive time.
    pub fn check_and_set_at(
        &self,
        key: &ReplayKey,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let digest = key.digest();
        // Top bits of the hash pick the shard (the map uses its own hash of the key).
        let idx = usize::try_from(self.hasher.hash_one(digest) >> 58).unwrap_or(0) % SHARDS;
        let expiry = now_ms.saturating_add(ttl_ms.max(1));
        for attempt in 0..2 {
            let Some(mut shard) = self.lock(idx) else {
                return Err(StoreError::Unavailable("no shard".into()));
            };
            let reclaimed = shard.reclaim(now_ms);
            self.release(reclaimed);
            match shard.map.get_mut(&digest) {
                Some(exp) if *exp > now_ms => return Ok(false),
                Some(exp) => {
                    // Expired but still present (not reachable after `reclaim`): reuse the slot.
                    *exp = expiry;
                    shard.heap.push(Reverse((expiry, digest)));
                    return Ok(true);
                }
                None => {}
            }
            if self.try_reserve() {
                shard.map.insert(digest, expiry);
                shard.heap.push(Reverse((expiry, digest)));
                return Ok(true);
            }
            drop(shard);
            if attempt == 0 {
                self.reclaim_all(now_ms);
            }
        }
        Err(StoreError::Full)
    }
}

impl ReplayBackend for MemoryBackend {
    async fn check_and_set(&self, key: &ReplayKey, ttl_secs: u32) -> Result<bool, StoreError> {
        self.check_and_set_at(key, u64::from(ttl_secs) * 1000, self.now_ms())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn describe(&self) -> String {
        format!("memory (capacity {} keys)", self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn key(n: u64) -> ReplayKey {
        ReplayKey::parse(&format!("dpop:jti:{:A>43}", n)).unwrap()
    }

    #[test]
    fn fresh_then_replay() {
        let m = MemoryBackend::new(10);
        assert_eq!(m.check_and_set_at(&key(1), 1000, 0), Ok(true));
        assert_eq!(m.check_and_set_at(&key(1), 1000, 1), Ok(false));
        assert_eq!(m.check_and_set_at(&key(1), 1000, 999), Ok(false));
        assert_eq!(m.check_and_set_at(&key(2), 1000, 999), Ok(true));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn expiry_makes_key_fresh_again() {
        let m = MemoryBackend::new(10);
        assert_eq!(m.check_and_set_at(&key(1), 1000, 0), Ok(true));
        assert_eq!(m.check_and_set_at(&key(1), 1000, 999), Ok(false));
        // expiry = 1000: no longer live at 1000
        assert_eq!(m.check_and_set_at(&key(1), 1000, 1000), Ok(true));
        assert_eq!(m.check_and_set_at(&key(1), 1000, 1999), Ok(false));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_replay_does_not_extend_the_ttl() {
        let m = MemoryBackend::new(10);
        assert_eq!(m.check_and_set_at(&key(1), 1000, 0), Ok(true));
        assert_eq!(m.check_and_set_at(&key(1), 5000, 500), Ok(false));
        assert_eq!(m.check_and_set_at(&key(1), 1000, 1000), Ok(true));
    }

    #[test]
    fn full_of_live_entries_refuses_and_never_forgets() {
        let m = MemoryBackend::new(3);
        for n in 0..3 {
            assert_eq!(m.check_and_set_at(&key(n), 10_000, 0), Ok(true));
        }
        assert_eq!(
            m.check_and_set_at(&key(99), 10_000, 1),
            Err(StoreError::Full)
        );
        // refusing did not evict anything
        for n in 0..3 {
            assert_eq!(m.check_and_set_at(&key(n), 10_000, 2), Ok(false));
        }
        assert_eq!(m.len(), 3);
        // once entries expire, room is made again (from whatever shard they sit in)
        assert_eq!(m.check_and_set_at(&key(99), 10_000, 10_000), Ok(true));
        assert_eq!(m.check_and_set_at(&key(98), 10_000, 10_000), Ok(true));
        assert_eq!(m.check_and_set_at(&key(97), 10_000, 10_000), Ok(true));
        assert_eq!(
            m.check_and_set_at(&key(96), 10_000, 10_001),
            Err(StoreError::Full)
        );
        assert_eq!(m.len(), 3);
    }

    #[test]
    fn mixed_ttls_reclaim_in_expiry_order() {
        let m = MemoryBackend::new(2);
        assert_eq!(m.check_and_set_at(&key(1), 5_000, 0), Ok(true));
        assert_eq!(m.check_and_set_at(&key(2), 1_000, 0), Ok(true));
        assert_eq!(
            m.check_and_set_at(&key(3), 1_000, 999),
            Err(StoreError::Full)
        );
        // key 2 expired, key 1 is still live: 3 takes key 2's place
        assert_eq!(m.check_and_set_at(&key(3), 1_000, 1_000), Ok(true));
        assert_eq!(m.check_and_set_at(&key(1), 5_000, 1_000), Ok(false));
        assert_eq!(
            m.check_and_set_at(&key(2), 1_000, 1_001),
            Err(StoreError::Full)
        );
    }

    #[test]
    fn many_keys_and_reclaim_returns_len_to_zero() {
        let m = MemoryBackend::new(100_000);
        for n in 0..20_000 {
            assert_eq!(m.check_and_set_at(&key(n), 1_000, n / 100), Ok(true));
        }
        assert_eq!(m.len(), 20_000);
        m.reclaim_all(10_000);
        assert!(m.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_once_under_concurrency() {
        let m = Arc::new(MemoryBackend::new(1000));
        for round in 0..20u64 {
            let k = key(1_000 + round);
            let barrier = Arc::new(tokio::sync::Barrier::new(200));
            let tasks: Vec<_> = (0..200)
                .map(|_| {
                    let m = m.clone();
                    let b = barrier.clone();
                    tokio::spawn(async move {
                        b.wait().await;
                        m.check_and_set(&k, 60).await
                    })
                })
                .collect();
            let mut fresh = 0;
            for t in tasks {
                if t.await.unwrap().unwrap() {
                    fresh += 1;
                }
            }
            assert_eq!(fresh, 1, "round {round}");
        }
    }

    #[test]
    fn exactly_once_with_os_threads() {
        let m = Arc::new(MemoryBackend::new(10));
        let k = key(7);
        let barrier = Arc::new(std::sync::Barrier::new(200));
        let handles: Vec<_> = (0..200)
            .map(|_| {
                let m = m.clone();
                let b = barrier.clone();
                std::thread::spawn(move || {
                    b.wait();
                    m.check_and_set_at(&k, 60_000, 0).unwrap()
                })
            })
            .collect();
        let fresh = handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .filter(|f| *f)
            .count();
        assert_eq!(fresh, 1);
    }
}
