//! The filter's counters (README "Metrics"): defined once per configuration, bumped by id.

use super::abi;
use crate::reason::DenyReason;

/// Counter ids (README "Metrics"). Names are fixed; Envoy exports them under `wasmcustom.`.
pub(super) struct Metrics {
    pub(super) allowed: u32,
    pub(super) denied: u32,
    pub(super) per_reason: Vec<u32>,
    pub(super) replay_detected: u32,
    pub(super) replay_errors: u32,
    pub(super) replay_local_full: u32,
    pub(super) host_errors: u32,
    pub(super) shadow_denied: u32,
    pub(super) shadow_per_reason: Vec<u32>,
    pub(super) metadata: u32,
    pub(super) introspection_requests: u32,
    pub(super) introspection_cache_hits: u32,
    pub(super) introspection_errors: u32,
    pub(super) jwks_fetches: u32,
    pub(super) replay_batches: u32,
    pub(super) replay_batched: u32,
    pub(super) replay_alone: u32,
    pub(super) replay_streams: u32,
    pub(super) jwks_errors: u32,
}

pub(super) fn counter(name: &str) -> u32 {
    abi::define_counter(name)
}

pub(super) fn bump(id: u32) {
    abi::increment(id);
}

impl Metrics {
    pub(super) fn define() -> Metrics {
        Metrics {
            allowed: counter("dpop_guard.allowed"),
            denied: counter("dpop_guard.denied"),
            per_reason: DenyReason::ALL
                .iter()
                .map(|r| counter(&format!("dpop_guard.denied.{}", r.stat_name())))
                .collect(),
            replay_detected: counter("dpop_guard.replay.detected"),
            replay_errors: counter("dpop_guard.replay.errors"),
            replay_local_full: counter("dpop_guard.replay.local_full"),
            host_errors: counter("dpop_guard.host_errors"),
            shadow_denied: counter("dpop_guard.shadow.denied"),
            shadow_per_reason: DenyReason::ALL
                .iter()
                .map(|r| counter(&format!("dpop_guard.shadow.denied.{}", r.stat_name())))
                .collect(),
            metadata: counter("dpop_guard.metadata.served"),
            introspection_requests: counter("dpop_guard.introspection.requests"),
            introspection_cache_hits: counter("dpop_guard.introspection.cache_hits"),
            introspection_errors: counter("dpop_guard.introspection.errors"),
            jwks_fetches: counter("dpop_guard.jwks.fetches"),
            replay_batches: counter("dpop_guard.replay.batches"),
            replay_batched: counter("dpop_guard.replay.batched"),
            replay_alone: counter("dpop_guard.replay.alone"),
            replay_streams: counter("dpop_guard.replay.streams"),
            jwks_errors: counter("dpop_guard.jwks.errors"),
        }
    }

    /// A refusal, enforced or (shadow mode) only counted.
    pub(super) fn refused(&self, reason: DenyReason, shadow: bool) {
        let (total, per_reason) = if shadow {
            (self.shadow_denied, &self.shadow_per_reason)
        } else {
            (self.denied, &self.per_reason)
        };
        bump(total);
        bump(per_reason.get(reason.index()).copied().unwrap_or(0));
        match reason {
            DenyReason::ProofReplayed => bump(self.replay_detected),
            DenyReason::ReplayStoreFull => bump(self.replay_local_full),
            _ => {}
        }
    }
}
