//! Replay protection (README "How a request is checked" step 7, "Replay service"): the
//! `replay` settings, the one verdict function for every store's answer, and the local store —
//! a fixed table of buckets in proxy-wasm shared data, shared by every worker thread of one
//! Envoy, updated only by compare-and-swap.
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

use crate::config::reader::{err, ConfigError, Section};
use crate::reason::DenyReason;
use sha2::{Digest, Sha256};

/// What to do when the replay store cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// Refuse (503 `replay-check-unavailable`): the default, fail closed.
    Deny,
    /// Continue, counted in `replay.errors`.
    Allow,
}

/// The `replay` section: where used `jti`s are remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayConfig {
    Local {
        capacity: u32,
    },
    Remote {
        cluster: String,
        authority: String,
        path: String,
        timeout_ms: u32,
        on_error: OnError,
        /// Most replay keys in one coalesced callout (`/batch`); 1 turns coalescing off (one
        /// `POST path` per request, as before).
        max_batch: u32,
        /// Most coalesced callouts in flight per worker.
        max_in_flight: u32,
        /// How checks reach the service.
        transport: ReplayTransport,
    },
    Off,
}

/// How remote replay checks reach `dpop-replay` (`replay.transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayTransport {
    /// A `dispatch_http_call` per check or batch (`POST path`, `POST path/batch`).
    Http,
    /// One long-lived gRPC bidi stream per worker (`/dpop.replay.v1.Replay/Check`, HTTP/2
    /// cluster): each check or batch is a message on it.
    Grpc,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreKind {
    Local,
    Remote,
    Off,
}

impl ReplayConfig {
    /// The section's keys (README configuration table, `replay.*`).
    pub const KEYS: &'static [&'static str] = &[
        "store",
        "capacity",
        "cluster",
        "authority",
        "path",
        "timeout_ms",
        "on_error",
        "max_batch",
        "max_in_flight",
        "transport",
    ];
    const REMOTE_ONLY: [&'static str; 8] = [
        "cluster",
        "authority",
        "path",
        "timeout_ms",
        "on_error",
        "max_batch",
        "max_in_flight",
        "transport",
    ];

    /// Reads and validates the `replay` section (absent: the local store, 100 000 entries).
    pub fn read(s: &Section<'_>) -> Result<ReplayConfig, ConfigError> {
        s.only(Self::KEYS)?;
        let store = s
            .choice(
                "store",
                &[
                    ("local", StoreKind::Local),
                    ("remote", StoreKind::Remote),
                    ("off", StoreKind::Off),
                ],
            )?
            .unwrap_or(StoreKind::Local);
        if store != StoreKind::Remote {
            if let Some(k) = Self::REMOTE_ONLY.iter().find(|k| s.has(k)) {
                return err(&s.key(k), "only applies to replay.store = \"remote\"");
            }
        }
        if store != StoreKind::Local && s.has("capacity") {
            return err(
                &s.key("capacity"),
                "only applies to replay.store = \"local\"",
            );
        }
        Ok(match store {
            StoreKind::Local => ReplayConfig::Local {
                capacity: s.uint_in("capacity", 100_000, 16, 10_000_000)? as u32,
            },
            StoreKind::Off => ReplayConfig::Off,
            StoreKind::Remote => {
                let cluster = match s.string("cluster")? {
                    Some(c) if !c.is_empty() => c,
                    _ => {
                        return err(
                            &s.key("cluster"),
                            "is required when replay.store = \"remote\"",
                        )
                    }
                };
                let transport = s
                    .choice(
                        "transport",
                        &[
                            ("http", ReplayTransport::Http),
                            ("grpc", ReplayTransport::Grpc),
                        ],
                    )?
                    .unwrap_or(ReplayTransport::Http);
                if transport == ReplayTransport::Grpc && s.has("path") {
                    return err(
                        &s.key("path"),
                        "only applies to replay.transport = \"http\" (the gRPC method is /dpop.replay.v1.Replay/Check)",
                    );
                }
                let path = s.string("path")?.unwrap_or_else(|| "/v1/replay".to_owned());
                if !path.starts_with('/') {
                    return err(&s.key("path"), "must start with '/'");
                }
                ReplayConfig::Remote {
                    cluster,
                    authority: s
                        .string("authority")?
                        .unwrap_or_else(|| "dpop-replay".to_owned()),
                    path,
                    timeout_ms: s.uint_in("timeout_ms", 200, 1, 60_000)? as u32,
                    on_error: s
                        .choice(
                            "on_error",
                            &[("deny", OnError::Deny), ("allow", OnError::Allow)],
                        )?
                        .unwrap_or(OnError::Deny),
                    max_batch: s.uint_in("max_batch", 64, 1, replay_wire::MAX_BATCH as u64)? as u32,
                    max_in_flight: s.uint_in("max_in_flight", 1, 1, 64)? as u32,
                    transport,
                }
            }
        })
    }

    /// Coalescing limits `(max_batch, max_in_flight)`; `(1, 1)` for the stores that do not batch.
    pub fn batch_limits(&self) -> (usize, usize) {
        match self {
            ReplayConfig::Remote {
                max_batch,
                max_in_flight,
                ..
            } => (*max_batch as usize, *max_in_flight as usize),
            _ => (1, 1),
        }
    }

    /// What `replay.on_error` says (the local store has no such setting: it fails closed).
    pub fn on_error(&self) -> OnError {
        match self {
            ReplayConfig::Remote { on_error, .. } => *on_error,
            _ => OnError::Deny,
        }
    }
}

