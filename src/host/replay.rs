//! The replay check's host side: shared data as the local store's backend, the callout to
//! dpop-replay, and its answer matched by token. The verdict itself is pure
//! ([`crate::replay::verdict`]).

use super::abi::{self, now_secs};
use super::filter::{Filter, ReplyContext, Stage};
use super::metrics::bump;
use crate::config::ReplayConfig;
use crate::outcome::{Ending, ProofKey};
use crate::reason::DenyReason;
use crate::replay::{self, ReplayTransport, ReplayVerdict, SharedKv, StoreAnswer, StoreError};
use proxy_wasm::traits::Context;
use proxy_wasm::types::Action;
use std::time::Duration;

/// Proxy-wasm shared data as the replay store's key-value backend.
pub(super) struct HostKv;

impl SharedKv for HostKv {
    fn get(&self, key: &str) -> Result<Option<(Vec<u8>, u32)>, StoreError> {
        abi::shared_data(key).map_err(|_| StoreError::Host)
    }
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<bool, StoreError> {
        abi::set_shared_data(key, value, cas.unwrap_or(0)).map_err(|_| StoreError::Host)
    }
}

/// Sends a replay check (`body` to `path` of the `replay.store = "remote"` settings) from
/// context `ctx`: a request's (one check) or the root's (a batch).
pub(super) fn dispatch(
    ctx: &dyn Context,
    remote: &ReplayConfig,
    path: &str,
    body: &str,
) -> Result<u32, ()> {
    let ReplayConfig::Remote {
        cluster,
        authority,
        timeout_ms,
        ..
    } = remote
    else {
        return Err(());
    };
    let len = body.len().to_string();
    let headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", authority.as_str()),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
    ];
    ctx.dispatch_http_call(
        cluster,
        headers,
        Some(body.as_bytes()),
        vec![],
        Duration::from_millis(u64::from(*timeout_ms)),
    )
    .map_err(|e| log::warn!("dpop_guard: replay callout to cluster {cluster} failed: {e:?}"))
}

impl Context for Filter {
    fn on_http_call_response(&mut self, token_id: u32, _: usize, body_size: usize, _: usize) {
        match self.stage {
            Stage::AwaitingIntrospection { .. } => {
                return self.on_introspection_reply(token_id, body_size)
            }
            Stage::AwaitingJwks { .. } => return self.on_jwks_reply(token_id),
            _ => {}
        }
        let Stage::AwaitingReplay { token, key, reply } =
            std::mem::replace(&mut self.stage, Stage::Done)
        else {
            return;
        };
        if token != token_id {
            // not our callout: keep waiting
            self.stage = Stage::AwaitingReplay { token, key, reply };
            return;
        }
        let status = abi::http_call_response_header(":status");
        if let Err(code) = &status {
            self.host_error("get_header_map_value", *code);
        }
        let answer = replay::remote_answer(status.ok().flatten().as_deref());
        if self.apply_replay(answer, key, &reply) == Action::Continue {
            if let Err(code) = abi::resume_request() {
                // The request would hang until Envoy's timeout: answer it now instead.
                self.host_error("continue_stream", code);
                self.send_reply(DenyReason::HostCallFailed, &reply, now_secs());
            }
        }
    }
}

impl Filter {
    /// Claims the lone-check slot of an idle worker ([`super::coalesce::try_go_alone`]).
    fn go_alone(&mut self) -> bool {
        self.lone = super::coalesce::try_go_alone(self.root);
        if self.lone {
            bump(self.shared.metrics.replay_alone);
        }
        self.lone
    }

    /// The one place a replay store's answer becomes host actions.
    pub(super) fn apply_replay(
        &mut self,
        answer: StoreAnswer,
        key: Option<ProofKey>,
        reply: &ReplyContext,
    ) -> Action {
        if self.lone {
            self.lone = false;
            super::coalesce::lone_done(self.root);
        }
        if answer == StoreAnswer::Unavailable {
            bump(self.shared.metrics.replay_errors);
        }
        let ending = match replay::verdict(answer, self.shared.cfg.replay.on_error()) {
            ReplayVerdict::Allow => Ending::Allow(key),
            ReplayVerdict::AllowUnchecked => {
                log::warn!(
                    "dpop_guard: replay check unavailable; allowed by replay.on_error = allow"
                );
                Ending::Allow(key)
            }
            ReplayVerdict::Deny(reason) => Ending::Deny { reason, key },
        };
        self.finish(ending, reply, now_secs())
    }
}

impl Filter {
    /// Records the proof's replay key in the configured store; a remote check pauses the
    /// request until [`Context::on_http_call_response`].
    pub(super) fn check_replay(
        &mut self,
        proof_key: Option<ProofKey>,
        key: &str,
        ttl: i64,
        reply: ReplyContext,
        now: i64,
    ) -> Action {
        let shared = self.shared.clone();
        let answer = match (&shared.cfg.replay, &shared.local) {
            (ReplayConfig::Off, _) => StoreAnswer::Fresh,
            (ReplayConfig::Local { .. }, Some(store)) => {
                let result = store.check_and_insert(&HostKv, key, now, ttl);
                if let Err(e) = result {
                    log::warn!("dpop_guard: local replay store error: {e:?}");
                }
                crate::stage::mark("r.local_store");
                StoreAnswer::from(result)
            }
            (ReplayConfig::Local { .. }, None) => StoreAnswer::Unavailable,
            // The gRPC stream (owned by the root context): a message now or in the next batch.
            (
                ReplayConfig::Remote {
                    transport: ReplayTransport::Grpc,
                    ..
                },
                _,
            ) if shared.batching => {
                return self.check_on_stream(proof_key, key, ttl, reply);
            }
            // Batching, unless nothing is queued or in flight: then this check goes out alone,
            // at once, as a plain `POST <path>` (below).
            (ReplayConfig::Remote { max_batch, .. }, _)
                if *max_batch > 1 && shared.batching && !self.go_alone() =>
            {
                return self.join_batch(proof_key, key, ttl, reply);
            }
            (remote @ ReplayConfig::Remote { path, .. }, _) => {
                let body = replay::remote_request_body(key, ttl);
                match dispatch(self, remote, path, &body) {
                    Ok(token) => {
                        self.stage = Stage::AwaitingReplay {
                            token,
                            key: proof_key,
                            reply,
                        };
                        return Action::Pause;
                    }
                    Err(()) => StoreAnswer::Unavailable,
                }
            }
        };
        self.apply_replay(answer, proof_key, &reply)
    }
}
