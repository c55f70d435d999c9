//! `dpop-replay`: the cluster-wide DPoP `jti` replay check behind the dpop-guard filter
//! (README "Replay service"). `POST /v1/replay {"key", "ttl"}` → 201 fresh / 409 replay / 400 / 503;
//! `POST /v1/replay/batch` for many keys; the gRPC stream `/dpop.replay.v1.Replay/Check`
//! (`grpc`) for batches as messages on one long-lived HTTP/2 stream.
//!
//! The binary is `src/main.rs`; everything it does is reachable from here so tests can run
//! the real server in-process.

pub mod any_backend;
pub mod backend;
pub mod config;
pub mod grpc;
pub mod key;
pub mod memory;
pub mod metrics;
pub mod redis_backend;
pub mod server;

use std::sync::Arc;

pub use any_backend::AnyBackend;
pub use backend::{ReplayBackend, StoreError};
pub use config::{BackendKind, Cli, Settings};
pub use key::ReplayKey;
pub use memory::MemoryBackend;
pub use redis_backend::RedisBackend;
pub use server::{router, serve, AppState};

/// Builds the backend the settings ask for (no network I/O: Redis connects lazily).
pub fn build_backend(settings: &Settings) -> Result<AnyBackend, String> {
    Ok(match settings.backend {
        BackendKind::Memory => AnyBackend::Memory(MemoryBackend::new(settings.memory_capacity)),
        BackendKind::Redis => AnyBackend::Redis(RedisBackend::new(
            &settings.redis_url,
            settings.redis_cluster,
            settings.redis_timeout,
        )?),
    })
}

/// Builds the shared handler state for the settings.
pub fn build_state(settings: &Settings) -> Result<Arc<AppState<AnyBackend>>, String> {
    Ok(Arc::new(AppState::new(
        build_backend(settings)?,
        settings.max_ttl,
    )))
}
