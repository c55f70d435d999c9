//! The local replay store (SPEC §5 `local`): a fixed table of buckets in proxy-wasm shared
//! data, shared by every worker thread of one Envoy, updated only by compare-and-swap.
//!
//! Why buckets that exist up front: Envoy's `set_shared_data` ignores the CAS value when the
//! key does not exist yet, so "insert if absent" on a fresh key is not atomic. Every bucket is
//! therefore created empty in `on_configure` (Envoy runs it first in a canary VM on the main
//! thread, before any worker serves traffic), and afterwards only ever replaced with CAS.
//!
//! A bucket holds up to [`SLOTS`] entries of (16-byte key fingerprint, 8-byte expiry). Writing
//! to a bucket drops its expired entries; a bucket full of live entries refuses the new jti
//! (never forgets a live one). Buckets = ceil(capacity / 8), so the table holds `capacity`
//! live entries comfortably and never more than 2 × capacity.

use sha2::{Digest, Sha256};

pub const SLOTS: usize = 16;
const ENTRY: usize = 24;
const MAX_CAS_RETRIES: usize = 32;

/// The host's shared key-value store (proxy-wasm shared data), abstracted for tests.
pub trait SharedKv {
    /// `Ok(None)` when the key does not exist.
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError>;
    /// Sets the value if `cas` still matches (`None`: unconditional). `Ok(false)`: CAS mismatch.
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The host refused the call.
    Host,
    /// Too many concurrent writers on one bucket.
    Contended,
    /// A bucket that should exist does not (store not initialised).
    Missing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// First use: recorded.
    Fresh,
    /// Seen before and still live.
    Replayed,
    /// The bucket is full of live entries.
    Full,
}

#[derive(Debug, Clone)]
pub struct LocalReplayStore {
    buckets: u32,
}

impl LocalReplayStore {
    pub fn new(capacity: u32) -> Self {
        LocalReplayStore {
            buckets: capacity.div_ceil(8).max(1),
        }
    }

    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// Shared-data key of bucket `i`. The bucket count is part of the name, so a capacity
    /// change on reconfiguration starts a fresh table instead of misreading the old one.
    pub fn bucket_key(&self, i: u32) -> String {
        format!("dpop_guard.replay.{}.{}", self.buckets, i)
    }

    /// Creates every missing bucket, empty. Idempotent; returns how many it created.
    pub fn init(&self, kv: &dyn SharedKv) -> Result<u32, StoreError> {
        let mut created = 0;
        for i in 0..self.buckets {
            let key = self.bucket_key(i);
            if kv.get(&key)?.is_none() {
                kv.set(&key, &[], None)?;
                created += 1;
            }
        }
        Ok(created)
    }

    fn locate(&self, replay_key: &str) -> ([u8; 16], u32) {
        let h = Sha256::digest(replay_key.as_bytes());
        let mut fp = [0u8; 16];
        fp.copy_from_slice(h.get(..16).unwrap_or(&[0u8; 16]));
        let mut idx = [0u8; 8];
        idx.copy_from_slice(h.get(16..24).unwrap_or(&[0u8; 8]));
        let bucket = (u64::from_be_bytes(idx) % u64::from(self.buckets)) as u32;
        (fp, bucket)
    }

    /// Records `replay_key` until `now + ttl`, atomically with respect to all other callers.
    pub fn check_and_insert(
        &self,
        kv: &dyn SharedKv,
        replay_key: &str,
        now: i64,
        ttl: i64,
    ) -> Result<Insert, StoreError> {
        let (fp, bucket) = self.locate(replay_key);
        let key = self.bucket_key(bucket);
        let expiry = now.saturating_add(ttl);
        for _ in 0..MAX_CAS_RETRIES {
            let (value, cas) = kv.get(&key)?.ok_or(StoreError::Missing)?;
            let mut next = Vec::with_capacity(value.len() + ENTRY);
            let mut live = 0usize;
            for entry in value.chunks_exact(ENTRY) {
                let (efp, eexp) = entry.split_at(16);
                let eexp = i64::from_be_bytes(eexp.try_into().unwrap_or([0; 8]));
                if eexp <= now {
                    continue; // expired: reclaimed by this write
                }
                if efp == fp {
                    return Ok(Insert::Replayed);
                }
                next.extend_from_slice(entry);
                live += 1;
            }
            if live >= SLOTS {
                return Ok(Insert::Full);
            }
            next.extend_from_slice(&fp);
            next.extend_from_slice(&expiry.to_be_bytes());
            if kv.set(&key, &next, Some(cas))? {
                return Ok(Insert::Fresh);
            }
        }
        Err(StoreError::Contended)
    }
}