/// What `replay.transport = "grpc"` hands the host as the stream's target: a serialized
/// `envoy.config.core.v3.GrpcService` with `envoy_grpc { cluster_name, authority }`, so the
/// `:authority` is ours. Envoy also takes a bare cluster name (used when a length would need a
/// multi-byte varint: the SDK passes the target as `&str`, and such a varint is not UTF-8); a
/// bare name is only taken as a name when it does not happen to parse as a GrpcService.
pub fn grpc_service_target(cluster: &str, authority: &str) -> String {
    let len = |s: &str| u8::try_from(s.len()).ok().filter(|n| *n < 0x80);
    let inner = 4 + cluster.len() + authority.len();
    match (
        len(cluster),
        len(authority),
        u8::try_from(inner).ok().filter(|n| *n < 0x80),
    ) {
        (Some(c), Some(a), Some(i)) if cluster.is_ascii() && authority.is_ascii() => {
            let mut s = String::with_capacity(inner + 2);
            // field 1 (envoy_grpc), length-delimited; inside: 1 cluster_name, 2 authority
            s.push('\u{0a}');
            s.push(char::from(i));
            s.push('\u{0a}');
            s.push(char::from(c));
            s.push_str(cluster);
            s.push('\u{12}');
            s.push(char::from(a));
            s.push_str(authority);
            s
        }
        _ => cluster.to_owned(),
    }
}

/// What a replay store answered about one key, whichever store it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAnswer {
    /// First use: recorded.
    Fresh,
    /// Seen before and still live.
    Replayed,
    /// The local store's bucket is full of live entries.
    Full,
    /// No answer: host or store error, timeout, an unexpected status.
    Unavailable,
}

impl From<Result<Insert, StoreError>> for StoreAnswer {
    fn from(r: Result<Insert, StoreError>) -> StoreAnswer {
        match r {
            Ok(Insert::Fresh) => StoreAnswer::Fresh,
            Ok(Insert::Replayed) => StoreAnswer::Replayed,
            Ok(Insert::Full) => StoreAnswer::Full,
            Err(_) => StoreAnswer::Unavailable,
        }
    }
}

/// The `dpop-replay` service's answer, from its `:status` (`None`: no response at all):
/// 201 first use, 409 seen before, anything else an error (wire contract: `replay-wire`).
pub fn remote_answer(status: Option<&[u8]>) -> StoreAnswer {
    store_answer(replay_wire::answer(status))
}

/// The answers of a coalesced check for `n` keys (wire contract: `replay-wire`): one per key,
/// in order; all `Unavailable` unless the service answered 200 with exactly `n` results.
pub fn remote_batch_answers(status: Option<&[u8]>, body: &[u8], n: usize) -> Vec<StoreAnswer> {
    replay_wire::batch_answers(status, body, n)
        .into_iter()
        .map(store_answer)
        .collect()
}

