//! The replay store abstraction. The stores implement it (`memory`, `redis_backend`); the
//! choice between them is `AnyBackend` in `any_backend.rs`, so nothing here depends on a store.

use std::fmt;
use std::future::Future;

use crate::key::ReplayKey;

/// Why the store could not answer. Never carries a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The memory store is full of live entries; refusing is the only safe answer.
    Full,
    /// The store did not answer within the configured timeout.
    Timeout,
    /// The store is unreachable or failed (connection refused, reset, server error, ...).
    Unavailable(String),
    /// The store answered something a `SET .. NX` never returns.
    UnexpectedReply,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full => f.write_str("memory store full of live entries"),
            Self::Timeout => f.write_str("store timed out"),
            Self::Unavailable(why) => write!(f, "store unavailable: {why}"),
            Self::UnexpectedReply => f.write_str("unexpected reply from store"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A store that records each key once for `ttl` seconds.
pub trait ReplayBackend: Send + Sync + 'static {
    /// Atomically records `key` for `ttl_secs` seconds if it is not already recorded.
    ///
    /// `Ok(true)`: first use (fresh). `Ok(false)`: seen before within its TTL (replay).
    /// Exactly one of any number of concurrent calls with the same key gets `Ok(true)`.
    fn check_and_set(
        &self,
        key: &ReplayKey,
        ttl_secs: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// [`ReplayBackend::check_and_set`] for many keys in one round trip where the store allows
    /// (a Redis pipeline). One verdict per entry, in order; any store error fails the whole
    /// batch (the caller then treats every entry as unchecked). Each key still gets its own
    /// atomic `SET NX`: exactly-once is unchanged.
    fn check_and_set_many(
        &self,
        entries: &[(ReplayKey, u32)],
    ) -> impl Future<Output = Result<Vec<bool>, StoreError>> + Send {
        async move {
            let mut out = Vec::with_capacity(entries.len());
            for (key, ttl) in entries {
                out.push(self.check_and_set(key, *ttl).await?);
            }
            Ok(out)
        }
    }

    /// Does the store answer? (`/readyz`)
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// One-line description for the start-up log (no secrets).
    fn describe(&self) -> String;
}