/// An in-memory [`SharedKv`] with Envoy's semantics (CAS ignored for missing keys), for tests.
#[derive(Default)]
pub struct MemoryKv {
    /// (key → (value, cas), last cas handed out)
    inner: std::sync::Mutex<(MemoryMap, u32)>,
}

type MemoryMap = std::collections::HashMap<String, (Vec<u8>, u32)>;

impl SharedKv for MemoryKv {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        let g = self.inner.lock().map_err(|_| StoreError::Host)?;
        Ok(g.0.get(key).cloned())
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, StoreError> {
        let mut g = self.inner.lock().map_err(|_| StoreError::Host)?;
        g.1 = g.1.wrapping_add(1).max(1);
        let next = g.1;
        match g.0.get_mut(key) {
            Some(entry) => {
                if cas.is_some_and(|c| c != entry.1) {
                    return Ok(false);
                }
                *entry = (value.to_vec(), next);
            }
            None => {
                g.0.insert(key.to_owned(), (value.to_vec(), next));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fresh_replay_expiry() {
        let kv = MemoryKv::default();
        let s = LocalReplayStore::new(100);
        assert_eq!(s.init(&kv), Ok(13));
        assert_eq!(s.init(&kv), Ok(0));
        assert_eq!(s.check_and_insert(&kv, "k1", 1000, 180), Ok(Insert::Fresh));
        assert_eq!(
            s.check_and_insert(&kv, "k1", 1100, 180),
            Ok(Insert::Replayed)
        );
        assert_eq!(s.check_and_insert(&kv, "k2", 1100, 180), Ok(Insert::Fresh));
        // expired entries are forgotten and reclaimed
        assert_eq!(s.check_and_insert(&kv, "k1", 1180, 180), Ok(Insert::Fresh));
    }

    #[test]
    fn uninitialised_store_is_an_error() {
        let kv = MemoryKv::default();
        let s = LocalReplayStore::new(100);
        assert_eq!(
            s.check_and_insert(&kv, "k", 0, 10),
            Err(StoreError::Missing)
        );
    }

    #[test]
    fn full_bucket_refuses_and_never_forgets() {
        let kv = MemoryKv::default();
        let s = LocalReplayStore::new(8); // one bucket of 16 slots
        s.init(&kv).unwrap();
        for i in 0..SLOTS {
            assert_eq!(
                s.check_and_insert(&kv, &format!("k{i}"), 0, 100),
                Ok(Insert::Fresh)
            );
        }
        assert_eq!(s.check_and_insert(&kv, "new", 50, 100), Ok(Insert::Full));
        for i in 0..SLOTS {
            assert_eq!(
                s.check_and_insert(&kv, &format!("k{i}"), 50, 100),
                Ok(Insert::Replayed)
            );
        }
        // once they expire, room again
        assert_eq!(s.check_and_insert(&kv, "new", 100, 100), Ok(Insert::Fresh));
    }

    #[test]
    fn exactly_once_under_threads() {
        let kv = Arc::new(MemoryKv::default());
        let s = Arc::new(LocalReplayStore::new(1000));
        s.init(kv.as_ref()).unwrap();
        for round in 0..20 {
            let key = format!("same-{round}");
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (kv, s, key) = (kv.clone(), s.clone(), key.clone());
                    std::thread::spawn(move || s.check_and_insert(kv.as_ref(), &key, 0, 100))
                })
                .collect();
            let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
            let fresh = results.iter().filter(|r| **r == Ok(Insert::Fresh)).count();
            let replayed = results
                .iter()
                .filter(|r| **r == Ok(Insert::Replayed))
                .count();
            assert_eq!((fresh, replayed), (1, 7), "{results:?}");
        }
    }
}