/// One answer of the service (wire contract: `replay-wire`) as a store answer.
pub fn store_answer(a: replay_wire::Answer) -> StoreAnswer {
    match a {
        replay_wire::Answer::Fresh => StoreAnswer::Fresh,
        replay_wire::Answer::Replayed => StoreAnswer::Replayed,
        replay_wire::Answer::Error => StoreAnswer::Unavailable,
    }
}

/// The request body of a coalesced check (wire contract: `replay-wire`).
pub use replay_wire::batch_body as remote_batch_body;

/// The request body of a remote replay check (wire contract: `replay-wire`).
pub use replay_wire::request_body as remote_request_body;

/// What happens to the request after its replay check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    Allow,
    /// The store could not answer and `on_error` is `allow`: continue, but it is logged.
    AllowUnchecked,
    Deny(DenyReason),
}

/// The one place a store's answer becomes a verdict.
pub fn verdict(answer: StoreAnswer, on_error: OnError) -> ReplayVerdict {
    match (answer, on_error) {
        (StoreAnswer::Fresh, _) => ReplayVerdict::Allow,
        (StoreAnswer::Replayed, _) => ReplayVerdict::Deny(DenyReason::ProofReplayed),
        (StoreAnswer::Full, _) => ReplayVerdict::Deny(DenyReason::ReplayStoreFull),
        (StoreAnswer::Unavailable, OnError::Allow) => ReplayVerdict::AllowUnchecked,
        (StoreAnswer::Unavailable, OnError::Deny) => {
            ReplayVerdict::Deny(DenyReason::ReplayCheckFailed)
        }
    }
}

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
    fn grpc_targets() {
        // protoc --encode=envoy.config.core.v3.GrpcService of
        // envoy_grpc { cluster_name: "replay" authority: "dpop-replay" }
        assert_eq!(
            grpc_service_target("replay", "dpop-replay").as_bytes(),
            b"\x0a\x15\x0a\x06replay\x12\x0bdpop-replay"
        );
        let long = "c".repeat(120);
        assert_eq!(grpc_service_target(&long, "dpop-replay"), long);
        assert_eq!(grpc_service_target("r\u{e9}play", "a"), "r\u{e9}play");
        // the longest that still fits one-byte lengths
        let c = "c".repeat(60);
        let a = "a".repeat(63);
        let t = grpc_service_target(&c, &a);
        assert_eq!(t.len(), 2 + 4 + 123);
        assert!(t.is_ascii());
        assert_eq!(grpc_service_target(&c, &format!("{a}a")), c);
    }

    #[test]
    fn verdicts() {
        use ReplayVerdict as V;
        use StoreAnswer as A;
        for on_error in [OnError::Deny, OnError::Allow] {
            assert_eq!(verdict(A::Fresh, on_error), V::Allow);
            assert_eq!(
                verdict(A::Replayed, on_error),
                V::Deny(DenyReason::ProofReplayed)
            );
            assert_eq!(
                verdict(A::Full, on_error),
                V::Deny(DenyReason::ReplayStoreFull)
            );
        }
        assert_eq!(
            verdict(A::Unavailable, OnError::Deny),
            V::Deny(DenyReason::ReplayCheckFailed)
        );
        assert_eq!(verdict(A::Unavailable, OnError::Allow), V::AllowUnchecked);
        assert_eq!(remote_answer(Some(b"201")), A::Fresh);
        assert_eq!(remote_answer(Some(b"409")), A::Replayed);
        for other in [&b"200"[..], b"400", b"503", b"504", b"", b"\xff"] {
            assert_eq!(remote_answer(Some(other)), A::Unavailable);
        }
        assert_eq!(remote_answer(None), A::Unavailable);
        assert_eq!(
            StoreAnswer::from(Err(StoreError::Contended)),
            A::Unavailable
        );
        assert_eq!(
            remote_request_body("dpop:jti:abc", 121),
            r#"{"key":"dpop:jti:abc","ttl":121}"#
        );
    }

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
