//! The backend chosen at start-up: one enum over the stores, itself a [`ReplayBackend`].

use crate::backend::{ReplayBackend, StoreError};
use crate::key::ReplayKey;
use crate::memory::MemoryBackend;
use crate::redis_backend::RedisBackend;

/// The backend chosen at start-up.
pub enum AnyBackend {
    /// In-process store (`--backend memory`).
    Memory(MemoryBackend),
    /// Redis or Redis Cluster (`--backend redis`).
    Redis(RedisBackend),
}

impl ReplayBackend for AnyBackend {
    async fn check_and_set(&self, key: &ReplayKey, ttl_secs: u32) -> Result<bool, StoreError> {
        match self {
            Self::Memory(m) => m.check_and_set(key, ttl_secs).await,
            Self::Redis(r) => r.check_and_set(key, ttl_secs).await,
        }
    }

    async fn check_and_set_many(
        &self,
        entries: &[(ReplayKey, u32)],
    ) -> Result<Vec<bool>, StoreError> {
        match self {
            Self::Memory(m) => m.check_and_set_many(entries).await,
            Self::Redis(r) => r.check_and_set_many(entries).await,
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Self::Memory(m) => m.ping().await,
            Self::Redis(r) => r.ping().await,
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Memory(m) => m.describe(),
            Self::Redis(r) => r.describe(),
        }
    }
}
